"""Frame-by-frame driver shared by streaming frame processors (RNNoise, DeepFilterNet3).

A streaming processor consumes fixed-size frames and emits, per frame, the same number of
samples delayed by a fixed algorithmic delay. :func:`process_frames` pads the clip with zeros
to whole frames plus that delay, runs the processor, drops the first ``delay`` samples and
crops to the input length, so that the result is aligned with the input.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np

FrameFn = Callable[[np.ndarray, np.ndarray], object]
"""``process_frame(frame_in, frame_out)``: fills ``frame_out`` (float32, in place)."""

FLOAT_PTR = ctypes.POINTER(ctypes.c_float)


def float_ptr(array: np.ndarray) -> ctypes._Pointer:
    """A ``float*`` into a C-contiguous float32 array (views of contiguous 1-D arrays are)."""
    return array.ctypes.data_as(FLOAT_PTR)


def padded_length(length: int, frame_length: int, delay: int) -> int:
    """Samples fed to the processor: whole frames covering ``length + delay``."""
    return -(-(length + delay) // frame_length) * frame_length


def process_frames(audio: np.ndarray, frame_length: int, delay: int,
                   process_frame: FrameFn) -> np.ndarray:
    """Run ``process_frame`` over ``audio`` frame by frame; output aligned, same length."""
    if frame_length <= 0 or delay < 0:
        raise ValueError(f"frame_length must be > 0 and delay >= 0, got {frame_length}, {delay}")
    length = audio.shape[0]
    padded = np.zeros(padded_length(length, frame_length, delay), dtype=np.float32)
    padded[:length] = audio
    output = np.empty_like(padded)
    for start in range(0, padded.size, frame_length):
        stop = start + frame_length
        process_frame(padded[start:stop], output[start:stop])
    return output[delay:delay + length].copy()
