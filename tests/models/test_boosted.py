"""The boosted features-router model: fit, predict, save as safetensors + card, reload."""

from __future__ import annotations

import numpy as np
import pytest

from serec.models.boosted import BoostedTreesModel
from serec.models.card import KIND_BOOSTED, ModelCard, load_model, save_model


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
