"""The training loop in plain PyTorch; :mod:`serec.train.trials` runs it on Ray Train workers.

One loop call trains one or more folds in lock-step (``serec train`` gives each Tune trial one
fold; a ``serec tune`` trial trains its folds together so that it can report the fold mean
every epoch). Inputs stream in batches from a fold's sources (a Ray Train dataset shard, a Ray
dataset, or anything with the same ``iter_batches``): each epoch is one pass over this worker's
share of the training clips (shuffled through a local buffer), with cross-entropy weighted so
that every class weighs the same in total (label smoothing on top), AdamW with the backbone at
``backbone_lr_ratio`` times the head's learning rate, ``ReduceLROnPlateau`` on the validation
loss, early stopping when the validation macro F1 has not improved for ``patience`` epochs.
Every worker reads the whole validation set but scores only its share; the logits are gathered,
so every worker takes the same decisions. Only small per-clip columns (target, tabular features)
live in memory; spectrograms are decoded one batch at a time.

Every epoch is reported with ``ray.train.report``; whenever a single-fold run finds a better
model (higher macro F1, ties broken by lower loss) the report carries a checkpoint folder that
is already the final ``model.safetensors`` + ``card.json``. The run keeps only that newest
(= best) checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from serec.evaluate.metrics import macro_f1, tie_resolved_indices
from serec.models.backbone import config_dict, load_backbone
from serec.models.card import ModelCard
from serec.models.heads import ASTClassifier
from serec.models.inputs import values_from_bytes
from serec.models.predict import batched_logits
from serec.models.tabular import standardise
from serec.train.config import TrainConfig
from serec.train.trials import MEAN_METRIC, FoldSpec

# local shuffle buffer of a training pass, in batches
SHUFFLE_BATCHES = 4


class BatchSource(Protocol):
    """Stored input rows (clip_id, n_frames, values) in batches: a Ray dataset or shard."""

    def iter_batches(self, *, batch_size: int, batch_format: str,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        ...


@dataclass
class FoldBatches:
    """Where one fold's inputs come from on this worker."""

    train: BatchSource  # this worker's share of the fold's training clips
    val: BatchSource    # every validation clip of the fold


def build_classifier(backbone: str, num_classes: int, tabular_dim: int, config: TrainConfig,
                     seed: int) -> ASTClassifier:
    """Backbone (seeded random init for ``tiny``, pretrained otherwise) plus a fresh head."""
    torch.manual_seed(seed)
    model, _ = load_backbone(backbone, config.max_length)
    return ASTClassifier(model, num_classes, tabular_dim, config.head_hidden, config.dropout)


def world() -> tuple[int, int]:
    """``(rank, size)`` of the torch process group (``(0, 1)`` without one)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(obj: Any) -> list[Any]:
    """Every worker's ``obj``, in rank order (all-gather; identity without a process group)."""
    _, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    torch.distributed.all_gather_object(out, obj)
    return out


def classification_metrics(logits: np.ndarray, targets: np.ndarray, loss_fn: nn.Module,
                           soft: np.ndarray | None = None) -> dict[str, float]:
    """Loss, macro F1 and accuracy of logits against class indices.

    With ``soft`` (the clips' target distributions) macro F1 and accuracy are tie-aware: a
    prediction with target probability > 0 counts as right (the target becomes the
    prediction there, :func:`serec.evaluate.metrics.tie_resolved_indices`); the loss stays on
    the class indices.
    """
    if len(targets) == 0:
        return {"loss": math.nan, "macro_f1": math.nan, "accuracy": math.nan}
    with torch.no_grad():
        loss = float(loss_fn(torch.as_tensor(logits), torch.as_tensor(targets)))
    pred = logits.argmax(axis=1)
    if soft is not None:
        targets = tie_resolved_indices(targets, pred, soft)
    return {"loss": loss, "macro_f1": macro_f1(targets, pred),
            "accuracy": float(np.mean(pred == targets))}


