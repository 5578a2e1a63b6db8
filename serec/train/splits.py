"""One grouped, stratified split per run: a held-out test set plus k validation folds.

Clips that share a value in any of the ``group`` columns (by default the speaker, the source
utterance and the noise recording) are joined into one connected component (union-find);
components never straddle two folds or train and test, so no voice, sentence or noise
recording leaks from training into validation. An empty ``group`` makes every clip its own
group. Every stage reads this one split, so fold k of the gatekeeper and of the expert
validate on the same clips.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import pyarrow as pa

from serec.errors import UsageError
from serec.label.tables import read_labels
from serec.runs import LABELS, MANIFEST, SPLITS, RunDir

TEST_FOLD = -1
DEFAULT_GROUP = ("speaker_id", "source_id", "noise_id")
NO_GROUP = "none"


class SplitError(UsageError):
    """The corpus cannot carry the requested folds and test set with the requested groups."""


def parse_group(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"speaker_id,source_id"`` -> columns; ``None`` -> the default; ``"none"``/``""`` -> ()."""
    if text is None:
        return DEFAULT_GROUP
    parts = text.split(",") if isinstance(text, str) else list(text)
    columns = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    return () if columns in ((), (NO_GROUP,)) else columns


def format_group(columns: Sequence[str]) -> str:
    """The ``--group`` value that selects ``columns``."""
    return ",".join(columns) or NO_GROUP


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


