"""The plain-PyTorch training loop: it learns, samples balanced, scores like scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from serec.models.backbone import TINY, make_extractor
from serec.models.inputs import spectrograms
from serec.train.config import TrainConfig
from serec.train.data import REST, stage_task
from serec.train.loop import FoldTrainer, macro_f1, run_folds
from serec.train.splits import make_splits
from serec.train.synthetic import SYSTEMS, tone_clip
from serec.train.trials import FoldSpec

pytestmark = pytest.mark.timeout(180)


def tone_pool(labels: list[str], max_length: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values, n_frames = spectrograms([tone_clip(label, rng) for label in labels],
                                    make_extractor(max_length))
    return {"values": values, "n_frames": n_frames,
            "targets": np.array([SYSTEMS.index(label) for label in labels]),
            "tabular": np.zeros((len(labels), 0))}


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, p = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
        p[:3] = 5  # a predicted class that never occurs
        assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


def test_tiny_ast_overfits_sixteen_clips():
    labels = ["alpha"] * 8 + ["beta"] * 4 + ["gamma"] * 4
    data = tone_pool(labels, max_length=64)
    everything = np.arange(len(labels))
    config = TrainConfig(lr=3e-3, epochs=60, patience=60, batch_size=16, max_length=64,
                         dropout=0.0, head_hidden=64, label_smoothing=0.1)
    trainer = FoldTrainer(FoldSpec(0, everything, everything), data, config, TINY, 3)
    for _ in range(config.epochs):
        trainer.step()
        if trainer.evaluate(everything)["macro_f1"] == 1.0:
            break
    assert trainer.evaluate(everything)["macro_f1"] == 1.0
    assert trainer.epoch < config.epochs


def test_balanced_draw_evens_out_classes():
    labels = ["alpha"] * 30 + ["beta"] * 6 + ["gamma"] * 4
    data = {"values": np.zeros((40, 128, 128), np.float32), "n_frames": np.full(40, 98),
            "targets": np.array([SYSTEMS.index(x) for x in labels]),
            "tabular": np.zeros((40, 0))}
    trainer = FoldTrainer(FoldSpec(0, np.arange(40), np.arange(0)), data,
                          TrainConfig(max_length=128), TINY, 3)
    counts = np.zeros(3)
    for epoch in range(50):
        trainer.epoch = epoch
        rows = trainer.balanced_draw()
        assert len(rows) == 40
        counts += np.bincount(data["targets"][rows], minlength=3)
    assert np.allclose(counts / counts.sum(), 1 / 3, atol=0.04)


def test_early_stopping_and_lockstep_folds():
    labels = ["alpha", "beta", "gamma"] * 4
    data = tone_pool(labels, max_length=64)
    idx = np.arange(len(labels))
    folds = [FoldSpec(0, idx[idx % 2 == 0], idx[idx % 2 == 1]),
             FoldSpec(1, idx[idx % 2 == 1], idx[idx % 2 == 0])]
    # lr 0: the model never changes, so macro F1 never improves after epoch 1
    config = TrainConfig(lr=1e-12, epochs=20, patience=2, batch_size=6, max_length=64)
    reports = []
    summary = run_folds({"train": config.to_dict(), "backbone": TINY, "num_classes": 3,
                         "folds": folds}, data, lambda m, best: reports.append((m, best)))
    assert [s["epochs_trained"] for s in summary["folds"]] == [3, 3]
    assert len(reports) == 3 and all(best is None for _, best in reports)  # two folds: no ckpt
    assert "fold_1_val_macro_f1" in reports[0][0] and "val_macro_f1_mean" in reports[0][0]
    assert summary["world_size"] == 1


def test_scaler_is_fit_on_the_training_fold_only(tiny_run):
    run = tiny_run
    make_splits(run, folds=2, test_fraction=0.15)
    task = stage_task(run, "expert", TrainConfig())
    assert task.feature_columns and "alpha" not in task.classes
    x = task.tabular
    train_idx, val_idx = task.fold_indices(0)
    spec = FoldSpec.fit(0, train_idx, val_idx, x)
    np.testing.assert_allclose(spec.scaler_mean, x[train_idx].mean(0))
    np.testing.assert_allclose(spec.scaler_scale, x[train_idx].std(0))
    assert not np.allclose(spec.scaler_mean, x.mean(0))
    gate = stage_task(run, "gatekeeper", TrainConfig())
    assert gate.classes == ["alpha", REST] and gate.feature_columns == []
    expert_val = set(task.frame["clip_id"].to_numpy()[val_idx])
    gate_val = set(gate.frame["clip_id"].to_numpy()[gate.fold_indices(0)[1]])
    assert expert_val <= gate_val  # same split: the expert's fold k is a subset of the gate's


def test_hybrid_model_uses_the_tabular_vector():
    labels = ["alpha", "beta"] * 4
    data = tone_pool(labels)
    data["tabular"] = np.random.default_rng(0).standard_normal((8, 3))
    spec = FoldSpec.fit(0, np.arange(8), np.arange(8), data["tabular"])
    trainer = FoldTrainer(spec, data, TrainConfig(max_length=128, head_hidden=16), TINY, 2)
    assert trainer.module.tabular_dim == 3
    base = trainer.logits(np.arange(8))
    data["tabular"][0] += 10.0
    trainer.tabular = ((data["tabular"] - spec.scaler_mean) / spec.scaler_scale).astype(np.float32)
    changed = trainer.logits(np.arange(8))
    assert not np.allclose(base[0], changed[0]) and np.allclose(base[1:], changed[1:], atol=1e-6)
