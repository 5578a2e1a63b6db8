"""The boosted features-router model: fit, predict, save as safetensors + card, reload."""

from __future__ import annotations

import numpy as np
import pytest

from serec.models.boosted import BoostedTreesModel, OvrRegressionModel, cost_scores
from serec.models.card import (
    KIND_BOOSTED,
    KIND_BOOSTED_OVR,
    ModelCard,
    load_model,
    ovr_temperature,
    save_model,
)


def _data(rng: np.random.Generator, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)) + np.eye(3, 4)[y] * 3.0
    x[rng.random(x.shape) < 0.05] = np.nan  # descriptors may be missing (no speech offset)
    return x, y


def test_learns_and_reloads_to_identical_probabilities(rng, tmp_path):
    x, y = _data(rng)
    model = BoostedTreesModel(x[:90], y[:90], num_classes=4, params={"max_iter": 50})
    probs = model.predict_proba(x[90:])
    assert probs.shape == (30, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert np.all(probs[:, 3] == 0.0)  # a class never seen in training
    assert np.mean(probs.argmax(axis=1) == y[90:]) > 0.8
    card = ModelCard(stage="boosted", classes=["a", "b", "c", "d"], kind=KIND_BOOSTED, fold=0,
                     features=["f0", "f1", "f2", "f3"], train_config={"params": model.params})
    save_model(model, card, str(tmp_path / "fold_0"))
    loaded, loaded_card = load_model(str(tmp_path / "fold_0"))
    assert loaded_card.kind == KIND_BOOSTED and loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict_proba(x[90:]), probs)


def test_one_class_and_no_rows(rng):
    x, _ = _data(rng, 10)
    model = BoostedTreesModel(x, np.full(10, 1), num_classes=2)
    np.testing.assert_array_equal(model.predict_proba(x[:3]), [[0, 1]] * 3)
    fitted = BoostedTreesModel(*_data(rng, 40), num_classes=3)
    assert fitted.predict_proba(np.zeros((0, 4))).shape == (0, 3)
    with pytest.raises(ValueError):
        BoostedTreesModel(x, np.arange(10) % 2, 2, params={"max_iter": 0})


def _ovr_data(rng: np.random.Generator, n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """System 0 wins by 0.4 where feature 0 is positive, system 1 elsewhere; system 2 is a
    hair (0.01) behind the winner everywhere; every clip's level varies by a lot more."""
    x = rng.standard_normal((n, 3))
    level = rng.normal(3.0, 0.5, n)[:, None]
    first = x[:, 0] > 0
    ovr = level + np.column_stack([np.where(first, 0.4, 0.0), np.where(first, 0.0, 0.4),
                                   np.full(n, 0.39)]) + rng.normal(0, 0.02, (n, 3))
    return x, ovr


def test_ovr_regression_routes_by_predicted_ovr_and_reloads(rng, tmp_path):
    x, ovr = _ovr_data(rng)
    ovr[5, 2] = np.nan  # a system without a score on one clip
    model = OvrRegressionModel(x[:120], ovr[:120], params={"max_iter": 60})
    predicted = model.predict_ovr(x[120:])
    truth = np.where(x[120:, 0] > 0, 0, 1)
    assert np.mean(predicted[:, :2].argmax(axis=1) == truth) > 0.9
    # centred on the clip's mean: the shared level is not predicted
    assert np.abs(predicted.mean(axis=1)).max() < 0.05
    probs = model.predict_proba(x[120:])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # system 2 is 0.01 behind the winner: at temperature 0.05 it keeps about exp(-0.2) of
    # the winner's probability, far from the loser's exp(-8)
    winner = probs[np.arange(40), truth]
    assert np.median(probs[:, 2] / winner) == pytest.approx(np.exp(-0.2), abs=0.15)
    assert np.mean(probs[np.arange(40), 1 - truth] < 0.01) > 0.9
    card = ModelCard(stage="boosted", classes=["a", "b", "c"], kind=KIND_BOOSTED_OVR, fold=0,
                     features=["f0", "f1", "f2"],
                     train_config={"params": model.params, "temperature": 0.05})
    save_model(model, card, str(tmp_path / "fold_0"))
    loaded, loaded_card = load_model(str(tmp_path / "fold_0"))
    assert isinstance(loaded, OvrRegressionModel) and loaded_card.kind == KIND_BOOSTED_OVR
    np.testing.assert_array_equal(loaded.predict_proba(x[120:]), probs)


def test_ovr_regression_temperature_and_unscored_system(rng):
    x, ovr = _ovr_data(rng, 40)
    sharp = OvrRegressionModel(x, ovr, {"max_iter": 20}, temperature=0.01).predict_proba(x)
    soft = OvrRegressionModel(x, ovr, {"max_iter": 20}, temperature=1.0).predict_proba(x)
    assert sharp.max(axis=1).mean() > soft.max(axis=1).mean()
    ovr[:, 1] = np.nan  # never scored: never chosen
    probs = OvrRegressionModel(x, ovr, {"max_iter": 20}).predict_proba(x)
    assert np.all(probs[:, 1] == 0.0) and probs.shape == (40, 3)
    assert OvrRegressionModel(x, ovr).predict_proba(np.zeros((0, 3))).shape == (0, 3)
    with pytest.raises(ValueError, match="temperature"):
        OvrRegressionModel(x, ovr, temperature=0.0)


def test_cost_scores_of_an_ovr_model_are_its_predicted_ovr_differences(rng):
    x, ovr = _ovr_data(rng, 60)
    model = OvrRegressionModel(x, ovr, {"max_iter": 20}, temperature=0.05)
    probs = model.predict_proba(x[:5])
    np.testing.assert_array_equal(cost_scores(probs, None), probs)
    scores, predicted = cost_scores(probs, 0.05), model.predict_ovr(x[:5])
    np.testing.assert_allclose(scores - scores[:, :1], predicted - predicted[:, :1], atol=1e-9)
    card = ModelCard(stage="boosted", classes=["a", "b", "c"], kind=KIND_BOOSTED_OVR,
                     train_config={"temperature": 0.2})
    assert ovr_temperature([card, card]) == 0.2
    assert ovr_temperature([ModelCard(stage="boosted", classes=["a"], kind=KIND_BOOSTED)]) is None
    with pytest.raises(ValueError, match="disagree"):
        ovr_temperature([card, ModelCard(stage="boosted", classes=["a", "b", "c"],
                                         kind=KIND_BOOSTED_OVR, train_config={})])
