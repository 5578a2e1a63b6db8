"""Spectral gating with ``noisereduce`` (stationary or non-stationary noise estimate).

Gating also attenuates parts of already-clean speech; deciding when not to use it is the
router's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer, import_optional
from serec.enhancers.registry import register_enhancer


@register_enhancer("spectral_gate")
class SpectralGate(Enhancer):
    """``noisereduce.reduce_noise`` at 16 kHz, single-threaded (Ray provides parallelism)."""

    default_params = {
        "stationary": False,
        "prop_decrease": 1.0,
        "time_constant_s": 2.0,
        "freq_mask_smooth_hz": 500.0,
        "time_mask_smooth_ms": 50.0,
        "thresh_n_mult_nonstationary": 2.0,
        "sigmoid_slope_nonstationary": 10.0,
        "n_std_thresh_stationary": 1.5,
        "n_fft": 1024,
    }

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if not 0.0 <= params["prop_decrease"] <= 1.0:
            raise ValueError(f"{owner}: prop_decrease must be in [0, 1], "
                             f"got {params['prop_decrease']}")
        for key in ("time_constant_s", "freq_mask_smooth_hz", "time_mask_smooth_ms"):
            if params[key] <= 0:
                raise ValueError(f"{owner}: {key} must be > 0, got {params[key]}")
        if params["n_fft"] < 16:
            raise ValueError(f"{owner}: n_fft must be >= 16, got {params['n_fft']}")

    def setup(self) -> None:
        self._noisereduce = import_optional("noisereduce", package="noisereduce",
                                            enhancer=self.describe(self.name))

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        return self._noisereduce.reduce_noise(
            y=audio, sr=self.native_sr, n_jobs=1, use_tqdm=False, use_torch=False,
            **self.params)
