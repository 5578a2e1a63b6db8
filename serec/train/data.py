"""What each stage learns from: its clips, classes, tabular columns and fold indices.

* ``full``: every label (enhancer names and ``all_failed``), the one-model baseline.
* ``gatekeeper``: binary, ``[majority, "other"]``; every clip.
* ``expert``: the labels other than the majority; only those clips. Folds come from the one
  split of the run, so fold k of the gatekeeper and of the expert validate on the same clips.
* ``features``: like ``full``, on the tabular features only.

The majority system is ``TrainConfig.majority`` or else the most frequent label among the
non-test clips. With ``TrainConfig.soft_labels`` each clip also gets a target distribution over
the stage's classes from its tied set (:func:`soft_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from serec.label.rule import accepted_labels
from serec.runs import FEATURES, MANIFEST, RunDir
from serec.train.config import TrainConfig
from serec.train.splits import labeled_splits

STAGES = ("gatekeeper", "expert", "full", "features")
AST_STAGES = ("gatekeeper", "expert", "full")
REST = "other"
DEFAULT_HYBRID = {"gatekeeper": False, "expert": True, "full": False, "features": True}
DNSMOS_COLUMNS = ("noisy_sig", "noisy_bak", "noisy_ovr", "noisy_p808")


def cekl_columns() -> tuple[str, ...]:
    from serec.features.cekl import CEKL_COLUMNS

    return tuple(CEKL_COLUMNS)


@dataclass
class StageTask:
    """The training pool (non-test clips) of one stage; ``frame`` rows are in pool order."""

    stage: str
    classes: list[str]
    majority: str
    positive_class: str | None
    feature_columns: list[str]
    frame: pd.DataFrame  # clip_id, path, offset_s, duration_s, label, target, fold + features
    soft: np.ndarray | None = None  # (N, classes) target distributions (soft_labels)

    @property
    def folds(self) -> list[int]:
        return sorted(int(f) for f in self.frame["fold"].unique())

    @property
    def targets(self) -> np.ndarray:
        return self.frame["target"].to_numpy(np.int64)

    @property
    def tabular(self) -> np.ndarray:
        """Raw (unscaled) tabular features ``(N, D)``; NaN where a clip has none."""
        return self.frame[self.feature_columns].to_numpy(np.float64).reshape(len(self.frame), -1)

    def fold_indices(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Pool positions of ``(train, validation)`` for ``fold``."""
        if fold not in self.folds:
            raise ValueError(f"fold {fold} has no {self.stage} clips; folds are {self.folds}")
        in_fold = self.frame["fold"].to_numpy() == fold
        train, val = np.flatnonzero(~in_fold), np.flatnonzero(in_fold)
        if not len(train):
            raise ValueError(f"fold {fold} leaves no {self.stage} clips to train on")
        return train, val


def majority_label(labels: pd.Series) -> str:
    """Most frequent label (ties broken by name, so the choice is repeatable)."""
    counts = labels.astype(str).value_counts()
    return str(sorted(counts[counts == counts.max()].index)[0])


def stage_classes(stage: str, labels: pd.Series, majority: str) -> list[str]:
    present = sorted(labels.astype(str).unique())
    if stage == "gatekeeper":
        return [majority, REST]
    if stage == "expert":
        rest = [c for c in present if c != majority]
        if not rest:
            raise ValueError(f"every clip is labeled '{majority}'; the expert has nothing to learn")
        return rest
    return present


