"""Typed training configuration shared by ``serec train`` and ``serec tune``."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """Hyper-parameters and resources of one stage's training (every fold uses the same).

    ``hybrid`` adds the standardised CE/KL vector to the pooled AST embedding; ``None`` means
    the stage default (expert: on; gatekeeper and full: off). ``use_dnsmos`` also adds the
    noisy clip's DNSMOS columns to that vector (and to the ``features`` baseline).
    """

    lr: float = 2.5e-5                # head learning rate; the backbone gets lr * backbone_lr_ratio
    backbone_lr_ratio: float = 0.5
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 50
    patience: int = 8                 # epochs without a better val macro F1 before stopping
    label_smoothing: float = 0.1
    dropout: float = 0.2
    head_hidden: int = 256
    max_length: int = 1024            # AST input frames (10 ms hop): 1024 = 10.24 s
    plateau_factor: float = 0.5       # ReduceLROnPlateau on the validation loss
    plateau_patience: int = 2
    num_workers: int = 1              # Ray Train workers per fold
    use_gpu: bool = False
    cpus_per_worker: float = 1.0      # fractional values allowed
    seed: int = 0
    majority: str | None = None       # gatekeeper's majority system; None = most frequent label
    hybrid: bool | None = None
    use_dnsmos: bool = False
    threshold: float = 0.5            # gatekeeper: P(majority) >= threshold picks the majority
    tune_folds: list[int] = field(default_factory=lambda: [0, 1])
    features_c: float = 1.0           # inverse L2 strength of the ``features`` baseline
    max_concurrent_trials: int | None = None  # fold/Tune trials at once; None: all (they queue)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainConfig:
        """Build from a mapping; unknown keys raise ValueError naming them."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown train config key(s) {unknown}; expected one of "
                             f"{sorted(names)}")
        hints = typing.get_type_hints(cls)
        config = cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, base: TrainConfig | None = None) -> TrainConfig:
        """Load a YAML mapping (e.g. ``tune/<stage>/best.yaml``) over ``base`` (or defaults)."""
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of train config keys")
        return (base or cls()).merged(data)

    def merged(self, overrides: dict[str, Any]) -> TrainConfig:
        """A copy with ``overrides`` applied (validated like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ValueError for values that cannot train."""
        positive = ("lr", "batch_size", "epochs", "patience", "head_hidden", "max_length",
                    "num_workers", "cpus_per_worker", "features_c")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"train config key '{name}' must be > 0, got "
                                 f"{getattr(self, name)!r}")
        for name in ("dropout", "label_smoothing", "threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"train config key '{name}' must lie in [0, 1]")
        if self.max_length < 16:
            raise ValueError("train config key 'max_length' must be at least 16 frames")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ValueError("train config key 'max_concurrent_trials' must be >= 1 or null")
        if not self.tune_folds:
            raise ValueError("train config key 'tune_folds' must name at least one fold")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check one value against its field type; numbers written as text (YAML ``1e-5``) pass."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if is_union else ()
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"train config key '{name}' must not be empty")
    base = next(a for a in args if a is not type(None)) if is_union else hint
    if typing.get_origin(base) is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"train config key '{name}' must be a list, got {value!r}")
        (item,) = typing.get_args(base)
        return [_coerce(name, v, item) for v in value]
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"train config key '{name}' must be true or false, got {value!r}")
        return value
    if base in (int, float):
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (base is int and number != int(number)):
            raise ValueError(f"train config key '{name}' must be "
                             f"{'an integer' if base is int else 'a number'}, got {value!r}")
        return base(number)
    if base is str and not isinstance(value, str):
        raise ValueError(f"train config key '{name}' must be a string, got {value!r}")
    return value
