"""The plain-PyTorch training loop: it learns from streamed batches, weighs classes evenly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from serec.models.backbone import TINY, make_extractor
from serec.models.inputs import spectrograms, values_to_bytes
from serec.train.config import TrainConfig
from serec.train.data import REST, stage_task
from serec.train.loop import (
    FoldBatches,
    FoldTrainer,
    balanced_class_weights,
    macro_f1,
    run_folds,
)
from serec.train.splits import make_splits
from serec.train.synthetic import SYSTEMS, tone_clip
from serec.train.trials import FoldSpec

pytestmark = pytest.mark.timeout(180)


class ArrayBatches:
    """In-memory rows in the stored-input format, with Ray's ``iter_batches`` interface."""

    def __init__(self, clip_ids: np.ndarray, values: np.ndarray, n_frames: np.ndarray) -> None:
        self.clip_ids, self.values, self.n_frames = clip_ids, values, n_frames
        self.passes: list[np.ndarray] = []  # clip order of every pass

    def iter_batches(self, *, batch_size, batch_format, local_shuffle_buffer_size=None,
                     local_shuffle_seed=None):
        assert batch_format == "numpy"
        order = np.arange(len(self.clip_ids))
        if local_shuffle_seed is not None:
            order = np.random.default_rng(local_shuffle_seed).permutation(order)
        self.passes.append(self.clip_ids[order])
        for begin in range(0, len(order), batch_size):
            rows = order[begin:begin + batch_size]
            yield {"clip_id": self.clip_ids[rows],
                   "values": np.array(values_to_bytes(self.values[rows]), dtype=object),
                   "n_frames": self.n_frames[rows]}


def tone_pool(labels: list[str], max_length: int = 128,
              seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """``(pool columns, values, n_frames)`` of tone clips with these labels."""
    rng = np.random.default_rng(seed)
    values, n_frames = spectrograms([tone_clip(label, rng) for label in labels],
                                    make_extractor(max_length))
    pool = {"clip_id": np.array([f"c{i:03d}" for i in range(len(labels))], dtype=object),
            "targets": np.array([SYSTEMS.index(label) for label in labels]),
            "tabular": np.zeros((len(labels), 0))}
    return pool, values, n_frames


def fold_batches(pool: dict[str, np.ndarray], values: np.ndarray, n_frames: np.ndarray,
                 spec: FoldSpec) -> FoldBatches:
    def source(rows: np.ndarray) -> ArrayBatches:
        return ArrayBatches(pool["clip_id"][rows], values[rows], n_frames[rows])

    return FoldBatches(source(spec.train_idx), source(spec.val_idx))


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, p = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
        p[:3] = 5  # a predicted class that never occurs
        assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


def test_tiny_ast_overfits_sixteen_clips():
    labels = ["alpha"] * 8 + ["beta"] * 4 + ["gamma"] * 4
    pool, values, n_frames = tone_pool(labels, max_length=64)
    everything = np.arange(len(labels))
    spec = FoldSpec(0, everything, everything)
    config = TrainConfig(lr=3e-3, epochs=60, patience=60, batch_size=16, max_length=64,
                         dropout=0.0, head_hidden=64, label_smoothing=0.1)
    trainer = FoldTrainer(spec, pool, fold_batches(pool, values, n_frames, spec), config, TINY,
                          3)
    for _ in range(config.epochs):
        trainer.step()
        if trainer.evaluate()["macro_f1"] == 1.0:
            break
    assert trainer.evaluate()["macro_f1"] == 1.0
    assert trainer.epoch < config.epochs


def test_class_weights_make_every_class_weigh_the_same():
    targets = np.array([0] * 30 + [1] * 6 + [2] * 4)
    weights = balanced_class_weights(targets, 4)  # class 3 never occurs
    totals = weights[:3] * np.bincount(targets)
    assert np.allclose(totals, totals[0]) and weights[3] == 0.0
    assert np.isclose(np.mean(weights[targets]), 1.0)


def test_an_epoch_streams_every_training_clip_once_in_a_new_order():
    labels = ["alpha"] * 30 + ["beta"] * 6 + ["gamma"] * 4
    pool = {"clip_id": np.array([f"c{i:03d}" for i in range(40)], dtype=object),
            "targets": np.array([SYSTEMS.index(x) for x in labels]),
            "tabular": np.zeros((40, 0))}
    spec = FoldSpec(0, np.arange(32), np.arange(32, 40))
    values = np.zeros((40, 64, 128), np.float32)
    batches = fold_batches(pool, values, np.full(40, 60), spec)
    config = TrainConfig(max_length=64, batch_size=8, epochs=2, patience=2)
    trainer = FoldTrainer(spec, pool, batches, config, TINY, 3)
    trainer.train_epoch()
    trainer.train_epoch()
    first, second = batches.train.passes
    assert sorted(first) == sorted(second) == sorted(pool["clip_id"][:32])
    assert list(first) != list(second)
    assert trainer.samples_seen == 64
    expected = balanced_class_weights(pool["targets"][:32], 3)
    np.testing.assert_allclose(trainer.train_loss_fn.weight.numpy(), expected, rtol=1e-6)
    rows, logits = trainer.validation_logits()
    assert sorted(rows) == list(range(32, 40)) and logits.shape == (8, 3)


def test_early_stopping_and_lockstep_folds():
    labels = ["alpha", "beta", "gamma"] * 4
    pool, values, n_frames = tone_pool(labels, max_length=64)
    idx = np.arange(len(labels))
    folds = [FoldSpec(0, idx[idx % 2 == 0], idx[idx % 2 == 1]),
             FoldSpec(1, idx[idx % 2 == 1], idx[idx % 2 == 0])]
    # lr 0: the model never changes, so macro F1 never improves after epoch 1
    config = TrainConfig(lr=1e-12, epochs=20, patience=2, batch_size=6, max_length=64)
    reports = []
    summary = run_folds({"train": config.to_dict(), "backbone": TINY, "num_classes": 3,
                         "folds": folds, "pool": pool},
                        {s.fold: fold_batches(pool, values, n_frames, s) for s in folds},
                        lambda m, best: reports.append((m, best)))
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
    pool, values, n_frames = tone_pool(labels)
    pool["tabular"] = np.random.default_rng(0).standard_normal((8, 3))
    spec = FoldSpec.fit(0, np.arange(8), np.arange(8), pool["tabular"])
    trainer = FoldTrainer(spec, pool, fold_batches(pool, values, n_frames, spec),
                          TrainConfig(max_length=128, head_hidden=16), TINY, 2)
    assert trainer.module.tabular_dim == 3
    rows, base = trainer.validation_logits()
    pool["tabular"][rows[0]] += 10.0
    trainer.tabular = ((pool["tabular"] - spec.scaler_mean) / spec.scaler_scale).astype(np.float32)
    _, changed = trainer.validation_logits()
    assert not np.allclose(base[0], changed[0]) and np.allclose(base[1:], changed[1:], atol=1e-6)