def connected_groups(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Component id per row: rows sharing a non-null value in any of ``columns`` are joined.

    Every column must be in ``frame``; with no columns each row is its own component.
    """
    uf = _UnionFind(len(frame))
    for column in columns:
        first_row: dict[object, int] = {}
        for row, value in enumerate(frame[column].to_numpy()):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if value in first_row:
                uf.union(first_row[value], row)
            else:
                first_row[value] = row
    roots = np.array([uf.find(i) for i in range(len(frame))], dtype=np.int64)
    return np.unique(roots, return_inverse=True)[1] if len(roots) else roots


def _test_splits(test_fraction: float) -> int:
    """How many group folds the test hold-out is drawn as one of (0: no test set)."""
    return max(2, int(round(1.0 / test_fraction))) if test_fraction > 0 else 0


def groups_needed(folds: int, test_fraction: float) -> int:
    """The fewest independent groups that can form ``folds`` folds plus the test set."""
    test_splits = _test_splits(test_fraction)
    if not test_splits:
        return folds
    # the test set takes about 1/test_splits of the groups; the rest must fill the folds
    return max(test_splits, folds + math.ceil(folds / (test_splits - 1)))


def max_folds(n_groups: int, test_fraction: float) -> int:
    """The most folds ``n_groups`` independent groups carry (below 2: none)."""
    best = 0
    for folds in range(2, n_groups + 1):
        if groups_needed(folds, test_fraction) <= n_groups:
            best = folds
    return best


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        present = [c for c in frame.columns if c not in ("clip_id", "label")]
        raise SplitError(f"--group names column(s) {missing} that the table does not have; "
                         f"available: {', '.join(present)} (or '{NO_GROUP}')")


def feasibility_problem(frame: pd.DataFrame, folds: int, test_fraction: float,
                        group: Sequence[str]) -> str | None:
    """``None`` when ``frame`` can carry the split, else a message saying what would work."""
    _check_columns(frame, group)
    n_groups = int(connected_groups(frame, group).max()) + 1 if len(frame) else 0
    needed = groups_needed(folds, test_fraction)
    if n_groups >= needed:
        return None
    test = " plus a test set" if test_fraction > 0 else ""
    message = (f"only {n_groups} independent groups among {len(frame)} clips for --group "
               f"{format_group(group)}; {folds} folds{test} need at least {needed}")
    fixes = _fewer_folds(n_groups, folds, test_fraction, "")
    linkable = [c for c in DEFAULT_GROUP if c in frame and frame[c].notna().any()]
    counts_seen = {n_groups}
    for size in range(len(linkable) - 1, -1, -1):
        for subset in combinations(linkable, size):
            if set(subset) >= set(group):
                continue  # a superset of the columns asked for never has more groups
            count = int(connected_groups(frame, subset).max()) + 1
            if count in counts_seen:
                continue  # linking more columns for the same number of groups is safer
            counts_seen.add(count)
            option = f"--group {format_group(subset)}"
            if count >= needed:
                fixes.append(f"{option} ({count} groups)")
            else:
                fixes += [f"{fix} ({count} groups)"
                          for fix in _fewer_folds(count, folds, test_fraction, option + " ")]
    fixes = list(dict.fromkeys(fixes))[:3]
    return message + ("; try " + " or ".join(fixes) if fixes else "; add clips from more "
                      "speakers/sources")


def _fewer_folds(n_groups: int, folds: int, test_fraction: float, option: str) -> list[str]:
    """Fold counts (or dropping the test set) that ``n_groups`` groups can carry."""
    most = max_folds(n_groups, test_fraction)
    if most >= 2:
        return [f"{option}--folds {min(most, folds)}"]
    if test_fraction > 0 and n_groups >= 2:
        return [f"{option}--test-fraction 0 --folds {min(n_groups, folds)}"]
    return []


def assign_splits(frame: pd.DataFrame, folds: int = 5, test_fraction: float = 0.15,
                  group: str | Sequence[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """``clip_id, fold, is_test`` for a labels frame (``clip_id``, ``label`` and the group
    columns; ``group`` as for :func:`parse_group`)."""
    if folds < 2:
        raise SplitError(f"--folds must be at least 2, got {folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise SplitError(f"--test-fraction must lie in [0, 1), got {test_fraction}")
    columns = parse_group(group)
    frame = frame.sort_values("clip_id").reset_index(drop=True)
    problem = feasibility_problem(frame, folds, test_fraction, columns)
    if problem:
        raise SplitError(problem)
    groups = connected_groups(frame, columns)
    test_splits = _test_splits(test_fraction)
    labels = frame["label"].astype(str).to_numpy()
    fold = np.full(len(frame), TEST_FOLD, dtype=np.int64)
    pool = np.arange(len(frame))
    with warnings.catch_warnings():
        # sklearn warns when a rare class has fewer members than splits; the split is still valid
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if test_splits:
            pool, _ = next(_group_folds(test_splits, seed, labels, groups))
        if len(np.unique(groups[pool])) < folds:
            raise SplitError(f"after holding out the test set only "
                             f"{len(np.unique(groups[pool]))} groups remain for {folds} folds; "
                             f"lower --folds or --test-fraction")
        for k, (_, val) in enumerate(_group_folds(folds, seed, labels[pool], groups[pool])):
            fold[pool[val]] = k
    return pd.DataFrame({"clip_id": frame["clip_id"].astype(str), "fold": fold,
                         "is_test": fold == TEST_FOLD})


def _group_folds(n_splits: int, seed: int, labels: np.ndarray, groups: np.ndarray):
    """Stratified group folds; when every class is rarer than ``n_splits`` (tiny corpora)
    stratification is impossible and the groups are shuffled into folds alone."""
    # imported here: scikit-learn takes ~0.7 s, and every CLI command imports this module's
    # grouping defaults for its parser
    from sklearn.model_selection import StratifiedGroupKFold

    if np.unique(labels, return_counts=True)[1].max() < n_splits:
        labels = np.zeros(len(labels), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return splitter.split(np.arange(len(labels)), labels, groups)


def split_summary(frame: pd.DataFrame, splits: pd.DataFrame,
                  group: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Clips and independent groups per part (``test``, ``fold 0``, ...)."""
    columns = parse_group(group)
    frame = frame.sort_values("clip_id").reset_index(drop=True)
    parts = frame[["clip_id"]].assign(group=connected_groups(frame, columns)).merge(
        splits, on="clip_id")
    parts["part"] = np.where(parts["is_test"], "test", "fold " + parts["fold"].astype(str))
    summary = parts.groupby("part").agg(clips=("clip_id", "size"), groups=("group", "nunique"))
    return summary.reset_index()


def split_frame(run: RunDir) -> pd.DataFrame:
    """The run's labels with the manifest's grouping columns filled in where labels lack them."""
    labels = read_labels(run)
    if run.exists(MANIFEST):
        manifest = run.read_pandas(MANIFEST)
        extra = [c for c in DEFAULT_GROUP if c in manifest and c not in labels]
        if extra:
            labels = labels.merge(manifest[["clip_id", *extra]], on="clip_id", how="left")
    return labels


def make_splits(run: RunDir, folds: int = 5, test_fraction: float = 0.15,
                group: str | Sequence[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """Split the run's labeled clips and write ``splits.parquet``; returns the table."""
    if not run.exists(LABELS):
        raise FileNotFoundError(f"{run.path(LABELS)} does not exist; run `serec label` first")
    splits = assign_splits(split_frame(run), folds, test_fraction, group, seed)
    run.write_table(SPLITS, pa.Table.from_pandas(splits, preserve_index=False))
    return splits


def check_manifest_can_split(run: RunDir, folds: int, test_fraction: float,
                             group: str | Sequence[str] | None = None) -> None:
    """Before labeling: raise :class:`SplitError` when the manifest's clips cannot carry the
    split (labels are unknown yet, so only group counts are checked)."""
    if folds < 2:
        raise SplitError(f"--folds must be at least 2, got {folds}")
    problem = feasibility_problem(run.read_pandas(MANIFEST), folds, test_fraction,
                                  parse_group(group))
    if problem:
        raise SplitError(problem)


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
        raise SplitError(f"fold {fold} does not exist; the split has folds 0..{n_folds - 1}")
    pool = frame[~frame["is_test"]]
    return (pool[pool["fold"] != fold].reset_index(drop=True),
            pool[pool["fold"] == fold].reset_index(drop=True))


def test_frame(run: RunDir) -> pd.DataFrame:
    """Label rows of the held-out test set."""
    frame = labeled_splits(run)
    return frame[frame["is_test"]].reset_index(drop=True)


test_frame.__test__ = False  # not a pytest test, despite the name
