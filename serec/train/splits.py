"""One grouped, stratified split per run: a held-out test set plus k validation folds.

Clips that share a speaker (or the ``group`` column) or a source utterance are joined into
one connected component (union-find); components never straddle two folds or train and test,
so no voice and no sentence leaks from training into validation. Every stage reads this one
split, so fold k of the gatekeeper and of the expert validate on the same clips.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.model_selection import StratifiedGroupKFold

from serec.label.tables import read_labels
from serec.runs import SPLITS, RunDir

TEST_FOLD = -1
LINK_COLUMNS = ("speaker_id", "source_id")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def connected_groups(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """Component id per row: rows sharing a non-null value in any of ``columns`` are joined."""
    uf = _UnionFind(len(frame))
    for column in columns:
        if column not in frame:
            continue
        first_row: dict[object, int] = {}
        for row, value in enumerate(frame[column].to_numpy()):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if value in first_row:
                uf.union(first_row[value], row)
            else:
                first_row[value] = row
    roots = np.array([uf.find(i) for i in range(len(frame))])
    return np.unique(roots, return_inverse=True)[1]


def assign_splits(frame: pd.DataFrame, folds: int = 5, test_fraction: float = 0.15,
                  group: str = "speaker_id", seed: int = 0) -> pd.DataFrame:
    """``clip_id, fold, is_test`` for a labels frame (needs ``clip_id`` and ``label``)."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    if group not in frame:
        raise ValueError(f"group column '{group}' is not in the labels table")
    frame = frame.sort_values("clip_id").reset_index(drop=True)
    groups = connected_groups(frame, tuple(dict.fromkeys([group, *LINK_COLUMNS])))
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    test_splits = max(2, int(round(1.0 / test_fraction))) if test_fraction > 0 else 0
    needed = folds + (1 if test_fraction > 0 else 0)
    if n_groups < max(needed, test_splits):
        raise ValueError(
            f"only {n_groups} independent speaker/source groups among {len(frame)} labeled "
            f"clips; {folds} folds{' plus a test set' if test_fraction > 0 else ''} need at "
            f"least {max(needed, test_splits)} (fewer folds, test_fraction=0, or more speakers)")
    labels = frame["label"].astype(str).to_numpy()
    fold = np.full(len(frame), TEST_FOLD, dtype=np.int64)
    pool = np.arange(len(frame))
    with warnings.catch_warnings():
        # sklearn warns when a rare class has fewer members than splits; the split is still valid
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if test_splits:
            splitter = StratifiedGroupKFold(n_splits=test_splits, shuffle=True, random_state=seed)
            pool, _ = next(splitter.split(pool, labels, groups))
        if len(np.unique(groups[pool])) < folds:
            raise ValueError(f"after holding out the test set only "
                             f"{len(np.unique(groups[pool]))} groups remain for {folds} folds")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (_, val) in enumerate(splitter.split(pool, labels[pool], groups[pool])):
            fold[pool[val]] = k
    return pd.DataFrame({"clip_id": frame["clip_id"].astype(str), "fold": fold,
                         "is_test": fold == TEST_FOLD})


def make_splits(run: RunDir, folds: int = 5, test_fraction: float = 0.15,
                group: str = "speaker_id", seed: int = 0) -> pd.DataFrame:
    """Split the run's labeled clips and write ``splits.parquet``; returns the table."""
    splits = assign_splits(read_labels(run), folds, test_fraction, group, seed)
    run.write_table(SPLITS, pa.Table.from_pandas(splits, preserve_index=False))
    return splits


def labeled_splits(run: RunDir) -> pd.DataFrame:
    """The labels table joined with the split, sorted by clip_id (labels parts arrive in
    streaming order); clips without a split row are dropped."""
    if not run.exists(SPLITS):
        raise FileNotFoundError(f"{run.path(SPLITS)} does not exist; run `serec split` first")
    splits = run.read_pandas(SPLITS)
    frame = read_labels(run).merge(splits, on="clip_id", how="inner")
    return frame.sort_values("clip_id", kind="stable").reset_index(drop=True)


def fold_frames(run: RunDir, fold: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, validation)`` label rows of ``fold``; the test set is in neither."""
    frame = labeled_splits(run)
    n_folds = int(frame.loc[~frame["is_test"], "fold"].max()) + 1
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold {fold} does not exist; the split has folds 0..{n_folds - 1}")
    pool = frame[~frame["is_test"]]
    return (pool[pool["fold"] != fold].reset_index(drop=True),
            pool[pool["fold"] == fold].reset_index(drop=True))


def test_frame(run: RunDir) -> pd.DataFrame:
    """Label rows of the held-out test set."""
    frame = labeled_splits(run)
    return frame[frame["is_test"]].reset_index(drop=True)


test_frame.__test__ = False  # not a pytest test, despite the name
