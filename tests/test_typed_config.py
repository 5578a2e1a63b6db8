"""The one config converter: types, ranges, unknown keys with hints, dotted key names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from serec.errors import ConfigError, UsageError
from serec.typed_config import at_least, check_fields, from_mapping, params_from_defaults


@dataclass
class Inner:
    size: int = field(default=1, metadata=at_least(1))
    share: float = field(default=0.5, metadata=at_least(0, at_most=1))

    def check(self, key: str) -> None:
        if self.size == 13:
            raise ConfigError(f"config key '{key}.size' must not be 13")


@dataclass
class Outer:
    mode: Literal["fast", "slow"] = "fast"
    rate: float = field(default=1.0, metadata=at_least(0, strict=True))
    names: list[str] | None = None
    inner: Inner = field(default_factory=Inner)
    extra: dict[str, dict[str, float]] = field(default_factory=dict)


def test_values_convert_and_nest():
    built = from_mapping(Outer, {"mode": "slow", "rate": "1e-3", "names": ["a"],
                                 "inner": {"size": 4.0}, "extra": {"x": None, "y": {"z": 2}}})
    assert built == Outer("slow", 1e-3, ["a"], Inner(4), {"x": {}, "y": {"z": 2.0}})
    assert isinstance(built.inner.size, int)


@pytest.mark.parametrize(("data", "message"), [
    ({"mode": "medium"}, "config key 'cfg.mode' must be one of 'fast', 'slow', got 'medium'"),
    ({"rate": 0}, "config key 'cfg.rate' must be > 0, got 0.0"),
    ({"rate": True}, "config key 'cfg.rate' must be a number, got True"),
    ({"names": "a"}, "config key 'cfg.names' must be a list, got 'a'"),
    ({"names": ["a", 1]}, "config key 'cfg.names[1]' must be a string, got 1"),
    ({"inner": {"size": 2.5}}, "config key 'cfg.inner.size' must be an integer, got 2.5"),
    ({"inner": {"share": 1.5}}, "config key 'cfg.inner.share' must be in [0, 1], got 1.5"),
    ({"inner": {"size": 13}}, "config key 'cfg.inner.size' must not be 13"),
    ({"inner": 3}, "config key 'cfg.inner' must be a mapping, got 3"),
    ({"extra": {"y": {"z": "high"}}}, "config key 'cfg.extra.y.z' must be a number"),
    ({"inner": {"sise": 2}}, "unknown config key 'cfg.inner.sise'; did you mean 'size'?"),
    ({"zzz": 2}, "unknown config key 'cfg.zzz'; known: extra, inner, mode, names, rate"),
])
def test_errors_name_the_dotted_key(data, message):
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, data, "cfg")
    assert str(info.value).startswith(message)
    assert isinstance(info.value, UsageError)


def test_built_objects_are_checked_the_same_way():
    check_fields(Outer(inner=Inner(size=2)))
    with pytest.raises(ConfigError, match="'section.inner.size' must be >= 1, got 0"):
        check_fields(Outer(inner=Inner(size=0)), "section")


def test_params_typed_by_their_defaults():
    defaults = {"gain": 1.0, "steps": 4, "on": True, "path": None}
    assert params_from_defaults(defaults, {"gain": 2, "path": 3}, "p") == {
        "gain": 2.0, "steps": 4, "on": True, "path": 3}
    with pytest.raises(ConfigError, match="'p.on' must be a bool"):
        params_from_defaults(defaults, {"on": "yes"}, "p")
    with pytest.raises(ConfigError, match="unknown parameter 'p.stepz'; did you mean 'steps'"):
        params_from_defaults(defaults, {"stepz": 2}, "p")
