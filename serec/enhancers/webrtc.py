"""WebRTC noise suppression (the DSP suppressor of WebRTC's audio processing module) through
the ``webrtc-noise-gain`` wheel.

The module takes 10 ms frames of 16-bit PCM at 16 kHz. Level 0 switches suppression off
(the module's high-pass filter still runs), 1-4 suppress from mild to very strong; automatic
gain control stays off unless ``auto_gain_dbfs`` is set. A fresh processor per clip keeps
clips independent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer, import_optional
from serec.enhancers.framing import process_frames
from serec.enhancers.registry import register_enhancer

FRAME_LENGTH = 160
DELAY_SAMPLES = 96
"""Output lag of the suppressor (256-sample analysis frames, 160-sample hop), measured by
cross-correlation against the output with suppression off (see tests). The high-pass filter
that always runs is not a delay, but its phase moves cross-correlation peaks on speech by up
to 3 samples."""
INT16_SCALE = 32767.0


@register_enhancer("webrtc")
class WebRtcNoiseSuppression(Enhancer):
    """WebRTC NS at ``level`` 0-4 on 10 ms int16 frames."""

    default_params = {"level": 2, "auto_gain_dbfs": 0}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if not 0 <= params["level"] <= 4:
            raise ValueError(f"{owner}: level must be in 0..4, got {params['level']}")
        if not 0 <= params["auto_gain_dbfs"] <= 31:
            raise ValueError(f"{owner}: auto_gain_dbfs must be in 0..31 (0: off), "
                             f"got {params['auto_gain_dbfs']}")

    def setup(self) -> None:
        module = import_optional("webrtc_noise_gain", package="webrtc-noise-gain",
                                 enhancer=self.describe(self.name))
        self._processor_class = module.AudioProcessor
        self._delay = DELAY_SAMPLES if self.params["level"] > 0 else 0

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        processor = self._processor_class(self.params["auto_gain_dbfs"], self.params["level"])

        def process_frame(frame_in: np.ndarray, frame_out: np.ndarray) -> None:
            pcm = np.clip(np.round(frame_in * INT16_SCALE), -32768, 32767).astype(np.int16)
            result = processor.Process10ms(pcm.tobytes()).audio
            frame_out[:] = np.frombuffer(result, dtype=np.int16) / np.float32(INT16_SCALE)

        return process_frames(audio, FRAME_LENGTH, self._delay, process_frame)
