"""Typed training configuration shared by ``serec train`` and ``serec tune``."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from serec.errors import ConfigError
from serec.models.boosted import DEFAULT_OVR_TEMPERATURE
from serec.typed_config import at_least, from_mapping

POSITIVE = at_least(0, strict=True)
UNIT = at_least(0, at_most=1)


@dataclass
class TrainConfig:
    """Hyper-parameters and resources of one stage's training (every fold uses the same).

    ``hybrid`` adds the standardised CE/KL vector to the pooled AST embedding; ``None`` means
    the stage default (expert: on; gatekeeper and full: off). ``use_dnsmos`` also adds the
    noisy clip's DNSMOS columns to that vector (and to the ``features`` baseline).
    """

    # head learning rate; the backbone gets lr * backbone_lr_ratio
    lr: float = field(default=2.5e-5, metadata=POSITIVE)
    backbone_lr_ratio: float = 0.5
    weight_decay: float = 1e-4
    batch_size: int = field(default=32, metadata=POSITIVE)
    epochs: int = field(default=50, metadata=POSITIVE)
    # epochs without a better val macro F1 before stopping
    patience: int = field(default=8, metadata=POSITIVE)
    label_smoothing: float = field(default=0.1, metadata=UNIT)
    dropout: float = field(default=0.2, metadata=UNIT)
    head_hidden: int = field(default=256, metadata=POSITIVE)
    # AST input frames (10 ms hop): 1024 = 10.24 s
    max_length: int = field(default=1024, metadata=at_least(16))
    plateau_factor: float = 0.5       # ReduceLROnPlateau on the validation loss
    plateau_patience: int = 2
    # Ray Train workers per fold
    num_workers: int = field(default=1, metadata=POSITIVE)
    use_gpu: bool = False
    # fractional values allowed
    cpus_per_worker: float = field(default=1.0, metadata=POSITIVE)
    seed: int = 0
    majority: str | None = None       # gatekeeper's majority system; None = most frequent label
    hybrid: bool | None = None
    use_dnsmos: bool = False
    # gatekeeper: P(majority) >= threshold picks the majority
    threshold: float = field(default=0.5, metadata=UNIT)
    tune_folds: list[int] = field(default_factory=lambda: [0, 1])
    # Learn the label's tied set (labels' tied_systems) instead of the argmax alone: AST stages
    # and the boosted router train on target distributions (see serec.train.data.soft_targets)
    soft_labels: bool = False
    # Boosted router with soft_labels, > 0: each clip trains as one row per system class
    # weighted by exp((its OVR - best OVR) / T), T in OVR units (e.g. 0.05, about DNSMOS's
    # framing noise), instead of uniformly over the tied set: a pick then costs in training
    # about what it costs in OVR. AST stages keep tied-set targets.
    soft_temperature: float = field(default=0.0, metadata=at_least(0))
    # What the boosted router learns: label (a classifier of the label) or ovr (one regressor
    # per system of its OVR relative to the clip's mean; serec.models.boosted.OvrRegressionModel)
    boosted_target: Literal["label", "ovr"] = "label"
    # boosted_target ovr: class probabilities are softmax(predicted OVR / T), T in OVR units
    ovr_temperature: float = field(default=DEFAULT_OVR_TEMPERATURE, metadata=POSITIVE)
    # inverse L2 strength of the ``features`` baseline
    features_c: float = field(default=1.0, metadata=POSITIVE)
    # Object store (MiB) a streamed fold dataset may fill ahead of its consumer; a fold no
    # larger is read once into the object store instead (serec.train.inputs.StoredInputs.dataset).
    # A stream's peak is about this plus the consumer's shuffle buffer and prefetched batch,
    # whatever the number of clips (benchmarks/scale.py).
    object_store_mib: float = field(default=64.0, metadata=POSITIVE)
    # fold/Tune trials at once; None: all (they queue)
    max_concurrent_trials: int | None = field(default=None, metadata=at_least(1))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainConfig:
        """Build from a mapping (a config's ``train:`` section); bad keys raise ConfigError."""
        return from_mapping(cls, data, "train")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, base: TrainConfig | None = None) -> TrainConfig:
        """Load a YAML mapping (e.g. ``tune/<stage>/best.yaml``) over ``base`` (or defaults)."""
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of train config keys")
        return (base or cls()).merged(data)

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with ``overrides`` applied (validated like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, key: str) -> None:
        """Checks across fields (run by the config converter)."""
        if not self.tune_folds:
            raise ConfigError(f"config key '{key}.tune_folds' must name at least one fold")
