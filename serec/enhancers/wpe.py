"""Weighted prediction error dereverberation (Nakatani et al. 2010) with ``nara_wpe``.

Offline, single channel, in the STFT domain: every frequency bin gets a linear prediction
filter over ``taps`` past frames, skipping the ``delay`` most recent ones so that the direct
sound and early reflections are kept, and the predicted late reverberation is subtracted.
Defaults for 16 kHz follow the nara_wpe examples: 512-point frames, hop 128, 10 taps,
delay 3, 3 iterations; BLAS is limited to ``threads`` threads during the solve (Ray actors get
fractional CPUs). WPE removes reverberation, not additive noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from serec.enhancers.base import Enhancer, import_optional
from serec.enhancers.registry import register_enhancer
from serec.enhancers.stft import CentredStft, sqrt_hann


@register_enhancer("wpe")
class WPE(Enhancer):
    """nara_wpe's loop-over-bins WPE (``wpe_v8``) on a centred sqrt-Hann STFT."""

    default_params = {"taps": 10, "delay": 3, "iterations": 3, "psd_context": 0,
                      "n_fft": 512, "hop": 128, "threads": 1}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        for key, low in (("taps", 1), ("delay", 1), ("iterations", 1), ("psd_context", 0),
                         ("n_fft", 16), ("hop", 1), ("threads", 1)):
            if params[key] < low:
                raise ValueError(f"{owner}: {key} must be >= {low}, got {params[key]}")
        if params["hop"] > params["n_fft"]:
            raise ValueError(f"{owner}: hop must be <= n_fft, got {params['hop']} > "
                             f"{params['n_fft']}")

    def setup(self) -> None:
        self._nara = import_optional("nara_wpe.wpe", package="nara-wpe",
                                     enhancer=self.describe(self.name))
        self._stft = CentredStft(self.params["n_fft"], self.params["hop"],
                                 sqrt_hann(self.params["n_fft"]))

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        spec = self._stft.analyze(audio).astype(np.complex128)  # (frames, bins)
        observed = spec.T[:, None, :]  # (bins, channels=1, frames)
        with threadpool_limits(self.params["threads"]):
            dereverberated = self._nara.wpe_v8(
                observed, taps=self.params["taps"], delay=self.params["delay"],
                iterations=self.params["iterations"], psd_context=self.params["psd_context"],
                statistics_mode="full")
        return self._stft.synthesize(dereverberated[:, 0, :].T, audio.size)
