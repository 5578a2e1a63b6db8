"""Labels derived from scores: complete/incomplete clips, label rejects, generations of parts."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

from serec.label.aggregate import NO_SCORE_REASON, bucket_of, derive_frame
from serec.label.tables import read_labels
from serec.runs import LABEL_SUMMARY, LABELS, RunDir, generation_prefix, remove_parts


def scores_frame(rows: list[tuple[str, str, float, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["clip_id", "system", "ovr", "error"])


def test_derive_frame_marks_missing_systems_and_rejects_unscored_clips():
    clips = pd.DataFrame({"clip_id": ["a", "b", "c"], "path": ["a.wav", "b.wav", "c.wav"],
                          "speaker_id": ["s1", "s2", "s3"]})
    scores = scores_frame([
        ("a", "noisy", 2.5, None), ("a", "gate", 3.1, None), ("a", "dfn", 3.4, None),
        ("b", "noisy", 2.4, None), ("b", "gate", 2.9, None),
        ("b", "dfn", float("nan"), "worker_died: ..."),
        ("c", "noisy", 2.0, None), ("c", "gate", float("nan"), "RuntimeError: x"),
        ("a", "removed", 4.9, None),  # a system no longer in the config: ignored
    ])
    labels, rejects = derive_frame(clips, scores, ["noisy", "gate", "dfn"], ["gate", "dfn"],
                                   fail_threshold=2.0)
    assert list(labels["clip_id"]) == ["a", "b"]
    assert list(labels["label"]) == ["dfn", "gate"]
    assert list(labels["complete"]) == [True, False]
    assert list(labels["missing_systems"]) == ["", "dfn"]
    assert "removed_ovr" not in labels and math.isnan(labels["dfn_ovr"].iloc[1])
    assert labels["speaker_id"].tolist() == ["s1", "s2"]
    assert rejects.to_dict("records") == [dict(clip_id="c", path="c.wav", stage="label",
                                               reason=NO_SCORE_REASON)]


def test_bucket_of_is_stable_and_in_range():
    ids = pd.Series([f"clip{i}" for i in range(50)])
    buckets = bucket_of(ids, 4)
    assert set(buckets) <= {0, 1, 2, 3} and len(set(buckets)) > 1
    assert (bucket_of(ids, 4) == buckets).all()


def test_new_generation_replaces_old_parts_and_read_labels_filters(tmp_path):
    run = RunDir.of(tmp_path)
    old = pd.DataFrame({"clip_id": ["a", "b"], "label": ["x", "x"], "complete": [True, True]})
    run.append_part(LABELS, pa.Table.from_pandas(old, preserve_index=False))
    prefix = generation_prefix()
    new = pd.DataFrame({"clip_id": ["a", "b"], "label": ["y", "y"], "complete": [True, False]})
    run.append_part(LABELS, pa.Table.from_pandas(new, preserve_index=False), prefix=prefix)
    assert list(run.read_pandas(LABELS)["label"]) == ["y", "y"]  # new generation reads last
    assert remove_parts(run, LABELS, prefix) == 1
    assert len(run.list_parts(LABELS)) == 1
    assert list(read_labels(run)["clip_id"]) == ["a"]
    assert len(read_labels(run, include_incomplete=True)) == 2
    run.write_json(LABEL_SUMMARY, {"include_incomplete": True})
    assert len(read_labels(run)) == 2  # follows label.include_incomplete of the label run
