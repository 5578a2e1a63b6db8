"""AST input spectrograms for clips: log-mel frames plus how many frames are real audio."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transformers import ASTFeatureExtractor

from serec.audio import TARGET_SR, clip_to_range, read_audio

FRAME_LENGTH = 400  # 25 ms Kaldi window at 16 kHz
FRAME_SHIFT = 160   # 10 ms hop


def real_frames(n_samples: int, max_length: int) -> int:
    """Frames of the extractor's output that hold audio rather than padding."""
    if n_samples < FRAME_LENGTH:
        return 0
    return min(max_length, 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT)


def spectrograms(audios: Sequence[np.ndarray],
                 extractor: ASTFeatureExtractor) -> tuple[np.ndarray, np.ndarray]:
    """``(input_values (N, max_length, mel) float32, n_frames (N,) int32)`` for 16 kHz clips."""
    if not len(audios):
        shape = (0, extractor.max_length, extractor.num_mel_bins)
        return np.zeros(shape, np.float32), np.zeros(0, np.int32)
    values = extractor([np.asarray(a, np.float32) for a in audios], sampling_rate=TARGET_SR,
                       return_tensors="np")["input_values"].astype(np.float32, copy=False)
    n_frames = np.array([real_frames(len(a), extractor.max_length) for a in audios], np.int32)
    return values, n_frames


def values_to_bytes(values: np.ndarray) -> list[bytes]:
    """One clip's input values per item, as raw float32 bytes (how ``inputs/`` stores them)."""
    return [np.ascontiguousarray(v, np.float32).tobytes() for v in values]


def values_from_bytes(items: Sequence[bytes], max_length: int) -> np.ndarray:
    """Stored input values back to ``(N, max_length, mel)`` float32."""
    if not len(items):
        return np.zeros((0, max_length, 0), np.float32)
    flat = np.frombuffer(bytearray(b"".join(items)), np.float32)
    return flat.reshape(len(items), max_length, -1)


def read_clip(path: str, offset_s: float | None = None,
              duration_s: float | None = None) -> np.ndarray:
    """One manifest clip (a window of a file) as 16 kHz mono float32."""
    offset = 0.0 if offset_s is None or offset_s != offset_s else float(offset_s)
    duration = None if duration_s is None or duration_s != duration_s else float(duration_s)
    return clip_to_range(read_audio(path, TARGET_SR, offset, duration))
