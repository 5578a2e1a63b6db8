"""Training on tied sets: soft targets per stage, their class weights and loss, boosted rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from serec.evaluate.ensemble import StageEnsemble
from serec.models.backbone import TINY
from serec.train.config import TrainConfig
from serec.train.data import REST, soft_targets
from serec.train.features_router import boosted_pool, expand_soft, train_boosted
from serec.train.loop import FoldTrainer, balanced_class_weights, classification_metrics
from serec.train.trials import FoldSpec
from tests.evaluate.tinyrun import build_tiny_run
from tests.train.test_loop import fold_batches

pytestmark = pytest.mark.timeout(180)

FRAME = pd.DataFrame({
    "label": ["a", "b", "c", "all_failed", "b", "a"],
    "tied_systems": ["a,b", "a,b,c", "c", "b", "b", None],  # the last: an old label table
})


def test_soft_targets_of_each_stage():
    full = soft_targets(FRAME, ["a", "all_failed", "b", "c"], "full", "a")
    np.testing.assert_allclose(full, [
        [0.5, 0, 0.5, 0], [1 / 3, 0, 1 / 3, 1 / 3], [0, 0, 0, 1], [0, 1, 0, 0],  # all_failed:
        [0, 0, 1, 0], [1, 0, 0, 0]])                                             # hard label
    # gatekeeper: the majority with probability 1 whenever it is tied
    gate = soft_targets(FRAME, ["a", REST], "gatekeeper", "a")
    np.testing.assert_allclose(gate[:, 0], [1, 1, 0, 0, 0, 1])
    # expert (clips whose label is not the majority): uniform over its tied classes
    expert_rows = FRAME[FRAME["label"] != "a"].reset_index(drop=True)
    expert = soft_targets(expert_rows, ["all_failed", "b", "c"], "expert", "a")
    np.testing.assert_allclose(expert, [[0, 0.5, 0.5], [0, 0, 1], [1, 0, 0], [0, 1, 0]])
    no_column = soft_targets(FRAME.drop(columns="tied_systems"), ["a", "all_failed", "b", "c"],
                             "full", "a")
    assert (no_column.max(axis=1) == 1).all()  # old label tables: hard labels


def test_class_weights_from_soft_counts_and_tie_aware_validation():
    soft = np.array([[0.5, 0.5, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]])
    weights = balanced_class_weights(soft, 3)  # counts 2.5, 0.5, 1
    totals = weights * soft.sum(axis=0)
    assert np.allclose(totals, totals[0])
    logits = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    targets = np.array([0, 0, 0, 2])
    loss = torch.nn.CrossEntropyLoss()
    strict = classification_metrics(logits, targets, loss)
    tied = classification_metrics(logits, targets, loss, soft)
    assert strict["accuracy"] == 0.5 and tied["accuracy"] == 0.75  # clip 0 picked a tied class
    assert tied["loss"] == strict["loss"]


def test_fold_trainer_learns_from_target_distributions():
    rng = np.random.default_rng(0)
    n = 12
    soft = np.zeros((n, 3))
    soft[np.arange(n), np.arange(n) % 3] = 1.0
    soft[0] = [0.5, 0.5, 0.0]
    pool = {"clip_id": np.array([f"c{i:02d}" for i in range(n)], dtype=object),
            "targets": np.arange(n) % 3, "tabular": np.zeros((n, 0)), "soft_targets": soft}
    spec = FoldSpec(0, np.arange(8), np.arange(8, n))
    values = rng.standard_normal((n, 64, 128)).astype(np.float32)
    config = TrainConfig(max_length=64, batch_size=4, epochs=1, patience=1, soft_labels=True)
    trainer = FoldTrainer(spec, pool, fold_batches(pool, values, np.full(n, 60), spec), config,
                          TINY, 3)
    np.testing.assert_allclose(trainer.train_loss_fn.weight.numpy(),
                               balanced_class_weights(soft[:8], 3), rtol=1e-6)
    assert np.isfinite(trainer.train_epoch()["train_loss"])
    assert np.isfinite(trainer.evaluate()["macro_f1"])


def test_boosted_router_trains_one_weighted_row_per_tied_class(tmp_path):
    run = build_tiny_run(tmp_path, stages=())
    pool, columns = boosted_pool(run)
    classes = sorted(pool["label"].unique())
    soft = soft_targets(pool, classes, "boosted", "")
    x, y, w = expand_soft(pool[columns].to_numpy(np.float64), soft)
    tied = pool["tied_systems"].str.contains(",") & (pool["label"] != "all_failed")
    assert tied.any() and len(y) == len(pool) + int(tied.sum())
    assert np.allclose(np.bincount(np.repeat(np.arange(len(pool)), soft.astype(bool).sum(1)),
                                   weights=w), 1.0)  # every clip weighs 1 in all
    table = train_boosted(run, soft_labels=True)
    assert table["soft_labels"].all()
    for member in StageEnsemble.load(run, "boosted").members:
        tensors = member.model.tensors()
        train = (pool["fold"] != member.fold).to_numpy()
        assert len(tensors["w"]) == len(tensors["y"]) == soft[train].astype(bool).sum()
