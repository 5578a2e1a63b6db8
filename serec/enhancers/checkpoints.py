"""Plumbing shared by the diffusion enhancers (SGMSE+, StoRM, CDiffuSE).

- a trust gate for pickled third-party checkpoints (unpickling runs arbitrary code),
- path checks that fail in Python with the config key named,
- importing upstream research code in-process, refusing clashing module names,
- stand-ins for modules that upstream imports at module level but needs only for training,
- per-clip seeding, so that a clip's enhanced output (and thus its label) is reproducible.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.machinery
import logging
import os
import sys
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.base import MissingDependencyError

log = logging.getLogger(__name__)


class UntrustedCheckpointError(ValueError):
    """A pickled checkpoint was configured without ``trust_checkpoint: true``."""


class ModuleConflictError(ImportError):
    """Upstream code would import under a module name already taken in this process."""


# ----- configuration checks ------------------------------------------------------------------
def require_path_param(owner: str, params: Mapping[str, Any], key: str) -> str:
    """The string value of a required path parameter, or ``ValueError`` naming ``key``."""
    value = params.get(key)
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"{owner}: parameter {key!r} is required (a path), got {value!r}")
    return str(value)


def require_trust(owner: str, params: Mapping[str, Any], what: str) -> None:
    """Refuse a pickled checkpoint unless ``trust_checkpoint`` is true; never opens the file.

    Called from ``check_params``, so an untrusted entry already fails when the config is parsed.
    """
    if params.get("trust_checkpoint") is not True:
        raise UntrustedCheckpointError(
            f"{owner}: refusing to load checkpoint {params.get('checkpoint')!r}: {what} "
            f"Loading it unpickles Python objects, which can run arbitrary code. Set "
            f"'trust_checkpoint: true' in this enhancer's config entry only if you trust where "
            f"the file comes from.")


def check_positive_int(owner: str, params: Mapping[str, Any], key: str,
                       allow_none: bool = False) -> None:
    """``ValueError`` unless ``params[key]`` is an int >= 1 (or ``None`` when allowed)."""
    value = params.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: parameter {key!r} must be an integer >= 1"
                         f"{' or null' if allow_none else ''}, got {value!r}")


def check_positive(owner: str, params: Mapping[str, Any], key: str) -> None:
    """``ValueError`` unless the number ``params[key]`` is > 0 (its type is checked against
    the kind's default when the entry is parsed)."""
    if params[key] <= 0:
        raise ValueError(f"{owner}: parameter {key!r} must be > 0, got {params[key]}")


def check_choice(owner: str, params: Mapping[str, Any], key: str,
                 choices: Sequence[str]) -> None:
    """``ValueError`` unless ``params[key]`` is one of ``choices``."""
    if params.get(key) not in choices:
        raise ValueError(f"{owner}: parameter {key!r} must be one of {', '.join(choices)}, "
                         f"got {params.get(key)!r}")


# ----- filesystem checks (run inside the actor, where the paths must exist) ------------------
def readable_file(path: str | os.PathLike, owner: str, key: str) -> Path:
    """``path`` as an absolute :class:`Path` if it is a readable file, else a clear error."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"{owner}: {key} {str(resolved)!r} is not a file")
    if not os.access(resolved, os.R_OK):
        raise PermissionError(f"{owner}: {key} {str(resolved)!r} is not readable")
    return resolved


def source_checkout(path: str | os.PathLike, owner: str, key: str,
                    markers: Iterable[str]) -> Path:
    """The directory ``path`` if it holds every file in ``markers`` (relative paths)."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise FileNotFoundError(f"{owner}: {key} {str(resolved)!r} is not a directory")
    missing = [marker for marker in markers if not (resolved / marker).is_file()]
    if missing:
        raise FileNotFoundError(f"{owner}: {key} {str(resolved)!r} is not the expected "
                                f"upstream checkout (missing {', '.join(missing)})")
    return resolved


# ----- importing upstream code ---------------------------------------------------------------
def module_locations(module: types.ModuleType) -> list[Path]:
    """Where a module or (namespace) package was loaded from."""
    locations = [Path(entry) for entry in getattr(module, "__path__", None) or ()]
    if getattr(module, "__file__", None):
        locations.append(Path(module.__file__).parent)
    return list(dict.fromkeys(location.resolve() for location in locations))


def is_within(module: types.ModuleType, directory: Path) -> bool:
    """True if ``module`` was loaded from ``directory`` or below."""
    return any(location == directory or directory in location.parents
               for location in module_locations(module))


def import_from_checkout(directory: Path, module: str, top_level: Sequence[str],
                         owner: str) -> types.ModuleType:
    """Import ``module`` from a source checkout put on ``sys.path``.

    Every name in ``top_level`` (the checkout's top-level modules) must either be unimported
    or already come from ``directory``, both before and after the import; otherwise
    :class:`ModuleConflictError`, since one process cannot hold two modules of one name.
    """
    directory = directory.resolve()

    def check(stage: str) -> None:
        for name in top_level:
            existing = sys.modules.get(name)
            if existing is not None and not is_within(existing, directory):
                where = ", ".join(str(p) for p in module_locations(existing)) or "unknown"
                raise ModuleConflictError(
                    f"{owner}: {stage}, module {name!r} in this process comes from {where}, "
                    f"not from {str(directory)!r}. One Python process cannot hold two modules "
                    f"named {name!r}: run this enhancer in its own Ray runtime_env (see "
                    f"resources.runtime_env) whose interpreter does not install {name!r}.")

    check("before import")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    imported = importlib.import_module(module)
    check("after import")
    return imported


def import_required(modules: Mapping[str, str], owner: str) -> None:
    """Import each ``module -> pip package`` or raise :class:`MissingDependencyError`."""
    for module, package in modules.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(
                f"{owner} needs the Python package {package!r} (import {module!r} failed: "
                f"{exc})") from exc


def _unavailable_module(name: str, reason: str) -> types.ModuleType:
    """A module whose every public attribute is a callable raising ``MissingDependencyError``."""
    module = types.ModuleType(name, f"Stand-in for the unavailable module {name!r}.")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)

        def unavailable(*_args: Any, **_kwargs: Any) -> Any:
            raise MissingDependencyError(
                f"{name}.{attribute} was called, but {name!r} could not be imported ({reason}). "
                f"serec's inference path does not use it, this checkpoint or code path does: "
                f"install a working {name!r} in this enhancer's environment")

        return unavailable

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


