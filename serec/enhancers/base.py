"""The enhancer interface: resources, parameters, and the 16 kHz batch contract.

Every enhancer takes 16 kHz mono float32 clips and returns clips of exactly the same length,
time-aligned with the input (its algorithmic delay compensated) and limited to [-1, 1].
Subclasses work at their own ``native_sr``; resampling to and from it happens here only.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from serec.audio import TARGET_SR, clip_to_range, resample
from serec.errors import ConfigError
from serec.resources import Resources
from serec.typed_config import params_from_defaults

log = logging.getLogger(__name__)

WARM_UP_SECONDS = 0.5


class EnhancementError(RuntimeError):
    """An enhancer produced unusable output (wrong shape, NaN/inf) for one clip."""


class MissingDependencyError(ImportError):
    """An optional package needed by one enhancer kind is not installed."""


def import_optional(module: str, *, package: str, enhancer: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"enhancer {enhancer!r} needs the Python package {package!r} "
            f"(import {module!r} failed: {exc}); install it with `pip install {package}`"
        ) from exc


class Enhancer(abc.ABC):
    """Base class of all speech enhancers.

    Subclasses set ``kind``, ``native_sr`` and ``default_params`` (every accepted parameter
    with its default), load models in :meth:`setup` (called once from ``__init__``, i.e. once
    per Ray actor) and implement :meth:`enhance_native`, or override :meth:`enhance_batch` for
    true batching (using :meth:`check_input`, :meth:`to_native` and :meth:`from_native`). An
    output must not depend on the other clips of its batch or on earlier calls.
    """

    kind: ClassVar[str] = ""
    native_sr: ClassVar[int] = TARGET_SR
    default_params: ClassVar[Mapping[str, Any]] = {}
    # An identity enhancer returns its input unchanged, so labeling scores its output as the
    # noisy clip's (one DNSMOS pass, no pool of its own). Read with :meth:`is_identity`: a
    # subclass that changes the audio must not inherit the flag.
    identity: ClassVar[bool] = False

    @classmethod
    def is_identity(cls) -> bool:
        """Whether this class itself (not a base class) declares ``identity = True``."""
        return bool(vars(cls).get("identity", False))

    def __init__(self, name: str, resources: Resources | None = None,
                 **params: Any) -> None:
        self.name = name
        self.resources = resources if resources is not None else Resources()
        self.resources.validate(self.describe(name))
        self.params = self.resolve_params(name, params)
        self.setup()
        self.warm_up()

    # ----- parameters -------------------------------------------------------------------
    @classmethod
    def describe(cls, name: str) -> str:
        """How errors name this instance, e.g. ``enhancer 'dfn3_mild' (kind 'deepfilternet3')``."""
        return f"enhancer {name!r} (kind {cls.kind!r})"

    @classmethod
    def resolve_params(cls, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults merged with ``params``; unknown keys, wrong types or ranges raise ValueError."""
        owner = cls.describe(name)
        try:
            resolved = params_from_defaults(cls.default_params, params, "")
        except ConfigError as exc:
            raise ConfigError(f"{owner}: {exc}") from None
        cls.check_params(owner, resolved)
        return resolved

    @classmethod  # noqa: B027 - optional hook
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        """Range checks on resolved parameters (no model loading); raise ValueError."""

    # ----- lifecycle --------------------------------------------------------------------
    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models and native libraries; runs once per instance (per Ray actor)."""

    def warm_up(self) -> None:
        """Run one short clip through the whole path so the first real batch is not slow."""
        rng = np.random.default_rng(0)
        clip = (0.01 * rng.standard_normal(int(WARM_UP_SECONDS * TARGET_SR))).astype(np.float32)
        self.enhance_batch([clip])

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources; the instance is unusable afterwards."""

    def __enter__(self) -> Enhancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.params!r})"

    # ----- enhancement ------------------------------------------------------------------
    def enhance_batch(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Enhance 16 kHz mono clips; each output has its input's length, aligned, in [-1, 1]."""
        outputs = []
        for index, clip in enumerate(clips):
            audio = self.check_input(clip, index)
            native = self.to_native(audio)
            enhanced = np.asarray(self.enhance_native(native), dtype=np.float32).reshape(-1)
            if enhanced.size != native.size:
                raise EnhancementError(f"{self.describe(self.name)}: enhance_native returned "
                                       f"{enhanced.size} samples for {native.size}")
            outputs.append(self.from_native(enhanced, audio.size, index))
        return outputs

    def enhance(self, clip: np.ndarray) -> np.ndarray:
        """Enhance one 16 kHz clip (convenience wrapper around :meth:`enhance_batch`)."""
        return self.enhance_batch([clip])[0]

    @abc.abstractmethod
    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        """Enhance one float32 clip at ``native_sr``: same length out, delay compensated."""

    def check_input(self, clip: np.ndarray, index: int = 0) -> np.ndarray:
        """A 1-D finite float32 contiguous view of one input clip, or ``ValueError``."""
        audio = np.ascontiguousarray(clip, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"{self.describe(self.name)}: clip {index} must be 1-D mono, "
                             f"got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise ValueError(f"{self.describe(self.name)}: clip {index} has NaN/inf samples")
        return audio

    def to_native(self, audio: np.ndarray) -> np.ndarray:
        """A checked 16 kHz clip resampled to ``native_sr``."""
        return resample(audio, TARGET_SR, self.native_sr)

    def from_native(self, audio: np.ndarray, length: int, index: int = 0) -> np.ndarray:
        """An enhanced ``native_sr`` clip back at 16 kHz as a finished output (see
        :meth:`finish_output`)."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        return self.finish_output(resample(audio, self.native_sr, TARGET_SR), length, index)

    def finish_output(self, audio: np.ndarray, length: int, index: int = 0) -> np.ndarray:
        """Crop/zero-pad to ``length``, check finiteness, return float32 in [-1, 1].

        Only the rounding of a 16 kHz -> native -> 16 kHz round trip is absorbed; a larger
        length mismatch is a bug in the enhancer and raises :class:`EnhancementError`.
        """
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        tolerance = -(-TARGET_SR // self.native_sr) + 1
        if abs(audio.size - length) > tolerance:
            raise EnhancementError(f"{self.describe(self.name)}: clip {index} came back with "
                                   f"{audio.size} samples for {length} in")
        if audio.size >= length:
            audio = audio[:length]
        else:
            audio = np.pad(audio, (0, length - audio.size))
        if not np.isfinite(audio).all():
            raise EnhancementError(f"{self.describe(self.name)}: clip {index} output has NaN/inf")
        return clip_to_range(audio)

    # ----- helpers for torch-based subclasses ---------------------------------------------
    def torch_device(self) -> str:
        """``"cuda"`` when this instance was given GPUs and CUDA is usable, else ``"cpu"``."""
        if self.resources.num_gpus <= 0:
            return "cpu"
        import torch  # lazy: most enhancers never need torch

        if torch.cuda.is_available():
            return "cuda"
        log.warning("%s asks for GPUs but CUDA is not available; using CPU",
                    self.describe(self.name))
        return "cpu"