def balanced_class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class loss weights giving every class present the same total weight (mean 1).

    ``targets`` are class indices, or target distributions ``(N, num_classes)`` whose column
    sums count as the classes' (fractional) clip counts.
    """
    targets = np.asarray(targets)
    counts = (targets.sum(axis=0) if targets.ndim == 2
              else np.bincount(targets, minlength=num_classes)).astype(np.float64)
    present = max(int(np.count_nonzero(counts)), 1)
    return np.where(counts > 0, len(targets) / (present * np.maximum(counts, 1e-12)), 0.0)


class FoldTrainer:
    """Model, optimiser, scheduler and early-stopping state of one fold on one worker.

    ``pool`` holds the small per-clip columns of the stage's pool (``clip_id``, ``targets``,
    raw ``tabular``, and ``soft_targets`` when training on tied sets); ``spec`` indexes it;
    ``batches`` stream the fold's spectrograms. With ``soft_targets`` the training loss is
    cross-entropy against those distributions (class weights from their column sums) and
    validation macro F1 is tie-aware.
    """

    def __init__(self, spec: FoldSpec, pool: dict[str, np.ndarray], batches: FoldBatches,
                 config: TrainConfig, backbone: str, num_classes: int,
                 device: str | torch.device = "cpu",
                 wrap: Callable[[nn.Module], nn.Module] | None = None) -> None:
        self.spec, self.batches, self.config = spec, batches, config
        self.device = torch.device(device)
        self.num_classes = num_classes
        self.targets = np.asarray(pool["targets"], np.int64)
        soft = pool.get("soft_targets")
        self.soft = None if soft is None else np.asarray(soft, np.float32)
        self.position = {str(c): i for i, c in enumerate(pool["clip_id"])}
        tabular = pool["tabular"]
        self.tabular = (standardise(tabular, spec.scaler_mean, spec.scaler_scale)
                        .astype(np.float32) if tabular.shape[1] else None)
        self.module = build_classifier(backbone, num_classes, tabular.shape[1], config,
                                       config.seed + spec.fold)
        self.model = wrap(self.module) if wrap else self.module.to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.module.parameter_groups(config.lr, config.backbone_lr_ratio),
            weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.plateau_factor,
            patience=config.plateau_patience)
        train_targets = self.targets if self.soft is None else self.soft
        weights = balanced_class_weights(train_targets[spec.train_idx], num_classes)
        self.train_loss_fn = nn.CrossEntropyLoss(
            weight=torch.as_tensor(weights, dtype=torch.float32, device=self.device),
            label_smoothing=config.label_smoothing)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.epoch = 0
        self.best: dict[str, float] = {"macro_f1": -1.0, "loss": math.inf}
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.last: dict[str, float] = {}
        self.train_seconds = 0.0
        self.samples_seen = 0

    # -- batches -------------------------------------------------------------------
    def stream(self, source: BatchSource,
               shuffle_seed: int | None = None) -> Iterator[tuple[np.ndarray, ...]]:
        """``(pool rows, values, n_frames)`` per batch of ``source``, decoded one at a time."""
        size = self.config.batch_size
        shuffle = {} if shuffle_seed is None else {
            "local_shuffle_buffer_size": SHUFFLE_BATCHES * size,
            "local_shuffle_seed": shuffle_seed}
        for batch in source.iter_batches(batch_size=size, batch_format="numpy", **shuffle):
            rows = np.fromiter((self.position[str(c)] for c in batch["clip_id"]), np.int64,
                               len(batch["clip_id"]))
            values = values_from_bytes(list(batch["values"]), self.config.max_length)
            yield rows, values, np.asarray(batch["n_frames"], np.int64)

    def tabular_rows(self, rows: np.ndarray) -> torch.Tensor | None:
        return None if self.tabular is None else torch.as_tensor(self.tabular[rows],
                                                                device=self.device)

    # -- one epoch -----------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """One pass over this worker's training share; returns the mean loss over workers."""
        self.epoch += 1
        start = time.perf_counter()
        self.model.train()
        rank, _ = world()
        seed = (self.config.seed * 1_000_003 + self.spec.fold * 7_919 + self.epoch * 131
                + rank) % 2**31
        loss_sum, seen = 0.0, 0
        for rows, values, n_frames in self.stream(self.batches.train, seed):
            targets = torch.as_tensor(
                (self.targets if self.soft is None else self.soft)[rows], device=self.device)
            logits = self.model(torch.as_tensor(values, device=self.device),
                                torch.as_tensor(n_frames, device=self.device),
                                self.tabular_rows(rows))
            loss = self.train_loss_fn(logits, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.item() * len(rows)
            seen += len(rows)
        parts = gather((loss_sum, seen))
        seconds = time.perf_counter() - start
        total = sum(n for _, n in parts)
        self.train_seconds += seconds
        self.samples_seen += total
        return {"train_loss": sum(s for s, _ in parts) / max(total, 1),
                "samples_per_s": total / seconds if seconds > 0 else math.nan}

    def validation_logits(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pool rows, logits)`` of every validation clip (each worker scores its share)."""
        rank, size = world()
        rows_parts, logit_parts = [], []
        for rows, values, n_frames in self.stream(self.batches.val):
            mine = rows % size == rank
            if not mine.any():
                continue
            tab = None if self.tabular is None else self.tabular[rows[mine]]
            rows_parts.append(rows[mine])
            logit_parts.append(batched_logits(self.module, values[mine], n_frames[mine], tab,
                                              self.config.batch_size, self.device))
        local = (np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64),
                 np.concatenate(logit_parts) if logit_parts
                 else np.zeros((0, self.num_classes), np.float32))
        parts = gather(local)
        return (np.concatenate([r for r, _ in parts]),
                np.concatenate([logits for _, logits in parts]))

    def evaluate(self) -> dict[str, float]:
        """Validation loss (unweighted), macro F1 and accuracy."""
        rows, logits = self.validation_logits()
        return classification_metrics(logits, self.targets[rows], self.loss_fn,
                                      None if self.soft is None else self.soft[rows])

    def step(self) -> tuple[dict[str, float], bool]:
        """Train one epoch, validate, update LR and early stopping.

        Returns the epoch's metrics and whether this is the best model so far.
        """
        train = self.train_epoch()
        val = self.evaluate()
        self.scheduler.step(val["loss"] if np.isfinite(val["loss"]) else 0.0)
        f1, loss = val["macro_f1"], val["loss"]
        improved_f1 = f1 > self.best["macro_f1"] + 1e-12
        better = improved_f1 or (f1 >= self.best["macro_f1"] - 1e-12 and loss < self.best["loss"])
        self.bad_epochs = 0 if improved_f1 else self.bad_epochs + 1
        if better:
            self.best, self.best_epoch = dict(val), self.epoch
        if self.bad_epochs >= self.config.patience or self.epoch >= self.config.epochs:
            self.stopped = True
        self.last = {**train, **{f"val_{k}": v for k, v in val.items()},
                     "lr": self.optimizer.param_groups[-1]["lr"]}
        return self.last, better

    # -- results -----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Best-epoch validation metrics and throughput of this fold."""
        return {"fold": self.spec.fold, "best_epoch": self.best_epoch,
                "epochs_trained": self.epoch, "val_macro_f1": self.best["macro_f1"],
                "val_accuracy": self.best.get("accuracy", math.nan),
                "val_loss": self.best["loss"], "n_train": len(self.spec.train_idx),
                "n_val": len(self.spec.val_idx), "train_seconds": self.train_seconds,
                "samples_per_s": self.samples_seen / self.train_seconds
                if self.train_seconds else math.nan}

    def card(self, base: dict[str, Any]) -> ModelCard:
        """The checkpoint card: ``base`` (stage, classes, features...) + this fold's state."""
        return ModelCard(**{**base, "fold": self.spec.fold,
                            "scaler_mean": self.spec.scaler_mean.tolist(),
                            "scaler_scale": self.spec.scaler_scale.tolist(),
                            "backbone_config": config_dict(self.module.backbone.config),
                            "max_length": self.config.max_length,
                            "head_hidden": self.config.head_hidden,
                            "dropout": self.config.dropout,
                            "metrics": self.summary(), "train_config": self.config.to_dict()})


Reporter = Callable[[dict[str, Any], FoldTrainer | None], None]


def epoch_metrics(trainers: list[FoldTrainer]) -> dict[str, Any]:
    """Fold-mean metrics (plus ``fold_<k>_*`` keys when several folds train together)."""
    keys = ("train_loss", "val_loss", "val_macro_f1", "val_accuracy", "lr", "samples_per_s")
    out: dict[str, Any] = {"epoch": max(t.epoch for t in trainers)}
    for key in keys:
        out[key] = float(np.nanmean([t.last.get(key, math.nan) for t in trainers]))
    out["best_val_macro_f1"] = out[MEAN_METRIC] = float(
        np.mean([t.best["macro_f1"] for t in trainers]))
    if len(trainers) == 1:
        out["fold"] = trainers[0].spec.fold
    else:
        for t in trainers:
            for key in ("val_macro_f1", "val_loss"):
                out[f"fold_{t.spec.fold}_{key}"] = t.last.get(key, math.nan)
            out[f"fold_{t.spec.fold}_best_val_macro_f1"] = t.best["macro_f1"]
    return out


def run_folds(config: dict[str, Any], batches: dict[int, FoldBatches],
              report: Reporter | None = None, device: str | torch.device = "cpu",
              wrap: Callable[[nn.Module], nn.Module] | None = None) -> dict[str, Any]:
    """Train the folds of ``config["folds"]`` in lock-step until all stop; plain PyTorch.

    ``config["pool"]`` holds the pool's small per-clip columns (see :class:`FoldTrainer`);
    ``batches[k]`` streams fold k's inputs. ``report(metrics, best)`` is called once per
    epoch on every worker; ``best`` is the fold's trainer when a single-fold run just
    improved, else None.
    """
    train_config = TrainConfig.from_dict(config["train"])
    trainers = [FoldTrainer(spec, config["pool"], batches[spec.fold], train_config,
                            config["backbone"], config["num_classes"], device, wrap)
                for spec in config["folds"]]
    while not all(t.stopped for t in trainers):
        improved = [t for t in trainers if not t.stopped and t.step()[1]]
        best = improved[0] if len(trainers) == 1 and improved else None
        if report:
            report(epoch_metrics(trainers), best)
    summaries = [t.summary() for t in trainers]
    return {"folds": summaries, "world_size": world()[1],
            MEAN_METRIC: float(np.mean([s["val_macro_f1"] for s in summaries]))}

