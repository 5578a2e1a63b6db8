"""``train_stage`` and ``tune_stage`` end to end on a tiny labeled run (real Ray Train/Tune)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from serec.models.backbone import TINY
from serec.models.card import CARD_FILE, KIND_LINEAR, WEIGHTS_FILE, load_model
from serec.models.predict import predict_proba
from serec.runs import MODELS
from serec.train.config import TrainConfig
from serec.train.data import stage_task
from serec.train.inputs import StoredInputs, stage_extractor_params
from serec.train.splits import make_splits
from serec.train.stage import train_stage
from serec.train.synthetic import build_tone_run
from serec.train.tune import tune_stage, tuned_config

pytestmark = [pytest.mark.slow]

TINY_CONFIG = TrainConfig(max_length=128, epochs=2, batch_size=8, lr=1e-3, head_hidden=32,
                          num_workers=2, cpus_per_worker=0.5)


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    run = build_tone_run(tmp_path_factory.mktemp("stage"))
    make_splits(run, folds=2, test_fraction=0.15)
    return run


@pytest.mark.timeout(60)
def test_features_stage_writes_linear_models(split_run):
    table = train_stage(split_run, "features", config=TrainConfig())
    assert table["fold"].tolist() == [0, 1] and (table["workers"] == 0).all()
    model, card = load_model(split_run.model_dir("features", 0))
    assert card.kind == KIND_LINEAR and card.classes == ["alpha", "beta", "gamma"]
    assert len(card.features) == 9
    task = stage_task(split_run, "features", TrainConfig())
    train_idx, _ = task.fold_indices(0)
    np.testing.assert_allclose(card.scaler_mean, task.tabular[train_idx].mean(0))
    probs = predict_proba(model, card, tabular=task.tabular[:5])
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1)


@pytest.mark.timeout(420)
def test_train_stage_runs_folds_as_parallel_two_worker_trials(ray_session, split_run):
    table = train_stage(split_run, "expert", folds=None, backbone=TINY, config=TINY_CONFIG)
    assert table["fold"].tolist() == [0, 1]
    assert (table["workers"] == 2).all() and (table["epochs_trained"] == 2).all()
    assert table["val_macro_f1"].between(0, 1).all()
    assert split_run.has_table(f"{MODELS}/expert/folds.parquet")
    task = stage_task(split_run, "expert", TINY_CONFIG)
    for row in table.itertuples():
        folder = split_run.model_dir("expert", row.fold)
        assert split_run.exists(f"{MODELS}/expert/fold_{row.fold}/{WEIGHTS_FILE}")
        assert split_run.exists(f"{MODELS}/expert/fold_{row.fold}/{CARD_FILE}")
        model, card = load_model(folder)
        assert card.fold == row.fold and card.stage == "expert"
        assert card.classes == ["beta", "gamma"] and card.backbone == TINY
        assert len(card.features) == 9 and card.max_length == 128
        assert card.metrics["val_macro_f1"] == pytest.approx(row.val_macro_f1)
        train_idx, _ = task.fold_indices(row.fold)  # the scaler saw the training fold only
        np.testing.assert_allclose(card.scaler_mean, task.tabular[train_idx].mean(0))
        assert model.tabular_dim == 9 and model.head[-1].out_features == 2
    stored = StoredInputs(split_run.root, stage_extractor_params(TINY, 128))
    assert stored.stored_clip_ids() == set(task.frame["clip_id"])  # the expert's pool, stored


@pytest.mark.timeout(420)
def test_tune_stage_writes_a_loadable_best_config(ray_session, split_run, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3},
                                     "head_hidden": {"type": "choice", "values": [16, 32]}}))
    config = TINY_CONFIG.merged({"num_workers": 1, "cpus_per_worker": 1.0})
    stored = StoredInputs(split_run.root, stage_extractor_params(TINY, 128))
    before = set(stored.parts())
    out = tune_stage(split_run, "gatekeeper", space, config, num_samples=2, backbone=TINY)
    assert len(out["trials"]) == 2 and out["trials"]["error"].isna().all()
    assert set(out["best_config"]) == {"lr", "head_hidden"}
    assert 0.0 <= out["best_metric"] <= 1.0
    assert out["best_metric"] == pytest.approx(out["trials"][out["metric"]].max())
    assert split_run.exists("tune/gatekeeper/best.yaml")
    merged = tuned_config(split_run, "gatekeeper", config)
    assert merged.head_hidden == out["best_config"]["head_hidden"]
    assert merged.epochs == 2 and 1e-4 <= merged.lr <= 3e-3
    gate = stage_task(split_run, "gatekeeper", config)
    assert stored.stored_clip_ids() == set(gate.frame["clip_id"])
    assert before <= set(stored.parts())  # the expert's parts were reused, not rewritten
