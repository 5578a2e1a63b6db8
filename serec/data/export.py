"""Labels (with every system's DNSMOS scores) or a router's decisions out as toolkit manifests
(``serec export``): a lhotse ``CutSet`` whose cuts carry them as custom fields, and a NeMo
JSON-lines manifest with them as extra keys, so that those toolkits can train on the labels or
act on the decisions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from serec.data.manifest import MANIFEST_COLUMNS, read_manifest
from serec.data.manifests import require_lhotse
from serec.errors import UsageError
from serec.runs import LABELS, SCORES, RunDir

SCORE_METRICS = ("sig", "bak", "ovr", "p808")
# manifest columns that become the cut/segment itself rather than custom fields
_LOCATION = ("path", "offset_s", "duration_s", "speaker_id")


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python, NaN to null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def export_frame(run: RunDir) -> pd.DataFrame:
    """The run's labeled clips: manifest location columns plus every labels column."""
    if not run.has_table(LABELS):
        raise FileNotFoundError(f"{run.path(LABELS)} has no labels; run `serec label` first")
    labels = run.read_pandas(LABELS)
    manifest = read_manifest(run)[["clip_id", *_LOCATION]]
    extra = [c for c in labels.columns if c not in MANIFEST_COLUMNS or c == "clip_id"]
    frame = manifest.merge(labels[extra], on="clip_id", how="inner")
    scores = score_columns(run)
    if scores is not None:
        frame = frame.merge(scores[[c for c in scores.columns if c not in frame
                                    or c == "clip_id"]], on="clip_id", how="left")
    return frame.sort_values("clip_id").reset_index(drop=True)


def score_columns(run: RunDir) -> pd.DataFrame | None:
    """DNSMOS scores of every system as ``<system>_<metric>`` columns, one row per clip."""
    if not run.has_table(SCORES):
        return None
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    metrics = [m for m in SCORE_METRICS if m in scores]
    if not metrics or "system" not in scores:
        return None
    wide = scores.pivot(index="clip_id", columns="system", values=metrics)
    wide.columns = [f"{system}_{metric}" for metric, system in wide.columns]
    return wide.reset_index()


def decisions_frame(path: str | Path) -> pd.DataFrame:
    """``serec recommend``'s ``decisions.parquet`` as whole-file clips."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decisions table {path} does not exist; run `serec recommend`")
    frame = pd.read_parquet(path)
    if "path" not in frame:
        raise UsageError(f"{path} has no 'path' column; pass `serec recommend`'s "
                         f"decisions.parquet")
    frame = frame.assign(offset_s=0.0, duration_s=[sf.info(p).duration for p in frame["path"]],
                         speaker_id=None)
    if "clip_id" not in frame or frame["clip_id"].isna().any():
        frame["clip_id"] = [Path(p).stem for p in frame["path"]]
    return frame


def _fields(row: pd.Series) -> dict[str, Any]:
    return {k: _plain(v) for k, v in row.items() if k not in ("clip_id", *_LOCATION)}


def write_nemo(frame: pd.DataFrame, out: str | Path) -> int:
    """One NeMo manifest line per clip: ``audio_filepath``, ``offset``, ``duration``,
    ``speaker`` and every other column (``label``, scores) as extra keys."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        for _, row in frame.iterrows():
            record = {"audio_filepath": row["path"], "offset": float(row["offset_s"]),
                      "duration": _plain(row["duration_s"])}
            if _plain(row["speaker_id"]) is not None:
                record["speaker"] = row["speaker_id"]
            record.update(_fields(row))
            f.write(json.dumps(record) + "\n")
    return len(frame)


def write_lhotse(frame: pd.DataFrame, out: str | Path) -> int:
    """A lhotse ``CutSet`` (``.jsonl`` or ``.jsonl.gz``): one ``MonoCut`` per clip with one
    supervision (its speaker); ``label`` and scores in the cut's ``custom`` fields."""
    lhotse = require_lhotse()
    recordings: dict[str, Any] = {}
    cuts = []
    for _, row in frame.iterrows():
        path = row["path"]
        if path not in recordings:
            recordings[path] = lhotse.Recording.from_file(path, recording_id=Path(path).stem
                                                          + "-" + str(len(recordings)))
        recording = recordings[path]
        start, duration = float(row["offset_s"]), _plain(row["duration_s"])
        if duration is None:
            duration = recording.duration - start
        speaker = _plain(row["speaker_id"])
        # a cut's supervisions start relative to the cut
        supervision = lhotse.SupervisionSegment(id=row["clip_id"], recording_id=recording.id,
                                                start=0.0, duration=duration, channel=0,
                                                speaker=speaker)
        cuts.append(lhotse.MonoCut(id=row["clip_id"], start=start, duration=duration,
                                   channel=0, recording=recording, supervisions=[supervision],
                                   custom=_fields(row)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lhotse.CutSet.from_cuts(cuts).to_file(out)
    return len(cuts)
