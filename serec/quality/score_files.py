"""``serec score``: DNSMOS of audio files or folders, through Ray Data when there are many."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from serec.audio import MIN_SECONDS, AudioRejected
from serec.data.manifest import find_audio
from serec.label.stages import SCORE_FIELDS, add_decode, decode_clip
from serec.resources import Resources

IN_PROCESS_MAX_FILES = 8
NO_CROP = math.inf


def _score_in_process(files: list[Path], personalized: bool) -> pd.DataFrame:
    from serec.quality.dnsmos import Dnsmos

    dnsmos = Dnsmos(personalized=personalized)
    rows, clips = [], []
    for path in files:
        try:
            clips.append(decode_clip(str(path), max_seconds=NO_CROP))
            rows.append(dict(file=str(path), error=None))
        except AudioRejected as exc:
            rows.append(dict(file=str(path), error=str(exc)))
    scores = iter(dnsmos.score_batch(clips)) if clips else iter(())
    for row in rows:
        if row["error"] is None:
            row.update(next(scores).as_dict())
    return pd.DataFrame(rows)


def _score_with_ray(files: list[Path], personalized: bool, batch_size: int,
                    address: str | None) -> pd.DataFrame:
    import ray

    from serec.label.stages import Score
    from serec.ray_utils import init_ray

    init_ray(address)
    ds = ray.data.from_items([{"clip_id": str(p), "path": str(p)} for p in files],
                             override_num_blocks=max(1, math.ceil(len(files) / batch_size)))
    ds = add_decode(ds, Resources(num_cpus=0.25, batch_size=batch_size), MIN_SECONDS, NO_CROP)
    ds = ds.map_batches(Score, fn_constructor_kwargs=dict(systems=[], personalized=personalized),
                        **Resources(num_cpus=0.5, batch_size=batch_size,
                                    max_actors=2).actor_pool_args())
    out = ds.to_pandas()
    frame = pd.DataFrame({"file": out["path"], "error": out["reject_reason"]})
    for f in SCORE_FIELDS:
        frame[f] = out[f"noisy__{f}"]
    return frame.sort_values("file").reset_index(drop=True)


def score_paths(paths: Sequence[str], personalized: bool = False, batch_size: int = 8,
                address: str | None = None) -> pd.DataFrame:
    """One row per file: file, sig, bak, ovr, p808 (+ raw), error for files that were rejected."""
    files = find_audio(paths)
    if not files:
        raise FileNotFoundError(f"no audio files under {list(paths)}")
    if len(files) <= IN_PROCESS_MAX_FILES:
        frame = _score_in_process(files, personalized)
    else:
        frame = _score_with_ray(files, personalized, batch_size, address)
    for f in SCORE_FIELDS:
        if f not in frame:
            frame[f] = math.nan
    return frame[["file", *SCORE_FIELDS, "error"]]
