"""Long-format labeling stages: each batch row is one (clip, system) pair.

Columns: ``clip_id, path, system, audio`` (float32 bytes: the decoded clip for ``noisy``, the
enhancer's output otherwise), ``audio_s, seconds, node_id, error, reject_reason``. A clip
rejected at decode travels with empty audio on every branch; the ``noisy`` one writes its
reject row.
A ``noisy`` pair may also carry :data:`AS_SYSTEMS`: the systems (``noisy`` and identity
systems such as ``passthrough``) whose score rows its one DNSMOS result becomes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from serec.audio import MAX_SEGMENT_SECONDS, MIN_SECONDS, wav_bytes
from serec.label.stages import (
    NOISY,
    SCORE_FIELDS,
    Enhance,
    FramedScores,
    decode_batch,
    from_bytes,
    output_column,
    score_framings,
)
from serec.label.tables import DECODE_STAGE, reject_table, score_table
from serec.ray_utils import node_id
from serec.runs import REJECTS, SCORES, RunDir

AS_SYSTEMS = "as_systems"  # comma-joined systems a noisy pair's scores are written for
PAIR_COLUMNS = ["clip_id", "path", "system", "audio", "audio_s", "seconds", "node_id", "error",
                "reject_reason", AS_SYSTEMS]


def pair_systems(as_systems: Any, system: str) -> list[str]:
    """The systems one scored pair stands for: its ``as_systems`` or (when empty) its
    ``system``."""
    return as_systems.split(",") if isinstance(as_systems, str) and as_systems else [system]


def expand_shared(batch: pd.DataFrame) -> pd.DataFrame:
    """One row per system each pair stands for (:func:`pair_systems`). Every copy keeps the
    pair's ``dnsmos_seconds``, the cost of scoring that system's output, and its ``seconds``
    (0: an identity does no work)."""
    if AS_SYSTEMS not in batch:
        return batch
    systems = [pair_systems(shared, system)
               for shared, system in zip(batch[AS_SYSTEMS], batch["system"], strict=True)]
    out = batch.loc[np.repeat(np.arange(len(batch)), [len(s) for s in systems])].drop(
        columns=AS_SYSTEMS).reset_index(drop=True)
    out["system"] = [system for row in systems for system in row]
    return out


def noisy_pairs(batch: pd.DataFrame) -> pd.DataFrame:
    """Decoded clips as ``noisy`` pairs (rejected clips included, to be written as rejects)."""
    out = batch[["clip_id", "path", "audio", "audio_s", "reject_reason"]].copy()
    out["system"] = NOISY
    out["seconds"] = 0.0
    out["node_id"] = None
    out["error"] = None
    out[AS_SYSTEMS] = batch[AS_SYSTEMS] if AS_SYSTEMS in batch else ""
    return out[PAIR_COLUMNS]


class EnhancePairs(Enhance):
    """Actor: one enhancer over manifest rows; returns only its own outputs as pairs.

    Rows without an ``audio`` column are decoded here (:func:`decode_batch` with ``min_seconds``
    and ``max_seconds``), so a branch needs no decode stage of its own: fewer operators and no
    decoded blocks between processes. Clips rejected at decode pass with empty audio, so that
    every pending pair is counted.
    """

    def __init__(self, name: str, entry: Mapping[str, Any], min_seconds: float = MIN_SECONDS,
                 max_seconds: float = MAX_SEGMENT_SECONDS) -> None:
        super().__init__(name, entry)
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if "audio" not in batch:
            batch = decode_batch(batch, self.min_seconds, self.max_seconds)
        done = super().__call__(batch)
        return pd.DataFrame({
            "clip_id": done["clip_id"].to_numpy(), "path": done["path"].to_numpy(),
            "system": self.name, "audio": done[output_column(self.name)].to_numpy(),
            "audio_s": done["audio_s"].to_numpy(),
            "seconds": done[f"sec__{self.name}"].to_numpy(),
            "node_id": done[f"node__{self.name}"].to_numpy(),
            "error": done[f"err__{self.name}"].to_numpy(),
            "reject_reason": done["reject_reason"].to_numpy(), AS_SYSTEMS: ""})


class ScorePairs:
    """Actor: DNSMOS of every pair's audio; optionally saves enhanced audio into the run dir.

    Every pair is scored at each framing of ``shifts_ms`` (see
    :func:`serec.label.stages.score_framings`): ``ovr_framings`` holds the OVR of each, the
    DNSMOS columns the first framing's scores or their mean over framings (``score``).
    Returns the score rows (no audio) and, for rejected clips, their reason.
    """

    def __init__(self, run_root: str, personalized: bool = False, use_gpu: bool = False,
                 max_windows_per_run: int = 8, share_windows: bool = True,
                 save_audio: bool = False,
                 shifts_ms: tuple[float, ...] = (0.0,), score: str = "first") -> None:
        from serec.quality.dnsmos import worker_dnsmos

        self.dnsmos = worker_dnsmos(use_gpu, personalized=personalized,
                                    max_windows_per_run=max_windows_per_run,
                                    share_windows=share_windows)
        self.run = RunDir(run_root)
        self.save_audio = save_audio
        self.shifts_ms = tuple(shifts_ms)
        self.score = score
        self.node = node_id()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        out = batch.drop(columns=["audio"]).reset_index(drop=True)
        audio = list(batch["audio"])
        todo = [i for i, data in enumerate(audio) if data]
        results, shares = score_framings(self.dnsmos, [from_bytes(audio[i]) for i in todo],
                                         self.shifts_ms, self.score)
        for f in SCORE_FIELDS:
            out[f] = np.nan
        out["dnsmos_seconds"] = np.nan
        errors = out["error"].astype(object).where(out["error"].notna(), None).tolist()
        framings: list[list[float] | None] = [None] * len(out)
        for i, result, share in zip(todo, results, shares, strict=True):
            out.at[i, "dnsmos_seconds"] = share
            if not isinstance(result, FramedScores):
                errors[i] = errors[i] or f"dnsmos: {result}"
                continue
            for f in SCORE_FIELDS:
                out.at[i, f] = result.fields[f]
            framings[i] = result.ovr_framings
        out["error"] = errors
        out["ovr_framings"] = framings
        out["node_id"] = out["node_id"].where(out["node_id"].notna(), self.node)
        out["dnsmos_node_id"] = self.node
        out["scored_at"] = time.time()
        if self.save_audio:
            for i in todo:
                for system in pair_systems(out.at[i, AS_SYSTEMS], out.at[i, "system"]):
                    if system != NOISY:
                        self.run.write_bytes(
                            f"audio/enhanced/{system}/{out.at[i, 'clip_id']}.wav",
                            wav_bytes(from_bytes(audio[i])))
        return out


def write_pairs(batch: pd.DataFrame, run_root: str) -> pd.DataFrame:
    """Worker-side writer: one scores part (and one rejects part) per batch; returns the count.

    Scores of a pair are on disk before its count reaches the driver, so a crash loses at most
    the pairs of unwritten batches, which a rerun computes again.
    """
    run = RunDir(run_root)
    noisy_rejects = (batch["reject_reason"].notna() & (batch["system"] == NOISY)).to_numpy()
    if noisy_rejects.any():  # one row per clip
        rows = batch.loc[noisy_rejects, ["clip_id", "path", "reject_reason"]].rename(
            columns={"reject_reason": "reason"}).assign(stage=DECODE_STAGE)
        run.append_part(REJECTS, reject_table(rows))
    batch = expand_shared(batch)
    rejected = batch["reject_reason"].notna().to_numpy()
    if (~rejected).any():
        run.append_part(SCORES, score_table(batch[~rejected]))
    return pd.DataFrame({"pairs": [len(batch)]})