def soft_targets(frame: pd.DataFrame, classes: list[str], stage: str,
                 majority: str, temperature: float = 0.0) -> np.ndarray:
    """Per clip a target distribution over ``classes`` from its tied set, or its OVRs.

    The tied set is :func:`serec.label.rule.accepted_labels` (the clip's ``tied_systems`` when
    its label is among them, else the label alone, e.g. for ``all_failed`` or a label table
    from before tied sets). The gatekeeper's target is the majority with probability 1 when
    the majority is tied (it is then a right choice), else ``other``; every other stage's is
    uniform over the tied classes it has (the label alone when it has none of them).

    ``temperature`` > 0 (OVR units): every other stage's target over the system classes it has
    is a softmax of the systems' OVRs (the label table's ``<system>_ovr``) divided by it, for
    clips labeled with a system; an ``all_failed`` clip, or a clip with no OVR of those
    classes, keeps the tied-set target.
    """
    tied = frame["tied_systems"] if "tied_systems" in frame else [None] * len(frame)
    scored = [c for c in classes if f"{c}_ovr" in frame] if temperature > 0 else []
    ovr = frame[[f"{c}_ovr" for c in scored]].to_numpy(np.float64) if scored else None
    columns_of = [classes.index(c) for c in scored]
    out = np.zeros((len(frame), len(classes)))
    for i, (label, tied_systems) in enumerate(zip(frame["label"].astype(str), tied,
                                                  strict=True)):
        accepted = accepted_labels(label, tied_systems)
        if stage == "gatekeeper":
            out[i, classes.index(majority if majority in accepted else REST)] = 1.0
            continue
        if ovr is not None and label in scored and np.isfinite(ovr[i]).any():
            logits = np.where(np.isfinite(ovr[i]), ovr[i], -np.inf)
            weights = np.exp((logits - logits.max()) / temperature)
            out[i, columns_of] = weights / weights.sum()
            continue
        columns = [classes.index(c) for c in accepted if c in classes] \
            or [classes.index(label)]
        out[i, columns] = 1.0 / len(columns)
    return out


def stage_task(run: RunDir, stage: str, config: TrainConfig) -> StageTask:
    """Read labels, split, manifest windows and features into the stage's training pool."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}'; expected one of {STAGES}")
    frame = labeled_splits(run)
    frame = frame[~frame["is_test"]].reset_index(drop=True)
    if frame.empty:
        raise ValueError("the split holds no training clips")
    majority = config.majority or majority_label(frame["label"])
    if majority not in set(frame["label"].astype(str)):
        raise ValueError(f"majority '{majority}' is not a label of this run")
    classes = stage_classes(stage, frame["label"], majority)
    labels = frame["label"].astype(str)
    if stage == "gatekeeper":
        frame["target"] = (labels != majority).astype(np.int64)
    else:
        frame = frame[labels.isin(classes)].reset_index(drop=True)
        frame["target"] = frame["label"].astype(str).map(classes.index).astype(np.int64)
    frame = _with_windows(run, frame)
    hybrid = DEFAULT_HYBRID[stage] if config.hybrid is None or stage == "features" \
        else config.hybrid
    columns: list[str] = []
    if hybrid:
        frame, columns = _with_features(run, frame, config.use_dnsmos)
    soft = soft_targets(frame, classes, stage, majority) if config.soft_labels else None
    return StageTask(stage, classes, majority, majority if stage == "gatekeeper" else None,
                     columns, frame, soft)


def _with_windows(run: RunDir, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the manifest's ``offset_s``/``duration_s`` (clips may be windows of long files)."""
    frame = frame.drop(columns=[c for c in ("offset_s", "duration_s") if c in frame])
    if run.exists(MANIFEST):
        manifest = run.read_pandas(MANIFEST)
        keep = ["clip_id", *[c for c in ("offset_s", "duration_s") if c in manifest]]
        frame = frame.merge(manifest[keep], on="clip_id", how="left")
    for column in ("offset_s", "duration_s"):
        if column not in frame:
            frame[column] = np.nan
    return frame


def _with_features(run: RunDir, frame: pd.DataFrame,
                   use_dnsmos: bool) -> tuple[pd.DataFrame, list[str]]:
    if not run.has_table(FEATURES):
        raise FileNotFoundError(f"{run.path(FEATURES)} has no parts; run `serec features` first "
                                "(or train without hybrid features)")
    features = run.read_pandas(FEATURES)
    columns = [c for c in cekl_columns() if c in features]
    if use_dnsmos:
        missing = [c for c in DNSMOS_COLUMNS if c not in features]
        if missing:
            raise ValueError(f"use_dnsmos needs the features table columns {missing}")
        columns += list(DNSMOS_COLUMNS)
    if not columns:
        raise ValueError("the features table holds none of the CE/KL columns")
    frame = frame.drop(columns=[c for c in columns if c in frame])
    return frame.merge(features[["clip_id", *columns]], on="clip_id", how="left"), columns
