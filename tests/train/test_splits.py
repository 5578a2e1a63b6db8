"""Grouped stratified split: no speaker or source in two folds, classes spread evenly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serec.runs import LABELS, MANIFEST, SPLITS, RunDir
from serec.train.splits import (
    DEFAULT_GROUP,
    TEST_FOLD,
    SplitError,
    assign_splits,
    check_manifest_can_split,
    connected_groups,
    feasibility_problem,
    fold_frames,
    groups_needed,
    make_splits,
    parse_group,
    split_summary,
    test_frame,
)

pytestmark = pytest.mark.timeout(60)


def labels_frame(n_speakers: int = 80, clips: int = 5, seed: int = 0) -> pd.DataFrame:
    """Speakers with a few clips each; sources shared within a speaker and across pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_speakers):
        for c in range(clips):
            source = f"src{s}_{c // 2}"
            if s % 10 == 1 and c == 0:  # the same sentence read by speakers s-1 and s
                source = f"src{s - 1}_0"
            rows.append({"clip_id": f"c{s:03d}_{c}", "speaker_id": f"spk{s}",
                         "source_id": source, "noise_id": f"n{s}_{c}",
                         "label": rng.choice(["a", "b", "c", "all_failed"],
                                             p=[0.5, 0.25, 0.15, 0.1])})
    return pd.DataFrame(rows)


def test_connected_groups_join_speakers_and_sources():
    frame = pd.DataFrame({"speaker_id": ["s1", "s1", "s2", "s3", None],
                          "source_id": ["u1", "u2", "u2", "u3", "u3"]})
    groups = connected_groups(frame, ["speaker_id", "source_id"])
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4] != groups[0]


def test_no_group_crosses_folds_or_test():
    frame = labels_frame()
    splits = assign_splits(frame, folds=5, test_fraction=0.15, seed=3).merge(frame)
    assert len(splits) == len(frame) and splits["clip_id"].is_unique
    assert set(splits["fold"]) == {TEST_FOLD, 0, 1, 2, 3, 4}
    for column in ("speaker_id", "source_id"):
        assert (splits.groupby(column)["fold"].nunique() == 1).all(), column
    assert (splits["is_test"] == (splits["fold"] == TEST_FOLD)).all()
    test_share = splits["is_test"].mean()
    assert 0.08 < test_share < 0.25


def test_stratification_roughly_holds():
    frame = labels_frame(n_speakers=120)
    splits = assign_splits(frame, folds=5, test_fraction=0.15, seed=0).merge(frame)
    overall = splits["label"].value_counts(normalize=True)
    for _, part in splits.groupby("fold"):
        share = part["label"].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.1


def test_same_seed_same_split_and_seed_matters():
    frame = labels_frame()
    a = assign_splits(frame, seed=1)
    pd.testing.assert_frame_equal(a, assign_splits(frame.sample(frac=1, random_state=2), seed=1))
    assert not a["fold"].equals(assign_splits(frame, seed=2)["fold"])


def test_too_few_groups_is_a_clear_error():
    frame = labels_frame(n_speakers=5)
    with pytest.raises(SplitError, match=r"only \d independent groups among 25 clips for "
                                         "--group speaker_id,source_id,noise_id"):
        assign_splits(frame, folds=5, test_fraction=0.15)
    splits = assign_splits(frame, folds=4, test_fraction=0.0)
    assert not splits["is_test"].any() and set(splits["fold"]) == {0, 1, 2, 3}


def test_group_takes_exactly_the_columns_asked_for():
    frame = labels_frame(n_speakers=3, clips=10)
    assert parse_group(None) == DEFAULT_GROUP
    assert parse_group("source_id, speaker_id") == ("source_id", "speaker_id")
    assert parse_group("none") == parse_group("") == ()
    by_source = assign_splits(frame, folds=3, test_fraction=0.2, group="source_id").merge(frame)
    assert (by_source.groupby("source_id")["fold"].nunique() == 1).all()
    assert by_source.groupby("speaker_id")["fold"].nunique().max() > 1  # speakers not linked
    per_clip = assign_splits(frame, folds=4, test_fraction=0.0, group="none")
    assert set(per_clip["fold"]) == {0, 1, 2, 3}
    with pytest.raises(SplitError, match="'speaker'.*available: speaker_id, source_id"):
        assign_splits(frame, group="speaker")


