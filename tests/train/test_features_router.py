"""Training the boosted features router per fold on a tiny labeled run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serec.evaluate.ensemble import StageEnsemble
from serec.features.descriptors import AUDIO_FEATURE_COLUMNS
from serec.label.rule import ALL_FAILED
from serec.models.card import KIND_BOOSTED, KIND_BOOSTED_OVR
from serec.train.config import TrainConfig
from serec.train.features_router import boosted_pool, train_boosted
from serec.train.stage import train_stage
from tests.evaluate.tinyrun import FOLDS, build_tiny_run


def test_trains_every_fold_and_reloads_the_same_predictions(tmp_path):
    run = build_tiny_run(tmp_path, stages=())
    table = train_stage(run, "boosted")
    assert list(table["fold"]) == list(FOLDS) and (table["stage"] == "boosted").all()
    assert (table["val_macro_f1"] > 0.5).all()  # the three signal kinds are easy to tell apart
    pool, columns = boosted_pool(run)
    assert columns == list(AUDIO_FEATURE_COLUMNS)
    ensemble = StageEnsemble.load(run, "boosted")
    assert ensemble.folds == list(FOLDS)
    for member in ensemble.members:
        card = json.loads(Path(run.model_dir("boosted", member.fold), "card.json").read_text())
        assert card["kind"] == KIND_BOOSTED and card["classes"] == sorted(pool["label"].unique())
        val = pool[pool["fold"] == member.fold]
        assert member.card.metrics["n_val"] == len(val)
        assert member.card.metrics["n_train"] == int((pool["fold"] != member.fold).sum())
        probs = member.model.predict_proba(val[columns].to_numpy(np.float64))
        pred = np.asarray(member.card.classes)[probs.argmax(axis=1)]
        assert member.card.metrics["val_accuracy"] == pytest.approx(
            np.mean(pred == val["label"].to_numpy()))
    assert pd.read_parquet(Path(run.root) / "models" / "boosted" / "folds.parquet")[
        "fold"].tolist() == list(FOLDS)


def test_unknown_fold_and_missing_features(tmp_path):
    run = build_tiny_run(tmp_path, stages=())
    with pytest.raises(ValueError, match="do not exist"):
        train_boosted(run, folds=[7])
    import shutil

    shutil.rmtree(Path(run.root) / "features")
    with pytest.raises(FileNotFoundError, match="serec features"):
        train_boosted(run)


def test_ovr_target_regresses_every_labeled_system(tmp_path):
    run = build_tiny_run(tmp_path, stages=())
    table = train_stage(run, "boosted", config=TrainConfig(boosted_target="ovr"))
    assert (table["target"] == "ovr").all() and list(table["fold"]) == list(FOLDS)
    pool, columns = boosted_pool(run)
    systems = sorted(set(pool["label"]) - {ALL_FAILED})
    for member in StageEnsemble.load(run, "boosted").members:
        assert member.card.kind == KIND_BOOSTED_OVR and member.card.classes == systems
        assert member.card.train_config["temperature"] == TrainConfig().ovr_temperature
        val = pool[pool["fold"] == member.fold]
        picks = np.asarray(systems)[member.model.predict_proba(
            val[columns].to_numpy(np.float64)).argmax(axis=1)]
        labeled = val["label"].to_numpy() != ALL_FAILED
        # synthetic OVRs: the label wins by a wide margin, and the signal kinds separate
        assert np.mean(picks[labeled] == val["label"].to_numpy()[labeled]) > 0.8
        assert member.card.metrics["val_accuracy"] == pytest.approx(
            np.mean(picks == val["label"].to_numpy()))
    with pytest.raises(ValueError, match="target"):
        train_boosted(run, target="rank")
