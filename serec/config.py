"""Typed run configuration, loaded from YAML (``configs/*.yaml``).

Every section is a dataclass; an unknown or ill-typed key fails at load time, before any
work starts, with an error that names the key by its dotted path (``label.fail_threshold``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from serec.errors import ConfigError
from serec.resources import Resources
from serec.typed_config import at_least, from_mapping

__all__ = ["ConfigError", "SerecConfig", "load_config", "from_mapping"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = "local.yaml"


@dataclass
class DnsmosConfig(Resources):
    personalized: bool = False
    batch_size: int = field(default=8, metadata=at_least(1))
    # Windows per ONNX run; ~0.12 GB of CPU memory each, so keep it small without a GPU.
    max_windows_per_run: int = field(default=8, metadata=at_least(1))
    # Overlapping windows share the P.835 convolutions (same scores to ~1e-6, about half the
    # CPU work for a 6 s clip); false runs every window through the whole model.
    share_windows: bool = True
    # measured peak ~1.6 GB per CPU actor
    memory_gb: float | None = field(default=2.0, metadata=at_least(0))


MAX_SHIFT_MS = 50.0


@dataclass
class FramingsConfig:
    """Extra DNSMOS framings of every scored clip, to measure the metric's own noise.

    A shift of ``s`` ms scores the audio with its first ``s`` ms dropped, so DNSMOS's 9.01 s
    windows (and their 1 s hops) land elsewhere. The unshifted framing is always scored first;
    ``shifts_ms`` lists the extra ones. ``score`` picks what the DNSMOS columns of a scores
    row hold: ``first`` the unshifted framing (the thesis rule), ``mean`` the mean over all
    framings (every field: sig, bak, ovr, p808 and the raw ones).
    """

    shifts_ms: list[float] = field(default_factory=list)
    score: Literal["first", "mean"] = "first"

    @property
    def all_shifts_ms(self) -> list[float]:
        """Every framing's shift, the unshifted one first."""
        return [0.0, *self.shifts_ms]

    def check(self, key: str) -> None:
        for i, shift in enumerate(self.shifts_ms):
            if not 0 < shift <= MAX_SHIFT_MS:
                raise ConfigError(f"config key '{key}.shifts_ms[{i}]' must be in "
                                  f"(0, {MAX_SHIFT_MS:g}] ms (the unshifted framing is always "
                                  f"scored), got {shift!r}")
        if len(set(self.shifts_ms)) != len(self.shifts_ms):
            raise ConfigError(f"config key '{key}.shifts_ms' must not repeat a shift, got "
                              f"{self.shifts_ms}")


@dataclass
class LabelConfig:
    """The label rule and the labeling pipeline's knobs."""

    fail_threshold: float = 2.0
    candidates: list[str] | None = None      # default: every configured enhancer
    # None: the thesis rule (highest OVR); delta: the cheapest candidate (measured seconds)
    # whose OVR is within delta of the best
    cheapest_within: float | None = field(default=None, metadata=at_least(0))
    # Metric noise: framings scored per output; a clip's noise floor is the SD of its best
    # output's OVR over them, and ``tied_systems`` are the candidates within
    # max(noise floor, tie_margin) OVR of the best (tie_margin alone without framings).
    framings: FramingsConfig = field(default_factory=FramingsConfig)
    tie_margin: float = field(default=0.0, metadata=at_least(0))
    save_audio: bool = False
    min_seconds: float = field(default=0.5, metadata=at_least(0))
    max_seconds: float = field(default=10.0, metadata=at_least(0, strict=True))
    decode: Resources = field(default_factory=lambda: Resources(num_cpus=0.25, batch_size=8))
    rows_per_part: int = field(default=64, metadata=at_least(1))
    include_incomplete: bool = False         # train/evaluate on clips a system failed on
    # Cap on the label plan's blocks in the object store, MiB (Ray Data then holds back the
    # decode and enhancer stages); None: Ray Data's default share of the object store.
    object_store_mib: float | None = field(default=None, metadata=at_least(0, strict=True))
    # Seconds each actor pool of the label plan (enhancers, DNSMOS) waits for its min_actors
    # before work starts (then fails); None: start with the first ready actor. Without it the
    # first actor of a pool can take every batch of a short job before the others are up.
    wait_for_actors_s: int | None = field(default=None, metadata=at_least(1))

    def check(self, key: str) -> None:
        if self.min_seconds > self.max_seconds:
            raise ConfigError(f"config key '{key}.min_seconds' ({self.min_seconds}) must not "
                              f"exceed '{key}.max_seconds' ({self.max_seconds})")


@dataclass
class FeaturesConfig(Resources):
    batch_size: int = field(default=8, metadata=at_least(1))


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


def validate(config: SerecConfig) -> SerecConfig:
    """Checks that span sections: enhancer specs parse, candidates and fallback exist."""
    from serec.enhancers.registry import parse_enhancer_specs

    if not config.enhancers:
        raise ConfigError("config key 'enhancers' must name at least one enhancer")
    try:
        parse_enhancer_specs(config.enhancers)
    except ValueError as exc:
        raise ConfigError(f"in 'enhancers': {exc}") from exc
    for name in config.candidates:
        if name not in config.enhancers:
            raise ConfigError(f"config key 'label.candidates' names unknown enhancer '{name}'")
    if config.train:
        from serec.train.config import TrainConfig

        TrainConfig.from_dict(config.train)
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
        resolved = resolve_config_path(path)
        try:
            with open(resolved) as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" (line {where.line + 1})" if where else ""
            raise ConfigError(f"config {resolved} is not valid YAML{line}: "
                              f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {path} must be a YAML mapping at the top level")
    data = {**data, **(overrides or {})}
    return validate(from_mapping(SerecConfig, data))