def test_a_shared_noise_recording_never_straddles_parts():
    frame = labels_frame(n_speakers=40, clips=2).assign(
        noise_id=lambda f: [f"noise{i // 6}" for i in range(len(f))])
    splits = assign_splits(frame, folds=3, test_fraction=0.15).merge(frame)
    assert (splits.groupby("noise_id")["fold"].nunique() == 1).all()


def test_infeasible_split_says_what_would_work():
    frame = labels_frame(n_speakers=2, clips=20)  # two speakers who share a sentence
    problem = feasibility_problem(frame, 3, 0.15, DEFAULT_GROUP)
    assert problem.startswith("only 1 independent groups among 40 clips for --group "
                              "speaker_id,source_id,noise_id; 3 folds plus a test set need at "
                              f"least {groups_needed(3, 0.15)}")
    assert "--group source_id,noise_id (20 groups)" in problem
    assert feasibility_problem(frame, 3, 0.15, ("source_id",)) is None
    assert groups_needed(5, 0.0) == 5 and groups_needed(3, 0.15) >= 7


def test_split_summary_counts_clips_and_groups():
    frame = labels_frame(n_speakers=30)
    splits = assign_splits(frame, folds=3, test_fraction=0.2)
    summary = split_summary(frame, splits)
    assert list(summary["part"]) == ["fold 0", "fold 1", "fold 2", "test"]
    assert summary["clips"].sum() == len(frame)
    assert summary["groups"].sum() == connected_groups(frame, DEFAULT_GROUP).max() + 1


def test_make_splits_takes_group_columns_from_the_manifest(tmp_path):
    run = RunDir.of(tmp_path / "run")
    frame = labels_frame(n_speakers=20)
    run.append_part(LABELS, pa.Table.from_pandas(frame[["clip_id", "label"]],
                                                 preserve_index=False))
    with pytest.raises(FileNotFoundError, match="manifest"):
        check_manifest_can_split(run, 3, 0.15)
    run.write_table(MANIFEST, pa.Table.from_pandas(frame.drop(columns="label"),
                                                   preserve_index=False))
    check_manifest_can_split(run, 3, 0.15)
    with pytest.raises(SplitError, match="need at least 23; try --folds 15 or"):
        check_manifest_can_split(run, 19, 0.15)
    splits = make_splits(run, folds=3, test_fraction=0.15).merge(frame)
    assert (splits.groupby("speaker_id")["fold"].nunique() == 1).all()


def test_make_splits_and_fold_frames(tmp_path):
    run = RunDir.of(tmp_path / "run")
    frame = labels_frame(n_speakers=30)
    run.append_part(LABELS, pa.Table.from_pandas(frame, preserve_index=False))
    splits = make_splits(run, folds=3, test_fraction=0.2, seed=0)
    assert run.exists(SPLITS)
    pd.testing.assert_frame_equal(run.read_pandas(SPLITS), splits)
    test = test_frame(run)
    seen = set(test["clip_id"])
    for k in range(3):
        train, val = fold_frames(run, k)
        assert set(val["fold"]) == {k} and k not in set(train["fold"])
        assert not seen & set(train["clip_id"]) and not seen & set(val["clip_id"])
        assert not set(train["speaker_id"]) & set(val["speaker_id"])
        assert len(train) + len(val) + len(test) == len(frame)
    with pytest.raises(ValueError, match="fold 3 does not exist"):
        fold_frames(run, 3)


def test_frames_come_in_clip_id_order_whatever_the_part_order(tmp_path):
    run = RunDir.of(tmp_path / "run")
    frame = labels_frame(n_speakers=12).sort_values("clip_id", ascending=False)
    for half in (frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2:]):
        run.append_part(LABELS, pa.Table.from_pandas(half, preserve_index=False))
    make_splits(run, folds=2, test_fraction=0.25, seed=0)
    assert test_frame(run)["clip_id"].is_monotonic_increasing
    for k in range(2):
        assert all(part["clip_id"].is_monotonic_increasing for part in fold_frames(run, k))
