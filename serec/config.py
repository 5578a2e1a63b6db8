"""Typed run configuration, loaded from YAML (``configs/*.yaml``).

Every section is a dataclass; an unknown or ill-typed key fails at load time, before any
work starts, with an error that names the key by its dotted path (``label.fail_threshold``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from serec.resources import Resources

T = TypeVar("T")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = "local.yaml"


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key."""


@dataclass
class DnsmosConfig(Resources):
    personalized: bool = False
    batch_size: int = 8
    # Windows per ONNX run; ~0.12 GB of CPU memory each, so keep it small without a GPU.
    max_windows_per_run: int = 8
    memory_gb: float | None = 2.0           # measured peak ~1.6 GB per CPU actor


@dataclass
class LabelConfig:
    """The label rule and the labeling pipeline's knobs."""

    fail_threshold: float = 2.0
    candidates: list[str] | None = None      # default: every configured enhancer
    save_audio: bool = False
    min_seconds: float = 0.5
    max_seconds: float = 10.0
    decode: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=8))
    rows_per_part: int = 64
    include_incomplete: bool = False         # train/evaluate on clips a system failed on


@dataclass
class FeaturesConfig(Resources):
    batch_size: int = 8


@dataclass
class RecommendConfig:
    fallback: str = "passthrough"           # system used for clips routed to all_failed
    threshold: float | None = None          # None: the gatekeeper card's calibrated threshold


@dataclass
class SerecConfig:
    enhancers: dict[str, dict[str, Any]] = field(default_factory=dict)
    label: LabelConfig = field(default_factory=LabelConfig)
    dnsmos: DnsmosConfig = field(default_factory=DnsmosConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: dict[str, Any] = field(default_factory=dict)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    ray: dict[str, Any] = field(default_factory=dict)

    @property
    def candidates(self) -> list[str]:
        return list(self.label.candidates or self.enhancers)


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return from_mapping(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return {str(k): ({} if v is None else v) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key '{dotted}'; expected one of {sorted(names)}")
        kwargs[key] = _convert(value, hints[key], dotted)
    built = cls(**kwargs)
    if isinstance(built, Resources):
        try:
            built.validate("invalid config", prefix or cls.__name__)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return built


def validate(config: SerecConfig) -> SerecConfig:
    """Checks that span sections: enhancer specs parse, candidates and fallback exist."""
    from serec.enhancers.registry import parse_enhancer_specs

    if not config.enhancers:
        raise ConfigError("config key 'enhancers' must name at least one enhancer")
    try:
        parse_enhancer_specs(config.enhancers)
    except ValueError as exc:
        raise ConfigError(f"config key 'enhancers': {exc}") from exc
    for name in config.candidates:
        if name not in config.enhancers:
            raise ConfigError(f"config key 'label.candidates' names unknown enhancer '{name}'")
    if config.train:
        from serec.train.config import TrainConfig

        try:
            TrainConfig.from_dict(config.train)
        except ValueError as exc:
            raise ConfigError(f"config key 'train': {exc}") from exc
    return config


def resolve_config_path(path: str | Path | None) -> Path:
    """A config path as given, or a name inside the repo's ``configs/`` folder."""
    if path is None:
        path = DEFAULT_CONFIG
    candidate = Path(path)
    if not candidate.exists() and (CONFIG_DIR / candidate).exists():
        candidate = CONFIG_DIR / candidate
    if not candidate.exists():
        raise ConfigError(f"config file {path} not found")
    return candidate


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> SerecConfig:
    """Load and validate a YAML config (default ``configs/local.yaml``)."""
    if path is None and overrides is not None:
        data: dict[str, Any] = {}
    else:
        with open(resolve_config_path(path)) as f:
            data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {path} must be a YAML mapping at the top level")
    data = {**data, **(overrides or {})}
    return validate(from_mapping(SerecConfig, data))
