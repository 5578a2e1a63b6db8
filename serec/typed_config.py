"""The one way config values are checked: typed dataclasses built by :func:`from_mapping`.

Every config section (``SerecConfig`` and its parts, ``TrainConfig``, ``Resources``) and every
enhancer's parameters (typed by their ``default_params``) go through :func:`convert`, so a bad
value fails at load time with a :class:`ConfigError` that names the key by its dotted path
(``label.decode.batch_size``) and, for a misspelt key, the closest known ones.

Ranges are declared on the field (``field(default=..., metadata=at_least(0))``); checks that
span fields live in a dataclass method ``check(self, key)`` run after the fields are converted.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

from serec.errors import ConfigError

T = TypeVar("T")


def at_least(bound: float, *, strict: bool = False, at_most: float | None = None
             ) -> dict[str, Any]:
    """Field metadata: the value (when not null) must be ``>= bound`` (``> bound`` if strict)
    and ``<= at_most``."""
    return {"min": bound, "strict_min": strict, "max": at_most}


def join_key(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def unknown_key(key: str, known: Iterable[str], what: str = "config key") -> ConfigError:
    """The error for a key nobody declares, with the closest known keys as a hint."""
    known = sorted(known)
    close = difflib.get_close_matches(key.rpartition(".")[2], known, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
            else f"known: {', '.join(known) or 'none'}")
    return ConfigError(f"unknown {what} '{key}'; {hint}")


def _number(value: Any, hint: type, key: str) -> int | float:
    if isinstance(value, str):  # YAML 1.1 reads ``1e-5`` as text
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if hint is int else "a number"
        raise ConfigError(f"config key '{key}' must be {kind}, got {value!r}")
    if hint is int and float(value) != int(value):
        raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
    return hint(value)


def convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked (and, for numbers and nested sections, converted) against ``hint``."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            check_fields(value, key)
            return value
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
                return convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config key '{key}' must be null")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"config key '{key}' must be one of "
                              f"{', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        item = (typing.get_args(hint) or (Any,))[0]
        return [convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        item = (typing.get_args(hint) or (str, Any))[1]
        empty = {} if typing.get_origin(item) is dict or item is dict else None
        return {str(k): convert(empty if v is None and empty is not None else v, item,
                                join_key(key, k)) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a bool (true or false), got {value!r}")
        return value
    if hint in (int, float):
        return _number(value, hint, key)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    if hint is not Any and isinstance(hint, type) and hint is not object \
            and not isinstance(value, hint):
        raise ConfigError(f"config key '{key}' must be {hint.__name__}, got {value!r}")
    return value


def _check_bounds(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if value is None or "min" not in meta:
        return
    low, high, strict = meta["min"], meta.get("max"), meta.get("strict_min", False)
    too_low = value <= low if strict else value < low
    if too_low or (high is not None and value > high):
        rule = f"> {low:g}" if strict else f">= {low:g}"
        if high is not None:
            rule = f"in [{low:g}, {high:g}]"
        raise ConfigError(f"config key '{key}' must be {rule}, got {value!r}")


def check_fields(obj: Any, prefix: str = "") -> None:
    """Types, declared ranges and the ``check`` hook of an already built dataclass."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key = join_key(prefix, f.name)
        value = convert(getattr(obj, f.name), hints[f.name], key)
        _check_bounds(value, f.metadata, key)
    check = getattr(obj, "check", None)
    if callable(check):
        check(prefix)


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; a bad value or unknown key raises
    :class:`ConfigError` naming ``prefix.key``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config key '{prefix or cls.__name__}' must be a mapping, "
                          f"got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = join_key(prefix, key)
        if key not in fields:
            raise unknown_key(dotted, fields)
        kwargs[key] = convert(value, hints[key], dotted)
        _check_bounds(kwargs[key], fields[key].metadata, dotted)
    built = cls(**kwargs)
    check = getattr(built, "check", None)
    if callable(check):
        check(prefix)
    return built


def params_from_defaults(defaults: Mapping[str, Any], params: Mapping[str, Any],
                         prefix: str) -> dict[str, Any]:
    """``defaults`` overlaid with ``params``, each typed like its default (``None``: any).

    This is how an enhancer's ``default_params`` declare its parameters.
    """
    resolved = dict(defaults)
    for key, value in params.items():
        dotted = join_key(prefix, key)
        if key not in defaults:
            raise unknown_key(dotted, defaults, "parameter")
        default = defaults[key]
        resolved[key] = value if default is None else convert(value, type(default), dotted)
    return resolved
