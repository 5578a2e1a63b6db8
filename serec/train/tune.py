"""``serec tune``: hyper-parameter search with Ray Tune and ASHA.

A search space is a YAML mapping ``param -> {type: ..., ...}`` over :class:`TrainConfig` keys:

* ``loguniform`` / ``uniform``: ``low``, ``high``
* ``randint``: ``low``, ``high`` (high exclusive)
* ``choice``: ``values`` (a list)

Each trial trains the folds ``config.tune_folds`` together (lock-step, in the trial process on
``cpus_per_worker`` CPUs or one GPU; see :func:`serec.train.trials.tune_trial` for why not a
TorchTrainer) and reports the fold mean of the best validation macro F1 so far every epoch;
ASHA stops poor trials. The best sampled values go to ``tune/<stage>/best.yaml`` in the run
(only the tuned keys, so they merge over any base config: :func:`tuned_config`) and every
trial's result to ``tune/<stage>/trials.parquet``.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pyarrow as pa
import yaml

from serec.models.backbone import DEFAULT_BACKBONE
from serec.ray_utils import epoch_progress, init_ray
from serec.runs import TUNE, RunDir
from serec.train.config import TrainConfig
from serec.train.data import AST_STAGES, stage_task
from serec.train.inputs import put_pool
from serec.train.stage import (
    RESULTS_DIR,
    base_card,
    check_trials_can_run,
    resolve_folds,
    run_stamp,
)
from serec.train.trials import MEAN_METRIC, FoldSpec, tune_trial

# Keys fixed for a whole tune run: they shape the precomputed inputs, the tabular vector or
# the resources every trial reserves.
FIXED_KEYS = ("max_length", "hybrid", "use_dnsmos", "majority", "num_workers", "use_gpu",
              "cpus_per_worker", "tune_folds", "epochs", "seed")
SPACE_TYPES = ("loguniform", "uniform", "randint", "choice")


def _number(param: str, spec: dict[str, Any], key: str) -> float:
    if key not in spec:
        raise ValueError(f"search space '{param}' needs '{key}'")
    try:
        return float(spec[key])
    except (TypeError, ValueError):
        raise ValueError(f"search space '{param}': '{key}' must be a number, "
                         f"got {spec[key]!r}") from None


def parse_search_space(space: dict[str, Any]) -> dict[str, Any]:
    """YAML mapping -> Ray Tune sample objects; unknown or fixed keys raise ValueError."""
    from ray import tune

    names = set(TrainConfig().to_dict())
    out = {}
    for param, spec in space.items():
        if param not in names:
            raise ValueError(f"search space names unknown train config key '{param}'")
        if param in FIXED_KEYS:
            raise ValueError(f"search space key '{param}' cannot be tuned (fixed per tune run)")
        if not isinstance(spec, dict) or spec.get("type") not in SPACE_TYPES:
            raise ValueError(f"search space '{param}' must be a mapping with type one of "
                             f"{SPACE_TYPES}")
        kind = spec["type"]
        if kind == "choice":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise ValueError(f"search space '{param}': choice needs a non-empty 'values' list")
            out[param] = tune.choice(values)
            continue
        low, high = _number(param, spec, "low"), _number(param, spec, "high")
        if not low < high or (kind == "loguniform" and low <= 0):
            raise ValueError(f"search space '{param}': need 0 < low < high for loguniform, "
                             f"low < high otherwise (got {low}, {high})")
        if kind == "loguniform":
            out[param] = tune.loguniform(low, high)
        elif kind == "uniform":
            out[param] = tune.uniform(low, high)
        else:
            out[param] = tune.randint(int(low), int(high))
    if not out:
        raise ValueError("the search space is empty")
    return out


def load_search_space(path: str | os.PathLike) -> dict[str, Any]:
    """Read a search-space YAML file into Ray Tune sample objects."""
    with open(path) as f:
        space = yaml.safe_load(f)
    if not isinstance(space, dict):
        raise ValueError(f"{path} must hold a mapping of train config keys")
    return parse_search_space(space)


def tuned_config(run: RunDir, stage: str, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (or defaults) with ``tune/<stage>/best.yaml`` of the run merged over it."""
    data = yaml.safe_load(run.read_bytes(f"{TUNE}/{stage}/best.yaml")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{run.path(TUNE, stage, 'best.yaml')} must hold a mapping")
    return (base or TrainConfig()).merged(data)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python values (for YAML)."""
    return value.item() if hasattr(value, "item") else value


def tune_stage(run: RunDir, stage: str, search_space_yaml_path: str | os.PathLike,
               config: TrainConfig | None = None, num_samples: int = 8,
               backbone: str = DEFAULT_BACKBONE, grace_period: int = 1,
               reduction_factor: int = 2) -> dict[str, Any]:
    """Search ``stage``'s hyper-parameters; writes ``tune/<stage>/best.yaml``.

    Returns ``{"best_config", "best_metric", "metric", "best_path", "trials"}``; ``trials`` is
    the per-trial table (also written to ``tune/<stage>/trials.parquet``).
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if stage not in AST_STAGES:
        raise ValueError(f"tune supports the stages {AST_STAGES}, not '{stage}'")
    if num_samples < 1:
        raise ValueError("num_samples must be at least 1")
    space = load_search_space(search_space_yaml_path)
    config = config or TrainConfig()
    task = stage_task(run, stage, config)
    folds = resolve_folds(task, list(config.tune_folds))
    init_ray()
    check_trials_can_run(config, f"tuning {stage}")
    data_ref, extractor = put_pool(task, backbone, config.max_length)
    stamp = run_stamp()
    shared = {"data": data_ref, "train": config.to_dict(), "backbone": backbone,
              "num_classes": len(task.classes), "stage": stage, "folds": folds,
              "storage": run.path(RESULTS_DIR), "stamp": stamp,
              "card": base_card(task, backbone, extractor, config),
              "specs": {k: FoldSpec.fit(k, *task.fold_indices(k), task.tabular) for k in folds}}
    scheduler = ASHAScheduler(max_t=config.epochs, grace_period=min(grace_period, config.epochs),
                              reduction_factor=reduction_factor)
    single = config.merged({"num_workers": 1})
    resources = {"cpu": single.cpus_per_worker, "gpu": 1 if single.use_gpu else 0}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(tune_trial, shared=shared), resources),
        param_space=space,
        tune_config=tune.TuneConfig(metric=MEAN_METRIC, mode="max", scheduler=scheduler,
                                    num_samples=num_samples,
                                    max_concurrent_trials=config.max_concurrent_trials),
        run_config=tune.RunConfig(name=f"tune_{stage}_{stamp}",
                                  storage_path=run.path(RESULTS_DIR), verbose=0,
                                  callbacks=[epoch_progress(f"tune {stage}", num_samples,
                                                            config.epochs)]))
    grid = tuner.fit()
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        rows.append({**{k: _plain(result.config.get(k)) for k in space},
                     MEAN_METRIC: metrics.get(MEAN_METRIC), "epochs": metrics.get("epoch"),
                     "error": None if result.error is None else str(result.error)})
    trials = pd.DataFrame(rows)
    if trials[MEAN_METRIC].isna().all():
        raise RuntimeError(f"every tune trial of {stage} failed: {trials['error'].tolist()}")
    best = grid.get_best_result(metric=MEAN_METRIC, mode="max", scope="all")
    best_config = {k: _plain(best.config[k]) for k in space}
    config.merged(best_config)  # validates the sampled values
    best_rel = f"{TUNE}/{stage}/best.yaml"
    header = (f"# best {stage} config of {len(trials)} trials: {MEAN_METRIC} = "
              f"{best.metrics[MEAN_METRIC]:.4f} on folds {folds}\n")
    run.write_bytes(best_rel, (header + yaml.safe_dump(best_config, sort_keys=True)).encode())
    run.write_table(f"{TUNE}/{stage}/trials.parquet",
                    pa.Table.from_pandas(trials, preserve_index=False))
    return {"best_config": best_config, "best_metric": float(best.metrics[MEAN_METRIC]),
            "metric": MEAN_METRIC, "best_path": run.path(best_rel), "trials": trials}
