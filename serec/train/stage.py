"""``serec train``: one model per fold, folds in parallel as Ray Tune trials.

Each trial is a Tune *function* trainable that runs one ``TorchTrainer`` for one fold (a
``TorchTrainer`` cannot itself be a Tune trainable under Ray Train V2). The trial only drives
its trainer, so it reserves no CPU; the Train workers reserve ``num_workers x cpus_per_worker``
CPUs (and GPUs), and trials queue for those resources (at most ``train.max_concurrent_trials``
at once, default unbounded), so an autoscaler sees the demand and adds nodes. The pool's AST
inputs are stored once in the run (``inputs/<key>/``, :mod:`serec.train.inputs`) and each
trial's workers stream their fold's share of them. The best
checkpoint of each fold lands in ``models/<stage>/fold_<k>/``; a per-fold metrics table is
returned and written to ``models/<stage>/folds.parquet``.

The ``features`` stage fits a linear model per fold directly (seconds; no Ray Train).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from torch import nn

from serec.cluster.capacity import check_request_fits, worker_bundle
from serec.models.backbone import DEFAULT_BACKBONE
from serec.models.card import KIND_LINEAR, ModelCard, save_model
from serec.models.heads import POOLING
from serec.models.tabular import fit_linear
from serec.ray_utils import epoch_progress, init_ray
from serec.runs import MODELS, RunDir
from serec.train.config import TrainConfig
from serec.train.data import StageTask, stage_task
from serec.train.features_router import BOOSTED, train_boosted
from serec.train.inputs import prepare_inputs
from serec.train.loop import classification_metrics
from serec.train.trials import FoldSpec, fold_trial

RESULTS_DIR = "ray_results"
# A trial process only waits on its TorchTrainer: it reserves a little memory, no CPU
# (a Tune resource request must name some positive amount).
TRIAL_RESOURCES = {"cpu": 0, "memory": 64 * 2**20}
SUMMARY_KEYS = ("fold", "best_epoch", "epochs_trained", "val_macro_f1", "val_accuracy",
                "val_loss", "n_train", "n_val", "train_seconds", "samples_per_s", "workers")


def check_trials_can_run(config: TrainConfig, what: str) -> None:
    """Fail now only if one fold's Train worker fits no node the cluster has or can launch."""
    check_request_fits(worker_bundle(config.cpus_per_worker, 1.0 if config.use_gpu else 0.0),
                       what)


def resolve_folds(task: StageTask, folds: list[int] | None) -> list[int]:
    if folds is None:
        return task.folds
    unknown = sorted(set(folds) - set(task.folds))
    if unknown:
        raise ValueError(f"fold(s) {unknown} do not exist; the split has folds {task.folds}")
    return sorted(set(folds))


def base_card(task: StageTask, backbone: str, extractor: dict[str, Any],
              config: TrainConfig) -> dict[str, Any]:
    """Card fields shared by every fold of a stage."""
    return {"stage": task.stage, "classes": task.classes, "features": task.feature_columns,
            "threshold": config.threshold, "positive_class": task.positive_class,
            "backbone": backbone, "extractor": extractor, "pooling": POOLING}


def run_stamp() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def trial_shared(run: RunDir, task: StageTask, folds: list[int], backbone: str,
                 config: TrainConfig) -> dict[str, Any]:
    """What every trial of a stage shares: the stored inputs' handle and small columns only.

    The pool's AST inputs are stored in the run first (only clips not stored yet are
    computed); trials stream them, so no spectrogram travels in the trial config.
    """
    stored = prepare_inputs(run, task.frame, backbone, config.max_length)
    return {"inputs": {"run_root": stored.run_root, "params": stored.params},
            "pool": {"clip_id": task.frame["clip_id"].astype(str).to_numpy(),
                     "targets": task.targets, "tabular": task.tabular,
                     **({} if task.soft is None else {"soft_targets": task.soft})},
            "train": config.to_dict(), "backbone": backbone, "num_classes": len(task.classes),
            "stage": task.stage, "storage": run.path(RESULTS_DIR), "stamp": run_stamp(),
            "card": base_card(task, backbone, stored.params, config),
            "specs": {k: FoldSpec.fit(k, *task.fold_indices(k), task.tabular) for k in folds}}


