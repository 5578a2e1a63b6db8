"""The training loop in plain PyTorch; :mod:`serec.train.trials` runs it on Ray Train workers.

One loop call trains one or more folds in lock-step (``serec train`` gives each Tune trial one
fold; a ``serec tune`` trial trains its folds together so that it can report the fold mean
every epoch). Per fold and epoch: a class-balanced ``WeightedRandomSampler`` draw (each worker
draws its own share), cross-entropy with label smoothing, AdamW with the backbone at
``backbone_lr_ratio`` times the head's learning rate, ``ReduceLROnPlateau`` on the validation
loss, early stopping when the validation macro F1 has not improved for ``patience`` epochs.
Validation logits are gathered from all workers, so every worker takes the same decisions.

Every epoch is reported with ``ray.train.report``; whenever a single-fold run finds a better
model (higher macro F1, ties broken by lower loss) the report carries a checkpoint folder that
is already the final ``model.safetensors`` + ``card.json``. The run keeps only that newest
(= best) checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import WeightedRandomSampler

from serec.evaluate.metrics import macro_f1
from serec.models.backbone import config_dict, load_backbone
from serec.models.card import ModelCard
from serec.models.heads import ASTClassifier
from serec.models.predict import batched_logits
from serec.models.tabular import standardise
from serec.train.config import TrainConfig
from serec.train.trials import MEAN_METRIC, FoldSpec


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


def classification_metrics(logits: np.ndarray, targets: np.ndarray,
                           loss_fn: nn.Module) -> dict[str, float]:
    """Loss, macro F1 and accuracy of logits against class indices."""
    if len(targets) == 0:
        return {"loss": math.nan, "macro_f1": math.nan, "accuracy": math.nan}
    with torch.no_grad():
        loss = float(loss_fn(torch.as_tensor(logits), torch.as_tensor(targets)))
    pred = logits.argmax(axis=1)
    return {"loss": loss, "macro_f1": macro_f1(targets, pred),
            "accuracy": float(np.mean(pred == targets))}


class FoldTrainer:
    """Model, optimiser, scheduler and early-stopping state of one fold on one worker."""

    def __init__(self, spec: FoldSpec, data: dict[str, np.ndarray], config: TrainConfig,
                 backbone: str, num_classes: int, device: str | torch.device = "cpu",
                 wrap: Callable[[nn.Module], nn.Module] | None = None) -> None:
        self.spec, self.data, self.config, self.device = spec, data, config, torch.device(device)
        self.num_classes = num_classes
        tabular = data["tabular"]
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
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.epoch = 0
        self.best: dict[str, float] = {"macro_f1": -1.0, "loss": math.inf}
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.last: dict[str, float] = {}
        self.train_seconds = 0.0
        self.samples_seen = 0

    # -- one epoch -----------------------------------------------------------------
    def balanced_draw(self) -> np.ndarray:
        """This worker's share of a class-balanced draw (with replacement) of training rows."""
        rank, size = world()
        idx = self.spec.train_idx
        targets = self.data["targets"][idx]
        counts = np.bincount(targets, minlength=self.num_classes)
        weights = torch.as_tensor(1.0 / counts[targets], dtype=torch.double)
        generator = torch.Generator().manual_seed(
            self.config.seed * 1_000_003 + self.spec.fold * 7_919 + self.epoch * 131 + rank)
        sampler = WeightedRandomSampler(weights, math.ceil(len(idx) / size), replacement=True,
                                        generator=generator)
        return idx[np.fromiter(iter(sampler), np.int64)]

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        to = self.device
        tab = None if self.tabular is None else torch.as_tensor(self.tabular[rows], device=to)
        return (torch.as_tensor(self.data["values"][rows], device=to),
                torch.as_tensor(self.data["n_frames"][rows], device=to), tab,
                torch.as_tensor(self.data["targets"][rows], device=to))

    def train_epoch(self) -> dict[str, float]:
        """One pass over a balanced draw; returns the mean training loss over all workers."""
        self.epoch += 1
        start = time.perf_counter()
        self.model.train()
        rows = self.balanced_draw()
        loss_sum = 0.0
        for begin in range(0, len(rows), self.config.batch_size):
            values, n_frames, tab, targets = self.batch(rows[begin:begin + self.config.batch_size])
            loss = self.loss_fn(self.model(values, n_frames, tab), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.item() * len(targets)
        parts = gather((loss_sum, len(rows)))
        seconds = time.perf_counter() - start
        total = sum(n for _, n in parts)
        self.train_seconds += seconds
        self.samples_seen += total
        return {"train_loss": sum(s for s, _ in parts) / max(total, 1),
                "samples_per_s": total / seconds if seconds > 0 else math.nan}

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """Logits for ``rows`` (each worker scores a slice; all workers get the whole array)."""
        rank, size = world()
        positions = np.arange(len(rows))[rank::size]
        tab = None if self.tabular is None else self.tabular[rows[positions]]
        local = batched_logits(self.module, self.data["values"][rows[positions]],
                               self.data["n_frames"][rows[positions]], tab,
                               self.config.batch_size, self.device)
        out = np.zeros((len(rows), self.num_classes), np.float32)
        for pos, part in gather((positions, local)):
            out[pos] = part
        return out

    def evaluate(self, rows: np.ndarray) -> dict[str, float]:
        return classification_metrics(self.logits(rows), self.data["targets"][rows], self.loss_fn)

    def step(self) -> tuple[dict[str, float], bool]:
        """Train one epoch, validate, update LR and early stopping.

        Returns the epoch's metrics and whether this is the best model so far.
        """
        train = self.train_epoch()
        val = self.evaluate(self.spec.val_idx)
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


def run_folds(config: dict[str, Any], data: dict[str, np.ndarray], report: Reporter | None = None,
              device: str | torch.device = "cpu",
              wrap: Callable[[nn.Module], nn.Module] | None = None) -> dict[str, Any]:
    """Train the folds of ``config["folds"]`` in lock-step until all stop; plain PyTorch.

    ``report(metrics, best)`` is called once per epoch on every worker; ``best`` is the fold's
    trainer when a single-fold run just improved, else None.
    """
    train_config = TrainConfig.from_dict(config["train"])
    trainers = [FoldTrainer(spec, data, train_config, config["backbone"], config["num_classes"],
                            device, wrap) for spec in config["folds"]]
    while not all(t.stopped for t in trainers):
        improved = [t for t in trainers if not t.stopped and t.step()[1]]
        best = improved[0] if len(trainers) == 1 and improved else None
        if report:
            report(epoch_metrics(trainers), best)
    summaries = [t.summary() for t in trainers]
    return {"folds": summaries, "world_size": world()[1],
            MEAN_METRIC: float(np.mean([s["val_macro_f1"] for s in summaries]))}

