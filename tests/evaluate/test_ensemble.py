"""Fold ensembles: loading, class alignment, shared spectrograms, the two-stage rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from serec.evaluate.ensemble import (
    FoldModel,
    SpectrogramCache,
    StageEnsemble,
    TwoStage,
    predict_stage,
    trained_folds,
)
from serec.models.backbone import TINY, config_dict, extractor_params, load_backbone
from serec.models.card import KIND_LINEAR, ModelCard, save_model
from serec.models.heads import POOLING, ASTClassifier
from serec.models.predict import predict_proba
from serec.models.tabular import LinearTabularModel
from serec.runs import RunDir

pytestmark = pytest.mark.timeout(120)


def tiny_ast(classes: list[str], features: list[str], seed: int) -> tuple[ASTClassifier,
                                                                            ModelCard]:
    torch.manual_seed(seed)
    backbone, extractor = load_backbone(TINY, 64)
    model = ASTClassifier(backbone, len(classes), tabular_dim=len(features), head_hidden=16,
                          dropout=0.0)
    card = ModelCard(stage="expert", classes=classes, fold=seed, features=features,
                     scaler_mean=[0.1] * len(features), scaler_scale=[2.0] * len(features),
                     backbone=TINY, backbone_config=config_dict(backbone.config),
                     extractor=extractor_params(extractor), max_length=64, pooling=POOLING,
                     head_hidden=16, dropout=0.0)
    return model.eval(), card


def linear(stage: str, classes: list[str], fold: int, bias: list[float],
           positive: str | None = None) -> tuple[LinearTabularModel, ModelCard]:
    model = LinearTabularModel(np.zeros((len(classes), 1)), np.asarray(bias, float),
                               np.zeros(1), np.ones(1))
    card = ModelCard(stage=stage, classes=classes, kind=KIND_LINEAR, fold=fold, features=["f"],
                     scaler_mean=[0.0], scaler_scale=[1.0], positive_class=positive)
    return model, card


def test_shared_spectrograms_give_the_same_probabilities_as_predict_proba():
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (8000, 12000, 16000)]
    tabular = pd.DataFrame({"x": [0.5, -1.0, 2.0], "y": [1.0, 0.0, 3.0]})
    members = [FoldModel(k, *tiny_ast(["b", "c"], ["x", "y"] if k else [], k)) for k in (0, 1)]
    cache = SpectrogramCache(audios, batch_size=2)
    pred = predict_stage(StageEnsemble("expert", members), cache, tabular)
    assert len(cache._inputs) == 1 and (cache.seconds > 0).all()
    for i, member in enumerate(members):
        rows = tabular[member.card.features].to_numpy() if member.card.features else None
        expected = predict_proba(member.model, member.card, audios, rows)
        np.testing.assert_allclose(pred.probs[i], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred.mean, pred.probs.mean(axis=0))
    assert (pred.seconds > 0).all()
    part = cache.subset(np.array([2, 0]))
    np.testing.assert_array_equal(part.get(members[0].card.extractor)[0],
                                  cache.get(members[0].card.extractor)[0][[2, 0]])


def test_load_aligns_classes_across_folds(tmp_path):
    run = RunDir.of(tmp_path)
    save_model(*linear("expert", ["b", "c"], 0, [0.0, np.log(3.0)]), run.model_dir("expert", 0))
    save_model(*linear("expert", ["c", "d"], 2, [0.0, 0.0]), run.model_dir("expert", 2))
    (tmp_path / "models" / "expert" / "fold_5").mkdir()  # no card: not a trained fold
    assert trained_folds(run, "expert") == [0, 2]
    assert trained_folds(run, "full") == []
    ensemble = StageEnsemble.load(run, "expert")
    assert ensemble.classes == ["b", "c", "d"] and ensemble.folds == [0, 2]
    pred = predict_stage(ensemble, SpectrogramCache([np.zeros(10, np.float32)]),
                         pd.DataFrame({"f": [1.0]}))
    np.testing.assert_allclose(pred.probs[0], [[0.25, 0.75, 0.0]])
    np.testing.assert_allclose(pred.probs[1], [[0.0, 0.5, 0.5]])
    np.testing.assert_allclose(pred.mean, [[0.125, 0.625, 0.25]])
    with pytest.raises(FileNotFoundError, match="fold"):
        StageEnsemble.load(run, "expert", [1])
    with pytest.raises(ValueError, match="needs tabular features"):
        predict_stage(ensemble, SpectrogramCache([np.zeros(10, np.float32)]), None)


def test_two_stage_from_cards():
    gk = [linear("gatekeeper", ["a", "other"], k, [0, 0], positive="a")[1] for k in (0, 1)]
    two_stage = TwoStage.of(gk, ["b", "c"])
    assert two_stage.classes == ["a", "b", "c"]
    p_expert = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    assert list(two_stage.decide(np.array([0.5, 0.49, 0.1]), p_expert, 0.5)) == ["a", "b", "b"]
    other = linear("gatekeeper", ["b", "other"], 2, [0, 0], positive="b")[1]
    with pytest.raises(ValueError, match="disagree"):
        TwoStage.of([*gk, other], ["c"])
    with pytest.raises(ValueError, match="include"):
        TwoStage.of(gk, ["a", "b"])