def run_fold_trials(run: RunDir, task: StageTask, folds: list[int], backbone: str,
                    config: TrainConfig,
                    max_concurrent: int | None = None) -> list[dict[str, Any]]:
    """Store the pool's inputs (once per run and extractor), then one Tune trial per fold.

    Returns per-fold summaries.
    """
    from ray import tune

    check_trials_can_run(config, f"training {task.stage}")
    shared = {**trial_shared(run, task, folds, backbone, config), "run_root": run.root}
    trainable = tune.with_resources(tune.with_parameters(fold_trial, shared=shared),
                                    TRIAL_RESOURCES)
    tuner = tune.Tuner(
        trainable, param_space={"fold": tune.grid_search(folds)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent or config.max_concurrent_trials),
        run_config=tune.RunConfig(name=f"train_{task.stage}_{shared['stamp']}",
                                  storage_path=run.path(RESULTS_DIR), verbose=0,
                                  callbacks=[epoch_progress(f"train {task.stage}", len(folds),
                                                            config.epochs)]))
    grid = tuner.fit()
    failed = [f"fold {r.config.get('fold')}: {r.error}" for r in grid if r.error]
    if failed:
        raise RuntimeError(f"training {task.stage} failed for " + "; ".join(failed))
    return [{k: r.metrics[k] for k in (*SUMMARY_KEYS, "model_dir", "node_id")} for r in grid]


def train_features(run: RunDir, task: StageTask, folds: list[int],
                   config: TrainConfig) -> list[dict[str, Any]]:
    """Fit and save the linear ``features`` baseline for each fold."""
    x, y = task.tabular, task.targets
    loss_fn = nn.CrossEntropyLoss()
    rows = []
    for fold in folds:
        start = time.perf_counter()
        train_idx, val_idx = task.fold_indices(fold)
        model = fit_linear(x[train_idx], y[train_idx], len(task.classes), config.features_c,
                           config.seed)
        seconds = time.perf_counter() - start
        val = classification_metrics(model.logits(x[val_idx]).astype(np.float32), y[val_idx],
                                     loss_fn)
        summary = {"fold": fold, "best_epoch": 0, "epochs_trained": 0,
                   "val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"],
                   "val_loss": val["loss"], "n_train": len(train_idx), "n_val": len(val_idx),
                   "train_seconds": seconds, "samples_per_s": len(train_idx) / seconds,
                   "workers": 0}
        card = ModelCard(stage=task.stage, classes=task.classes, kind=KIND_LINEAR, fold=fold,
                         features=task.feature_columns, scaler_mean=model.mean.tolist(),
                         scaler_scale=model.scale.tolist(), metrics=summary,
                         train_config=config.to_dict())
        model_dir = run.model_dir(task.stage, fold)
        save_model(model, card, model_dir)
        rows.append({**summary, "model_dir": model_dir})
    return rows


def train_stage(run: RunDir, stage: str, folds: list[int] | None = None,
                backbone: str = DEFAULT_BACKBONE, config: TrainConfig | None = None,
                max_concurrent_trials: int | None = None) -> pd.DataFrame:
    """Train ``stage`` (gatekeeper | expert | full | features | boosted) on ``folds``
    (default: all).

    Writes ``models/<stage>/fold_<k>/`` (model.safetensors + card.json) for every fold and
    returns the per-fold validation metrics. ``backbone`` is ``tiny``, a hub id or a local
    directory; ignored by the ``features`` stage. Folds train as parallel trials that queue
    for resources, at most ``max_concurrent_trials`` (else ``config.max_concurrent_trials``) at
    once. To train with tuned
    settings pass ``serec.train.tune.tuned_config(run, stage, base=config)``.
    """
    config = config or TrainConfig()
    if stage == BOOSTED:  # the features router (serec.train.features_router)
        return train_boosted(run, folds, config.seed, soft_labels=config.soft_labels,
                             soft_temperature=config.soft_temperature,
                             target=config.boosted_target,
                             ovr_temperature=config.ovr_temperature)
    task = stage_task(run, stage, config)
    folds = resolve_folds(task, folds)
    if stage == "features":
        rows = train_features(run, task, folds, config)
    else:
        init_ray()
        rows = run_fold_trials(run, task, folds, backbone, config, max_concurrent_trials)
    table = pd.DataFrame(rows).sort_values("fold").reset_index(drop=True)
    table.insert(0, "stage", stage)
    run.write_table(f"{MODELS}/{stage}/folds.parquet",
                    pa.Table.from_pandas(table, preserve_index=False))
    return table
