"""Training: the run's split, stage data, the Ray Train loop and the Tune driver.

Entry points: :func:`serec.train.splits.make_splits`, :func:`serec.train.stage.train_stage`,
:func:`serec.train.tune.tune_stage` (configured by :class:`serec.train.config.TrainConfig`).
Submodules are imported on demand: Ray trial processes import only the light ones.
"""
