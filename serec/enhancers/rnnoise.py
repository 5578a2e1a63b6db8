"""RNNoise (Valin 2018) through ``librnnoise.so`` shipped by the ``pyrnnoise`` package.

The library is called directly with ctypes on 480-sample frames at 48 kHz, with samples in
the int16 range as RNNoise expects. The ``pyrnnoise`` Python package itself is not imported
(its ``__init__`` pulls in audio-file dependencies); only its shared library is located.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path

import numpy as np

from serec.enhancers.base import Enhancer, MissingDependencyError
from serec.enhancers.framing import FLOAT_PTR, float_ptr, process_frames
from serec.enhancers.registry import register_enhancer

FRAME_LENGTH = 480
DELAY_SAMPLES = 960
"""Output lag of rnnoise_process_frame at 48 kHz, measured by cross-correlation (see tests)."""
INT16_SCALE = 32768.0


def _library_filename() -> str:
    if sys.platform == "darwin":
        return "librnnoise.dylib"
    if sys.platform == "win32":
        return "rnnoise.dll"
    return "librnnoise.so"


def find_library(owner: str = "enhancer 'rnnoise'") -> Path:
    """Path of the RNNoise shared library inside the installed ``pyrnnoise`` package."""
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"{owner} needs the Python package 'pyrnnoise'; "
                                     f"install it with `pip install pyrnnoise`")
    path = Path(next(iter(spec.submodule_search_locations))) / _library_filename()
    if not path.is_file():
        raise MissingDependencyError(f"{owner}: {path} is missing; reinstall 'pyrnnoise'")
    return path


def load_library(path: Path) -> ctypes.CDLL:
    """Load librnnoise and declare the signatures used here."""
    lib = ctypes.CDLL(str(path))
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.rnnoise_init.restype = ctypes.c_int
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_destroy.restype = None
    lib.rnnoise_get_frame_size.argtypes = []
    lib.rnnoise_get_frame_size.restype = ctypes.c_int
    # float rnnoise_process_frame(DenoiseState *st, float *out, const float *in)
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, FLOAT_PTR, FLOAT_PTR]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    return lib


@register_enhancer("rnnoise")
class RNNoise(Enhancer):
    """RNNoise at 48 kHz; one denoiser state per instance, reset before every clip."""

    native_sr = 48_000

    def setup(self) -> None:
        owner = self.describe(self.name)
        self._lib = load_library(find_library(owner))
        frame_size = self._lib.rnnoise_get_frame_size()
        if frame_size != FRAME_LENGTH:
            raise RuntimeError(f"{owner}: librnnoise frame size is {frame_size}, "
                               f"expected {FRAME_LENGTH}")
        self._state = self._lib.rnnoise_create(None)
        if not self._state:
            raise RuntimeError(f"{owner}: rnnoise_create failed")

    def _process_frame(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        self._lib.rnnoise_process_frame(self._state, float_ptr(frame_out), float_ptr(frame_in))

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        if not self._state:
            raise RuntimeError(f"{self.describe(self.name)} is closed")
        # rnnoise_init with a NULL model resets the state to that of a fresh rnnoise_create.
        self._lib.rnnoise_init(self._state, None)
        scaled = (audio * INT16_SCALE).astype(np.float32)
        out = process_frames(scaled, FRAME_LENGTH, DELAY_SAMPLES, self._process_frame)
        return out / np.float32(INT16_SCALE)

    def close(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.rnnoise_destroy(state)

    def __del__(self) -> None:
        self.close()
