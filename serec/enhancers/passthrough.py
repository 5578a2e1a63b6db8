"""The "no enhancement" choice: returns the input unchanged."""

from __future__ import annotations

import numpy as np

from serec.enhancers.base import Enhancer
from serec.enhancers.registry import register_enhancer


@register_enhancer("passthrough")
class Passthrough(Enhancer):
    """Identity; lets the router choose to leave a clip alone."""

    identity = True

    def warm_up(self) -> None:
        """Nothing to warm up."""

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        return audio.copy()
