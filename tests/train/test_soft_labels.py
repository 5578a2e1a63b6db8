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


def test_temperature_targets_follow_the_ovr_gaps():
    frame = FRAME.assign(a_ovr=[3.0, 2.0, 2.5, 1.5, 3.0, 3.0],
                         b_ovr=[3.0, 2.1, 2.5, 1.0, 2.9, 2.0],
                         c_ovr=[2.0, 2.0, 3.0, 1.0, np.nan, 2.0])
    classes = ["a", "all_failed", "b", "c"]
    soft = soft_targets(frame, classes, "full", "a", temperature=0.1)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert soft[0, 0] == pytest.approx(soft[0, 2]) and soft[0, 3] < 1e-4  # 1 OVR worse: ~0
    assert soft[1, 2] / soft[1, 0] == pytest.approx(np.e)  # 0.1 OVR = one temperature
    np.testing.assert_allclose(soft[3], [0, 1, 0, 0])  # all_failed keeps its hard label
    assert soft[4, 3] == 0.0 and soft[4, 0] / soft[4, 2] == pytest.approx(np.e)  # NaN OVR: 0
    # temperature 0: the tied sets, as before
    np.testing.assert_allclose(soft_targets(frame, classes, "full", "a"),
                               soft_targets(FRAME, classes, "full", "a"))


def test_boosted_router_with_a_temperature_validates_on_tied_sets(tmp_path):
    run = build_tiny_run(tmp_path, stages=())
    table = train_boosted(run, soft_labels=True, soft_temperature=0.05)
    assert (table["soft_temperature"] == 0.05).all()
    pool, columns = boosted_pool(run)
    classes = sorted(pool["label"].unique())
    systems = [c for c in classes if f"{c}_ovr" in pool]
    failed = (pool["label"] == "all_failed").to_numpy()
    tied = soft_targets(pool, classes, "boosted", "")
    y = pool["label"].map(classes.index).to_numpy()
    accuracy = dict(zip(table["fold"], table["val_accuracy"], strict=True))
    for member in StageEnsemble.load(run, "boosted").members:
        train = (pool["fold"] != member.fold).to_numpy()
        # a row per (clip, system class) for system labels, the hard label for all_failed
        assert len(member.model.tensors()["y"]) == (
            (train & ~failed).sum() * len(systems) + (train & failed).sum())
        # validation resolves ties with the tied sets, not with every class of positive weight
        val = ~train
        pred = member.model.predict_proba(pool[columns].to_numpy(np.float64)[val]).argmax(1)
        truth = np.where(tied[val][np.arange(val.sum()), pred] > 0, pred, y[val])
        assert accuracy[member.fold] == pytest.approx(float(np.mean(pred == truth)))


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
