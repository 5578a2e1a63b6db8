"""Audio I/O, validation and resampling shared by every stage.

Everything inside serec works on 16 kHz mono float32 in [-1, 1]. Bad input raises
:class:`AudioRejected` whose ``reason`` is one of the ``REASON_*`` strings, so that stages can
write it to the rejects table instead of crashing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

TARGET_SR = 16_000
MIN_SECONDS = 0.5
MAX_SEGMENT_SECONDS = 10.0
SILENCE_PEAK = 1e-5

REASON_UNREADABLE = "unreadable"
REASON_EMPTY = "empty"
REASON_TOO_SHORT = "too_short"
REASON_NON_FINITE = "non_finite"
REASON_SILENT = "silent"
REJECT_REASONS = (REASON_UNREADABLE, REASON_EMPTY, REASON_TOO_SHORT, REASON_NON_FINITE,
                  REASON_SILENT)


class AudioRejected(ValueError):
    """A clip that cannot be used; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Segment:
    """One piece of a (possibly long) clip: samples at ``TARGET_SR`` plus its position."""

    index: int
    start_s: float
    audio: np.ndarray


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D signal with soxr (VHQ); returns float32, no-op when rates match."""
    audio = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return audio
    return soxr.resample(audio, sr_in, sr_out, quality="VHQ").astype(np.float32, copy=False)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels (soundfile gives frames x channels)."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def read_audio(source: str | os.PathLike | bytes, target_sr: int = TARGET_SR,
               offset_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """Decode any soundfile-supported file (path or bytes) to mono float32 at ``target_sr``.

    ``offset_s``/``duration_s`` select a window of the file (long recordings are segmented).
    Raises :class:`AudioRejected` with ``unreadable`` when the data is not decodable audio.
    """
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source) as f:
            sr = f.samplerate
            start = int(round((offset_s or 0.0) * sr))
            if start:
                f.seek(start)
            frames = -1 if duration_s is None or duration_s != duration_s else int(
                round(duration_s * sr))
            data = f.read(frames, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioRejected(REASON_UNREADABLE, f"{type(exc).__name__}: {exc}") from exc
    return resample(to_mono(data), int(sr), target_sr)


def validate(audio: np.ndarray, sr: int = TARGET_SR, min_seconds: float = MIN_SECONDS) -> None:
    """Raise :class:`AudioRejected` if the signal is empty, short, non-finite or silent."""
    if audio.size == 0:
        raise AudioRejected(REASON_EMPTY, "no samples")
    if not np.isfinite(audio).all():
        raise AudioRejected(REASON_NON_FINITE, f"{int((~np.isfinite(audio)).sum())} NaN/inf")
    if audio.size < min_seconds * sr:
        raise AudioRejected(REASON_TOO_SHORT, f"{audio.size / sr:.3f} s < {min_seconds} s")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise AudioRejected(REASON_SILENT, "digital silence")


def clip_to_range(audio: np.ndarray) -> np.ndarray:
    """Hard-limit to [-1, 1] (resampling can overshoot full-scale input slightly)."""
    return np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)


def segment(audio: np.ndarray, sr: int = TARGET_SR,
            max_seconds: float = MAX_SEGMENT_SECONDS,
            min_seconds: float = MIN_SECONDS) -> Iterator[Segment]:
    """Cut a long clip into consecutive pieces of at most ``max_seconds``.

    A trailing piece shorter than ``min_seconds`` is merged into the previous one.
    """
    step = int(round(max_seconds * sr))
    if audio.size <= step:
        yield Segment(0, 0.0, audio)
        return
    starts = list(range(0, audio.size, step))
    if audio.size - starts[-1] < min_seconds * sr:
        starts.pop()
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else audio.size
        yield Segment(i, start / sr, audio[start:end])


def load_clip(source: str | os.PathLike | bytes, sr: int = TARGET_SR,
              min_seconds: float = MIN_SECONDS,
              max_seconds: float = MAX_SEGMENT_SECONDS) -> list[Segment]:
    """Read, validate and segment one clip; raises :class:`AudioRejected`."""
    audio = read_audio(source, sr)
    validate(audio, sr, min_seconds)
    return [Segment(s.index, s.start_s, clip_to_range(s.audio))
            for s in segment(audio, sr, max_seconds, min_seconds)]


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = TARGET_SR) -> None:
    """Write 16-bit PCM WAV (parents created); writes to a temp name then renames."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    sf.write(tmp, np.asarray(audio, dtype=np.float32), sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def wav_bytes(audio: np.ndarray, sr: int = TARGET_SR) -> bytes:
    """16-bit PCM WAV file contents, for writing through a run directory's filesystem."""
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, dtype=np.float32), sr, subtype="PCM_16", format="WAV")
    return buffer.getvalue()
