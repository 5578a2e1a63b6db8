"""Labels derived from ``scores/``: Ray tasks, one per hash bucket of clips.

Each task reads the scores of its clips (for the systems in the config only), applies the label
rule, and writes a new generation of ``labels/`` and ``rejects/label/`` parts; the driver then
removes the older generations. So adding an enhancer to a labeled run, or removing one,
re-derives every label from what is scored, and a clip that lacks a system's score is labeled
from the others with ``complete=False`` and the system in ``missing_systems``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import ray

from serec.config import SerecConfig
from serec.data.manifest import METADATA_COLUMNS, read_manifest
from serec.label.rule import decide_label, noise_floor
from serec.label.stages import NOISY, as_float
from serec.label.tables import (
    LABEL_REJECTS,
    decode_rejected,
    labels_table,
    read_scores,
    reject_table,
)
from serec.runs import LABELS, RunDir, generation_prefix, remove_parts

NO_SCORE_REASON = "no_system_scored: every enhancer or DNSMOS call failed"
CLIPS_PER_TASK = 20_000
LABEL_STAGE = "label"


def bucket_of(clip_ids: pd.Series, buckets: int) -> np.ndarray:
    """Stable bucket per clip id (the same on every node and in every run)."""
    hashes = pd.util.hash_pandas_object(clip_ids.astype(str), index=False).to_numpy()
    return (hashes % np.uint64(buckets)).astype(np.int64)


def real_time_factors(scores: pd.DataFrame) -> dict[str, float]:
    """Each system's measured compute: enhancement seconds per second of audio, over the run."""
    timed = scores[scores["error"].isna()]
    sums = timed.groupby("system")[["seconds", "audio_s"]].sum()
    return {str(s): float(r["seconds"] / r["audio_s"]) if r["audio_s"] > 0 else math.nan
            for s, r in sums.iterrows()}


def derive_frame(clips: pd.DataFrame, scores: pd.DataFrame, systems: Sequence[str],
                 candidates: Sequence[str], fail_threshold: float,
                 cheapest_within: float | None = None,
                 cost_by_system: dict[str, float] | None = None,
                 tie_margin: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(labels, rejects)`` for the manifest rows ``clips`` from their ``scores``.

    A system counts as scored for a clip when it has a score row without an error and with a
    finite OVR; ``missing_systems`` lists the others (comma-joined, in config order). With
    ``cheapest_within`` the label is the cheapest system (by ``cost_by_system``) within that
    OVR margin of the best (see :func:`serec.label.rule.decide_label`). ``noise_floor`` is the
    SD of the best output's OVR over its framings (``ovr_framings``; NaN for one framing or
    scores written before framings), ``tied_systems`` the candidates within
    ``max(noise_floor, tie_margin)`` of the best (comma-joined, config order).
    """
    usable = scores[scores["system"].isin(systems) & scores["error"].isna()
                    & np.isfinite(pd.to_numeric(scores["ovr"], errors="coerce").astype(float))]
    ovr = usable.pivot_table(index="clip_id", columns="system", values="ovr", aggfunc="last")
    ovr = ovr.reindex(index=clips["clip_id"], columns=list(systems))
    keys = zip(usable["clip_id"], usable["system"], strict=True)
    framings = (dict(zip(keys, usable["ovr_framings"], strict=True))
                if "ovr_framings" in usable else {})
    meta = [c for c in ("path", "clean_path", "duration_s", *METADATA_COLUMNS) if c in clips]
    labels, rejects = [], []
    for (_, clip), (_, row) in zip(clips.iterrows(), ovr.iterrows(), strict=True):
        by_system = {s: as_float(v) for s, v in row.items()}
        floors = {s: noise_floor(framings.get((clip["clip_id"], s))) for s in candidates}
        decision = decide_label(by_system, candidates, fail_threshold, cheapest_within,
                                cost_by_system, tie_margin, floors)
        if decision is None:
            rejects.append(dict(clip_id=clip["clip_id"], path=clip.get("path"),
                                stage=LABEL_STAGE, reason=NO_SCORE_REASON))
            continue
        missing = [s for s, v in by_system.items() if not math.isfinite(v)]
        labels.append(dict(
            clip_id=clip["clip_id"], **{c: clip[c] for c in meta},
            **{f"{s}_ovr": v for s, v in by_system.items()},
            best_system=decision.best_system, best_ovr=decision.best_ovr,
            second_ovr=decision.second_ovr, margin=decision.margin, label=decision.label,
            complete=not missing, missing_systems=",".join(missing),
            noise_floor=decision.noise_floor, tied_systems=",".join(decision.tied)))
    return pd.DataFrame(labels), pd.DataFrame(rejects, columns=["clip_id", "path", "stage",
                                                               "reason"])


def derive_bucket(run_root: str, bucket: int, buckets: int, systems: list[str],
                  candidates: list[str], fail_threshold: float, rows_per_part: int,
                  prefix: str, cheapest_within: float | None = None,
                  tie_margin: float = 0.0) -> dict[str, int]:
    """Ray task: labels of one bucket of manifest clips, written as ``prefix`` parts."""
    run = RunDir(run_root)
    manifest = read_manifest(run)
    clips = manifest[bucket_of(manifest["clip_id"], buckets) == bucket]
    clips = clips[~clips["clip_id"].isin(decode_rejected(run))].reset_index(drop=True)
    scores = read_scores(run)
    costs = real_time_factors(scores) if cheapest_within is not None else None
    scores = scores[scores["clip_id"].isin(set(clips["clip_id"]))]
    labels, rejects = derive_frame(clips, scores, systems, candidates, fail_threshold,
                                   cheapest_within, costs, tie_margin)
    step = max(1, rows_per_part)
    for start in range(0, len(labels), step):
        run.append_part(LABELS, labels_table(labels.iloc[start:start + step]), prefix=prefix)
    if len(rejects):
        run.append_part(LABEL_REJECTS, reject_table(rejects), prefix=prefix)
    complete = int(labels["complete"].sum()) if len(labels) else 0
    return dict(labeled=len(labels), complete=complete, incomplete=len(labels) - complete,
                rejected=len(rejects))


def derive_labels(run: RunDir, config: SerecConfig) -> dict[str, int]:
    """Rewrite ``labels/`` and ``rejects/label/`` from ``scores/`` on the cluster; counts."""
    clips = len(read_manifest(run))
    buckets = max(1, math.ceil(clips / CLIPS_PER_TASK))
    prefix = generation_prefix()
    task = ray.remote(derive_bucket).options(max_retries=1,
                                             **config.label.decode.remote_args())
    refs = [task.remote(run.root, bucket, buckets, [NOISY, *config.enhancers],
                        config.candidates, config.label.fail_threshold,
                        config.label.rows_per_part, prefix, config.label.cheapest_within,
                        config.label.tie_margin)
            for bucket in range(buckets)]
    counts: dict[str, Any] = dict(labeled=0, complete=0, incomplete=0, rejected=0)
    for result in ray.get(refs):
        for key, value in result.items():
            counts[key] += value
    remove_parts(run, LABELS, prefix)
    remove_parts(run, LABEL_REJECTS, prefix)
    return counts