@contextlib.contextmanager
def training_only_modules(names: Sequence[str]) -> Iterator[list[str]]:
    """While upstream modules are imported, stand in for ``names`` if they cannot be imported.

    Research code often imports I/O or training-loss libraries at module level (e.g. SGMSE+
    does ``from torchaudio import load``) that inference never calls. Where such a module is
    not importable (torchaudio has no build for serec's torch pin), a stand-in whose attributes
    raise :class:`MissingDependencyError` when *called* lets the import succeed. Stand-ins are
    removed from ``sys.modules`` on exit; importable modules are used as they are. Yields the
    names that were stood in for.
    """
    inserted: list[str] = []
    for name in names:
        before = set(sys.modules)
        try:
            importlib.import_module(name)
            continue
        except (ImportError, OSError, RuntimeError) as exc:  # absent, or a mismatched build
            reason = f"{type(exc).__name__}: {exc}"
        for leftover in set(sys.modules) - before:  # half-imported submodules
            if leftover == name or leftover.startswith(name + "."):
                del sys.modules[leftover]
        log.info("standing in for training-only module %s (%s)", name, reason)
        sys.modules[name] = _unavailable_module(name, reason)
        inserted.append(name)
    try:
        yield inserted
    finally:
        for name in inserted:
            sys.modules.pop(name, None)


# ----- reproducible sampling -----------------------------------------------------------------
def clip_seed(audio: np.ndarray, seed: int) -> int:
    """A 63-bit seed from the clip's samples and the configured seed.

    Content-derived, so a clip gets the same diffusion noise whatever batch or order it
    arrives in, and labels are reproducible.
    """
    digest = hashlib.sha256()
    digest.update(int(seed).to_bytes(8, "little", signed=True))
    digest.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)


@contextlib.contextmanager
def seeded_torch(seed: int, device: str) -> Iterator[None]:
    """Seed torch's global generators (CPU, and the CUDA device in use) inside this block only.

    Upstream samplers draw from the global generators (``torch.randn_like``); the previous
    generator state is restored on exit.
    """
    import torch

    devices: list[int] = []
    if torch.device(device).type == "cuda":
        index = torch.device(device).index
        devices = [torch.cuda.current_device() if index is None else index]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def peak(audio: np.ndarray) -> float:
    """Largest absolute sample (0.0 for silence); upstream code divides by it."""
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def load_lightning_checkpoint(model_class: Any, path: Path, device: str,
                              **hparam_overrides: Any) -> Any:
    """``model_class.load_from_checkpoint`` with full unpickling (callers gate on trust).

    Lightning >= 2.4 takes ``weights_only``; older versions (StoRM pins 1.8) do not, and there
    an unknown keyword would become a hyperparameter override, so it is passed only if accepted.
    """
    import inspect

    loader = model_class.load_from_checkpoint
    kwargs = dict(hparam_overrides)
    if "weights_only" in inspect.signature(loader).parameters:
        kwargs["weights_only"] = False
    return loader(str(path), map_location=device, **kwargs)
