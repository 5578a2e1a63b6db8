"""Ray Data stages shared by ``label``, ``score`` and ``recommend``.

Batches are pandas frames that carry ``clip_id`` all the way. Audio travels as raw float32
bytes (column ``audio`` for the decoded input, ``out__<system>`` for enhancer outputs), which
Arrow stores without per-row tensor metadata. A clip that failed decoding keeps flowing with
an empty ``audio`` and its ``reject_reason``, so every clip reaches the writer.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from serec.audio import (
    MAX_SEGMENT_SECONDS,
    MIN_SECONDS,
    TARGET_SR,
    AudioRejected,
    clip_to_range,
    read_audio,
    validate,
)
from serec.quality.dnsmos import SCORE_COLUMNS, worker_dnsmos
from serec.ray_utils import node_id
from serec.resources import Resources

if TYPE_CHECKING:
    import ray.data

NOISY = "noisy"
SCORE_FIELDS = SCORE_COLUMNS


def to_bytes(audio: np.ndarray) -> bytes:
    return np.ascontiguousarray(audio, dtype=np.float32).tobytes()


def from_bytes(data: bytes | None) -> np.ndarray:
    return np.frombuffer(data or b"", dtype=np.float32)


def output_column(system: str) -> str:
    return f"out__{system}"


def as_float(value: object) -> float:
    """A float from a cell that may hold None/NA (Arrow nulls come back as ``pd.NA``)."""
    return float("nan") if value is None or pd.isna(value) else float(value)


def decode_clip(path: str, offset_s: float | None = None, duration_s: float | None = None,
                min_seconds: float = MIN_SECONDS,
                max_seconds: float = MAX_SEGMENT_SECONDS) -> np.ndarray:
    """Read one manifest clip (a window of a file), validated, at 16 kHz; raises AudioRejected.

    Manifests cut long files into windows; a clip still longer than ``max_seconds`` (a file
    passed directly) is cropped to its first ``max_seconds``.
    """
    audio = read_audio(path, TARGET_SR, offset_s or 0.0, duration_s)
    validate(audio, TARGET_SR, min_seconds)
    if np.isfinite(max_seconds):
        audio = audio[: int(max_seconds * TARGET_SR)]
    return clip_to_range(audio)


def decode_batch(batch: pd.DataFrame, min_seconds: float = MIN_SECONDS,
                 max_seconds: float = MAX_SEGMENT_SECONDS) -> pd.DataFrame:
    """CPU task: manifest rows -> ``audio`` bytes, or an empty ``audio`` and ``reject_reason``."""
    audio, reasons, durations = [], [], []
    offsets = batch["offset_s"] if "offset_s" in batch else [0.0] * len(batch)
    lengths = batch["duration_s"] if "duration_s" in batch else [None] * len(batch)
    for path, offset, length in zip(batch["path"], offsets, lengths, strict=True):
        try:
            samples = decode_clip(path, offset, None if pd.isna(length) else float(length),
                                  min_seconds, max_seconds)
            audio.append(to_bytes(samples))
            reasons.append(None)
            durations.append(samples.size / TARGET_SR)
        except AudioRejected as exc:
            audio.append(b"")
            reasons.append(str(exc))
            durations.append(float("nan"))
    out = batch.copy()
    out["audio"] = audio
    out["reject_reason"] = reasons
    out["audio_s"] = durations
    return out


def add_decode(ds: ray.data.Dataset, resources: Resources, min_seconds: float,
               max_seconds: float, max_retries: int = 3) -> ray.data.Dataset:
    """Append the :func:`decode_batch` task stage with the ``label.decode`` resources.

    ``max_retries`` bounds how often a task whose worker died is run again.
    """
    return ds.map_batches(decode_batch, batch_format="pandas", batch_size=resources.batch_size,
                          fn_kwargs=dict(min_seconds=min_seconds, max_seconds=max_seconds),
                          max_retries=max_retries, **resources.task_args())


class Enhance:
    """Actor: one enhancer, loaded once per actor; adds ``out__/sec__/err__/node__<name>``."""

    def __init__(self, name: str, entry: Mapping[str, Any]) -> None:
        from serec.enhancers.registry import build_enhancer

        self.name = name
        self.enhancer = build_enhancer(name, entry)
        self.node = node_id()

    def _enhance_each(self, clips: Sequence[np.ndarray]) -> tuple[list, list, list]:
        outputs, seconds, errors = [], [], []
        for clip in clips:
            start = time.perf_counter()
            try:
                (out,) = self.enhancer.enhance_batch([clip])
                outputs.append(to_bytes(out))
                errors.append(None)
            except Exception as exc:  # one bad clip must not sink the batch
                outputs.append(b"")
                errors.append(f"{type(exc).__name__}: {exc}")
            seconds.append(time.perf_counter() - start)
        return outputs, seconds, errors

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ok = batch["reject_reason"].isna().to_numpy()
        clips = [from_bytes(a) for a in batch.loc[ok, "audio"]]
        outputs: list[bytes] = [b""] * len(batch)
        seconds = [float("nan")] * len(batch)
        errors: list[str | None] = [None] * len(batch)
        if clips:
            start = time.perf_counter()
            try:
                enhanced = self.enhancer.enhance_batch(clips)
                total = time.perf_counter() - start
                sizes = np.array([c.size for c in clips], dtype=float)
                done = ([to_bytes(e) for e in enhanced], list(total * sizes / sizes.sum()),
                        [None] * len(clips))
            except Exception:
                done = self._enhance_each(clips)
            for i, out, sec, err in zip(np.flatnonzero(ok), *done, strict=True):
                outputs[i], seconds[i], errors[i] = out, sec, err
        out = batch.copy()
        out[output_column(self.name)] = outputs
        out[f"sec__{self.name}"] = seconds
        out[f"err__{self.name}"] = errors
        out[f"node__{self.name}"] = self.node
        return out


def score_clips(dnsmos: Any, clips: Sequence[np.ndarray]) -> tuple[list, np.ndarray]:
    """DNSMOS of ``clips`` in one batch (clip by clip if the batch fails).

    Returns one result per clip (scores, or the error text of a clip that could not be scored)
    and each clip's share of the wall time, in proportion to its length.
    """
    start = time.perf_counter()
    try:
        results: list = list(dnsmos.score_batch(clips)) if clips else []
    except Exception:
        results = []
        for clip in clips:
            try:
                results.append(dnsmos.score_batch([clip])[0])
            except Exception as exc:
                results.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(1)}")
    sizes = np.array([c.size for c in clips], dtype=float)
    return results, (time.perf_counter() - start) * sizes / max(sizes.sum(), 1.0)


def shift_samples(shift_ms: float) -> int:
    """Samples dropped from the start of a clip for a framing shift of ``shift_ms``."""
    return int(round(shift_ms * TARGET_SR / 1000.0))


def framed(audio: np.ndarray, shifts_ms: Sequence[float]) -> list[np.ndarray]:
    """``audio`` at every framing: for each shift ``s``, the clip with its first ``s`` ms
    dropped, so that DNSMOS's windows land elsewhere."""
    return [audio[shift_samples(s):] for s in shifts_ms]


