"""Ray entry points: the Train worker loop, one ``TorchTrainer`` run, and the Tune trials.

Tune trial processes and Train controllers import this module to unpickle their functions,
so it imports nothing heavy at the top: torch models, transformers and the loop are loaded
inside the functions that run on training workers (each import costs seconds per process).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serec.models.tabular import fit_scaler
from serec.runs import RunDir
from serec.train.config import TrainConfig

METRIC = "val_macro_f1"
# fold mean of each fold's best validation macro F1 so far: what Tune/ASHA optimise
MEAN_METRIC = "val_macro_f1_mean"


@dataclass
class FoldSpec:
    """One fold's pool positions and the tabular scaler fitted on its training rows only."""

    fold: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    scaler_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scaler_scale: np.ndarray = field(default_factory=lambda: np.ones(0))

    @classmethod
    def fit(cls, fold: int, train_idx: np.ndarray, val_idx: np.ndarray,
            tabular: np.ndarray) -> FoldSpec:
        mean, scale = fit_scaler(tabular[train_idx])
        return cls(fold, np.asarray(train_idx), np.asarray(val_idx), mean, scale)


def train_name(fold: int) -> str:
    return f"train_{fold}"


def val_name(fold: int) -> str:
    return f"val_{fold}"


def stream_buffer_bytes(config: TrainConfig) -> float:
    """Bytes of stored inputs a fold dataset may hold in the object store ahead of training."""
    return config.object_store_mib * 2**20


def fold_datasets(shared: dict[str, Any], folds: list[int]) -> dict[str, Any]:
    """Lazy Ray datasets ``train_<k>``/``val_<k>``: the stored inputs filtered to each fold."""
    from serec.train.inputs import StoredInputs

    stored = StoredInputs(**shared["inputs"])
    clip_ids = shared["pool"]["clip_id"]
    where = stored.clip_parts()
    buffer_bytes = stream_buffer_bytes(TrainConfig.from_dict(shared["train"]))
    out = {}
    for k in folds:
        spec = shared["specs"][k]
        out[train_name(k)] = stored.dataset(clip_ids[spec.train_idx], buffer_bytes, where=where)
        out[val_name(k)] = stored.dataset(clip_ids[spec.val_idx], buffer_bytes, where=where)
    return out


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker: stream this worker's fold shards, train, report every epoch.

    A report carries a checkpoint (``model.safetensors`` + ``card.json``, from rank 0) when a
    single-fold run has just found its best model so far.
    """
    import ray.train
    import ray.train.torch
    import torch

    from serec.models.card import save_model
    from serec.ray_utils import node_id
    from serec.train.loop import FoldBatches, FoldTrainer, run_folds

    train_config = TrainConfig.from_dict(config["train"])
    if not train_config.use_gpu:
        torch.set_num_threads(max(1, int(round(train_config.cpus_per_worker))))
    batches = {spec.fold: FoldBatches(ray.train.get_dataset_shard(train_name(spec.fold)),
                                      ray.train.get_dataset_shard(val_name(spec.fold)))
               for spec in config["folds"]}
    rank = ray.train.get_context().get_world_rank()
    save = bool(config.get("save_checkpoints", True))

    def report(metrics: dict[str, Any], best: FoldTrainer | None) -> None:
        metrics = {**metrics, "node_id": node_id()}  # folds.parquet: where each fold trained
        if not (save and best is not None and rank == 0):
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_model(best.module, best.card(config["card"]), folder)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))

    return run_folds(config, batches, report, ray.train.torch.get_device(),
                     ray.train.torch.prepare_model)


def fit_trainer(loop_config: dict[str, Any], config: TrainConfig, storage_path: str, name: str,
                datasets: dict[str, Any], callbacks: list | None = None):
    """Run one ``TorchTrainer`` with ``config.num_workers`` workers; returns its Result.

    The ``train_<k>`` datasets are split between the workers; each worker reads the whole
    ``val_<k>`` datasets (and scores its share of them).
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from serec.ray_utils import capped_execution_options

    resources: dict[str, float] = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        resources["GPU"] = 1
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=loop_config, datasets=datasets,
        dataset_config=ray.train.DataConfig(
            datasets_to_split=[name for name in datasets if name.startswith("train_")],
            execution_options=capped_execution_options(stream_buffer_bytes(config))),
        scaling_config=ray.train.ScalingConfig(num_workers=config.num_workers,
                                               use_gpu=config.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_path, callbacks=callbacks or [],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1)))
    return trainer.fit()


def copy_checkpoint(checkpoint, model_dir: str) -> None:
    """Copy a reported checkpoint's files (model.safetensors + card.json) into ``model_dir``."""
    target = RunDir.of(model_dir)
    with checkpoint.as_directory() as folder:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    target.write_bytes(name, f.read())


def loop_config(shared: dict[str, Any], train: dict[str, Any], folds: list[int],
                save_checkpoints: bool) -> dict[str, Any]:
    """``train_loop_config`` for a TorchTrainer over ``folds`` of the shared pool."""
    return {"train": train, "backbone": shared["backbone"], "num_classes": shared["num_classes"],
            "folds": [shared["specs"][k] for k in folds], "pool": shared["pool"],
            "card": shared["card"], "save_checkpoints": save_checkpoints}


def fold_trial(params: dict[str, Any], shared: dict[str, Any]) -> None:
    """Tune trial of ``serec train``: fold ``params["fold"]``, one TorchTrainer, best model kept."""
    from ray import tune

    fold = int(params["fold"])
    config = TrainConfig.from_dict(shared["train"])
    result = fit_trainer(loop_config(shared, shared["train"], [fold], True), config,
                         shared["storage"], f"{shared['stage']}_fold{fold}_{shared['stamp']}",
                         fold_datasets(shared, [fold]))
    model_dir = RunDir.of(shared["run_root"]).model_dir(shared["stage"], fold)
    copy_checkpoint(result.checkpoint, model_dir)
    tune.report({**result.return_value["folds"][0], "workers": result.return_value["world_size"],
                 "model_dir": model_dir, "node_id": result.metrics["node_id"]})


def tune_trial(params: dict[str, Any], shared: dict[str, Any]) -> None:
    """Tune trial of ``serec tune``: the sampled config on the tune folds in lock-step.

    The loop runs inside the trial process on the CPUs/GPU that Tune reserved for the trial,
    not in a TorchTrainer: when ASHA stops a trial Tune kills its process, and a TorchTrainer
    killed that way leaves its placement group reserved unless Ray's State API is reachable
    (Ray 2.60), which starves the remaining trials. The folds' inputs stream from the run's
    stored inputs like a TorchTrainer's (:func:`fold_datasets`). Every epoch reports
    :data:`MEAN_METRIC` to Tune; no checkpoints are kept.
    """
    import torch
    from ray import tune

    from serec.train.loop import FoldBatches, run_folds

    config = TrainConfig.from_dict({**shared["train"], **params})
    use_cuda = config.use_gpu and torch.cuda.is_available()
    if not use_cuda:
        torch.set_num_threads(max(1, int(round(config.cpus_per_worker))))
    datasets = fold_datasets(shared, shared["folds"])
    batches = {k: FoldBatches(datasets[train_name(k)], datasets[val_name(k)])
               for k in shared["folds"]}
    run_folds(loop_config(shared, config.to_dict(), shared["folds"], False), batches,
              lambda metrics, _best: tune.report(metrics), "cuda" if use_cuda else "cpu")
