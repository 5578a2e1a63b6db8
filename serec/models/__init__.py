"""Models: the AST backbone and heads, the linear ``features`` baseline, checkpoint cards.

Load a trained fold with :func:`serec.models.card.load_model` and score clips with
:func:`serec.models.predict.predict_proba`.
"""