@dataclass(frozen=True)
class FramedScores:
    """One clip's DNSMOS over its framings: ``fields`` (the unshifted framing's or the mean over
    framings, by :data:`SCORE_FIELDS`) and the OVR of every framing, in shift order."""

    fields: dict[str, float]
    ovr_framings: list[float]


def score_framings(dnsmos: Any, clips: Sequence[np.ndarray], shifts_ms: Sequence[float] = (0.0,),
                   score: str = "first") -> tuple[list, np.ndarray]:
    """DNSMOS of every clip at every framing (:func:`framed`), all in one batch.

    ``score`` is ``first`` (the fields of the first framing) or ``mean`` (their mean over
    framings). Returns per clip a :class:`FramedScores` or the error text of a framing that
    could not be scored, and each clip's share of the wall time (all its framings).
    """
    count = len(shifts_ms)
    if count < 1 or score not in ("first", "mean"):
        raise ValueError(f"need at least one framing and score first|mean, got {shifts_ms}, "
                         f"{score!r}")
    results, shares = score_clips(dnsmos, [f for clip in clips for f in framed(clip, shifts_ms)])
    out: list = []
    for i in range(len(clips)):
        parts = results[i * count:(i + 1) * count]
        failed = [r for r in parts if isinstance(r, str)]
        if failed:
            out.append(failed[0])
            continue
        values = np.array([[float(getattr(r, f)) for f in SCORE_FIELDS] for r in parts])
        chosen = values.mean(axis=0) if score == "mean" else values[0]
        out.append(FramedScores(dict(zip(SCORE_FIELDS, chosen.tolist(), strict=True)),
                                values[:, SCORE_FIELDS.index("ovr")].tolist()))
    seconds = np.asarray(shares, float).reshape(len(clips), count).sum(axis=1)
    return out, seconds


class Score:
    """Actor: DNSMOS of the noisy input and of every ``out__<system>`` column.

    Adds ``<system>__<field>`` columns; drops the audio unless ``keep_audio``.
    """

    def __init__(self, systems: Sequence[str], personalized: bool = False,
                 keep_audio: bool = False, use_gpu: bool = False,
                 max_windows_per_run: int = 8, share_windows: bool = True) -> None:
        self.dnsmos = worker_dnsmos(use_gpu, personalized=personalized,
                                    max_windows_per_run=max_windows_per_run,
                                    share_windows=share_windows)
        self.systems = list(systems)
        self.keep_audio = keep_audio
        self.node = node_id()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        out = batch.copy()
        columns = {NOISY: "audio", **{s: output_column(s) for s in self.systems}}
        jobs: list[tuple[str, int]] = []
        clips: list[np.ndarray] = []
        for system, column in columns.items():
            for f in SCORE_FIELDS:
                out[f"{system}__{f}"] = np.nan
            out[f"{system}__score_error"] = None
            for i, data in enumerate(batch[column]):
                if data:
                    jobs.append((system, i))
                    clips.append(from_bytes(data))
        results, shares = score_clips(self.dnsmos, clips)
        for system in columns:
            out[f"{system}__dnsmos_s"] = np.nan
        for (system, i), result, share in zip(jobs, results, shares, strict=True):
            out.at[out.index[i], f"{system}__dnsmos_s"] = share
            if isinstance(result, str):
                out.at[out.index[i], f"{system}__score_error"] = result
                continue
            for f in SCORE_FIELDS:
                out.at[out.index[i], f"{system}__{f}"] = float(getattr(result, f))
        out["score_node"] = self.node
        if not self.keep_audio:
            out = out.drop(columns=[c for c in columns.values()])
        return out
