"""Checkpoints: safetensors + JSON card, rebuilt without pickle or the hub."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from serec.models.backbone import TINY, config_dict, extractor_params, load_backbone
from serec.models.card import (
    CARD_FILE,
    KIND_LINEAR,
    WEIGHTS_FILE,
    ModelCard,
    load_model,
    read_card,
    save_model,
)
from serec.models.heads import POOLING, ASTClassifier
from serec.models.inputs import spectrograms
from serec.models.predict import batched_logits, predict_proba
from serec.models.tabular import fit_linear, standardise

pytestmark = pytest.mark.timeout(60)


def ast_card(model: ASTClassifier, extractor, features: list[str]) -> ModelCard:
    return ModelCard(stage="expert", classes=["a", "b", "c"], fold=3, features=features,
                     scaler_mean=[0.5] * len(features), scaler_scale=[2.0] * len(features),
                     backbone=TINY, backbone_config=config_dict(model.backbone.config),
                     extractor=extractor_params(extractor), max_length=128, pooling=POOLING,
                     head_hidden=32, dropout=0.1, metrics={"val_macro_f1": 0.5})


def test_ast_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    backbone, extractor = load_backbone(TINY, 128)
    model = ASTClassifier(backbone, 3, tabular_dim=2, head_hidden=32, dropout=0.1)
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 9000, 20000)]
    tabular = rng.standard_normal((3, 2))
    card = ast_card(model, extractor, ["f1", "f2"])
    save_model(model, card, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [CARD_FILE, WEIGHTS_FILE]
    assert json.loads((tmp_path / CARD_FILE).read_text())["backbone_config"]["hidden_size"] == 64

    loaded, loaded_card = load_model(str(tmp_path))
    assert loaded_card == card and not loaded.training
    values, n_frames = spectrograms(audios, extractor)
    scaled = standardise(tabular, *card.scaler)
    expected = batched_logits(model, values, n_frames, scaled)
    got = batched_logits(loaded, values, n_frames, scaled)
    np.testing.assert_array_equal(got, expected)
    probs = predict_proba(loaded, loaded_card, audios, tabular)
    e = np.exp(expected - expected.max(1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_tabular_input_is_required(tmp_path):
    torch.manual_seed(0)
    backbone, extractor = load_backbone(TINY, 128)
    model = ASTClassifier(backbone, 3, tabular_dim=2, head_hidden=32, dropout=0.1)
    save_model(model, ast_card(model, extractor, ["f1", "f2"]), str(tmp_path))
    loaded, card = load_model(str(tmp_path))
    with pytest.raises(ValueError, match="tabular"):
        predict_proba(loaded, card, [np.zeros(16000, np.float32)])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_model_matches_sklearn_and_round_trips(tmp_path, n_classes):
    rng = np.random.default_rng(n_classes)
    x = rng.standard_normal((90, 4)) * [1.0, 5.0, 0.1, 2.0] + [0.0, 3.0, -1.0, 0.5]
    y = rng.integers(0, n_classes, 90)
    x[:, 0] += y * 1.5
    model = fit_linear(x, y, n_classes, c=0.7)
    z = (x - x.mean(0)) / x.std(0)
    reference = LogisticRegression(C=0.7, class_weight="balanced", max_iter=5000).fit(z, y)
    np.testing.assert_allclose(model.predict_proba(x), reference.predict_proba(z), atol=1e-6)

    card = ModelCard(stage="features", classes=[f"c{i}" for i in range(n_classes)],
                     kind=KIND_LINEAR, fold=0, features=["a", "b", "c", "d"],
                     scaler_mean=model.mean.tolist(), scaler_scale=model.scale.tolist())
    save_model(model, card, str(tmp_path))
    loaded, loaded_card = load_model(str(tmp_path))
    assert read_card(str(tmp_path)).kind == KIND_LINEAR
    np.testing.assert_array_equal(predict_proba(loaded, loaded_card, tabular=x),
                                  model.predict_proba(x))
    # missing features count as the training mean
    with_nan = x[:1].copy()
    with_nan[0, 1] = np.nan
    filled = x[:1].copy()
    filled[0, 1] = model.mean[1]
    np.testing.assert_allclose(loaded.predict_proba(with_nan), loaded.predict_proba(filled))


def test_card_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown"):
        ModelCard.from_dict({"stage": "full", "classes": ["a"], "pickle": True})
