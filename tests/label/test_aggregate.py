"""Labels derived from scores: complete/incomplete clips, label rejects, generations of parts."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pytest

from serec.label.aggregate import NO_SCORE_REASON, bucket_of, derive_frame
from serec.label.tables import labels_table, read_labels
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


def test_derive_frame_measures_the_noise_floor_and_the_tied_systems():
    """Floor = SD of the best output's OVR over framings; ties within max(floor, tie_margin)."""
    clips = pd.DataFrame({"clip_id": ["a", "b", "old"]})
    scores = pd.DataFrame([
        # a: dfn best (3.40), floor SD(3.30, 3.50) = 0.1414; gate at 3.30 is within it
        ("a", "noisy", 2.5, [2.5, 2.6]), ("a", "gate", 3.30, [3.3, 3.3]),
        ("a", "dfn", 3.40, [3.3, 3.5]), ("a", "rnn", 3.20, [3.2, 3.2]),
        # b: dfn best, floor SD(3.40, 3.42) = 0.0141; gate 0.1 below: not tied
        ("b", "noisy", 2.5, [2.5, 2.5]), ("b", "gate", 3.30, [3.3, 3.3]),
        ("b", "dfn", 3.40, [3.40, 3.42]), ("b", "rnn", 1.0, [1.0, 1.0]),
        # old: scores from before framings (no list): NaN floor, the best alone
        ("old", "noisy", 2.5, None), ("old", "gate", 3.0, None), ("old", "dfn", 2.99, None),
        ("old", "rnn", 2.0, None),
    ], columns=["clip_id", "system", "ovr", "ovr_framings"]).assign(error=None)
    systems, candidates = ["noisy", "gate", "dfn", "rnn"], ["gate", "dfn", "rnn"]
    labels, _ = derive_frame(clips, scores, systems, candidates, fail_threshold=2.0)
    by_clip = labels.set_index("clip_id")
    assert by_clip["noise_floor"]["a"] == pytest.approx(0.2 / math.sqrt(2))
    assert by_clip["noise_floor"]["b"] == pytest.approx(0.02 / math.sqrt(2))
    assert math.isnan(by_clip["noise_floor"]["old"])
    assert by_clip["tied_systems"].to_dict() == {"a": "gate,dfn", "b": "dfn", "old": "gate"}
    assert list(by_clip["label"]) == ["dfn", "dfn", "gate"]  # the label rule is unchanged
    # a fixed tie margin: the minimum, and the rule for clips without framings
    labels, _ = derive_frame(clips, scores, systems, candidates, 2.0, tie_margin=0.05)
    assert labels.set_index("clip_id")["tied_systems"].to_dict() == {
        "a": "gate,dfn", "b": "dfn", "old": "gate,dfn"}
    labels, _ = derive_frame(clips, scores.drop(columns="ovr_framings"), systems, candidates,
                             2.0)
    assert labels["noise_floor"].isna().all()
    assert list(labels["tied_systems"]) == ["dfn", "dfn", "gate"]
    table = labels_table(labels)  # typed even when every floor is NaN
    assert table.schema.field("noise_floor").type == pa.float64()
    assert table.schema.field("tied_systems").type == pa.string()
