"""``serec train --stage boosted``: the features router, one gradient-boosted model per fold.

It learns every label (the majority system, the other candidates, ``all_failed``) in one
stage from the CE/KL statistics and the routing descriptors of ``features/`` (whichever of
them the table holds), on the same folds as the AST stages: fold ``k`` trains on the other
folds' pool clips and is validated on fold ``k``. Seconds per fold, so no Ray. With
``soft_labels`` a clip whose label is tied with other classes (its ``tied_systems``) trains as
one row per tied class, each weighted ``1/|tied|`` (with ``soft_temperature``, one row per
system class weighted by the softmax of its OVR; :func:`serec.train.data.soft_targets`);
validation stays on the labels, tie-aware. With ``boosted_target: ovr`` it regresses every
system's OVR instead (:class:`serec.models.boosted.OvrRegressionModel`) and routes to the
system of the highest predicted OVR.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn
from sklearn.metrics import accuracy_score, f1_score

from serec.evaluate.ensemble import BOOSTED
from serec.evaluate.metrics import tie_resolved_indices
from serec.features.descriptors import AUDIO_FEATURE_COLUMNS
from serec.models.boosted import (
    DEFAULT_OVR_TEMPERATURE,
    DEFAULT_PARAMS,
    BoostedTreesModel,
    OvrRegressionModel,
)
from serec.models.card import KIND_BOOSTED, KIND_BOOSTED_OVR, ModelCard, save_model
from serec.runs import FEATURES, MODELS, RunDir
from serec.train.data import soft_targets
from serec.train.splits import labeled_splits


def boosted_pool(run: RunDir) -> tuple[pd.DataFrame, list[str]]:
    """The labeled, non-test clips with their fold and feature columns, and those columns."""
    if not run.has_table(FEATURES):
        raise FileNotFoundError(f"{run.path(FEATURES)} has no parts; run `serec features` "
                                "first")
    features = run.read_pandas(FEATURES)
    columns = [c for c in AUDIO_FEATURE_COLUMNS if c in features]
    if not columns:
        raise ValueError("the features table holds none of the routing feature columns")
    frame = labeled_splits(run)
    frame = frame[~frame["is_test"]].merge(features[["clip_id", *columns]], on="clip_id",
                                           how="left")
    frame["label"] = frame["label"].astype(str)
    return frame.reset_index(drop=True), columns


def expand_soft(x: np.ndarray, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, w)``: one row per (clip, class with target probability > 0), weighted by it."""
    rows, classes = np.nonzero(soft > 0)
    return x[rows], classes.astype(np.int64), soft[rows, classes]


def _fold_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"val_macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
            "val_accuracy": float(accuracy_score(truth, pred))}


def ovr_systems(frame: pd.DataFrame) -> list[str]:
    """The systems an OVR router chooses among: every label that is a system with OVRs in
    the labels table (``<system>_ovr``), sorted."""
    return [c for c in sorted(frame["label"].unique()) if f"{c}_ovr" in frame]


def train_boosted(run: RunDir, folds: list[int] | None = None, seed: int = 0,
                  params: dict[str, Any] | None = None,
                  soft_labels: bool = False, soft_temperature: float = 0.0,
                  target: str = "label",
                  ovr_temperature: float = DEFAULT_OVR_TEMPERATURE) -> pd.DataFrame:
    """Fit and save ``models/boosted/fold_<k>/`` for every fold (default: all); returns and
    writes the per-fold validation metrics (``models/boosted/folds.parquet``).

    ``target`` ``label``: a classifier of the label (or of its soft targets); ``ovr``: an
    :class:`OvrRegressionModel` of every system's OVR, whose classes are the systems (no
    ``all_failed``), validated on the strict labels.
    """
    if target not in ("label", "ovr"):
        raise ValueError(f"target must be 'label' or 'ovr', got {target!r}")
    frame, columns = boosted_pool(run)
    available = sorted(int(f) for f in frame["fold"].unique())
    folds = available if folds is None else sorted(set(folds))
    unknown = sorted(set(folds) - set(available))
    if unknown:
        raise ValueError(f"fold(s) {unknown} do not exist; the split has folds {available}")
    classes = sorted(frame["label"].unique()) if target == "label" else ovr_systems(frame)
    if not classes:
        raise ValueError("the labels table has no <system>_ovr column of a labeled system")
    params = {**DEFAULT_PARAMS, "random_state": seed, **(params or {})}
    x = frame[columns].to_numpy(np.float64)
    labels = frame["label"].to_numpy(dtype=object)
    ovr = frame[[f"{c}_ovr" for c in classes]].to_numpy(np.float64) if target == "ovr" else None
    y = frame["label"].map(classes.index).to_numpy(np.int64) if target == "label" else None
    tied = soft_targets(frame, classes, BOOSTED, "") if soft_labels and y is not None else None
    soft = (soft_targets(frame, classes, BOOSTED, "", soft_temperature)
            if tied is not None and soft_temperature > 0 else tied)
    rows = []
    for fold in folds:
        train, val = (frame["fold"] != fold).to_numpy(), (frame["fold"] == fold).to_numpy()
        began = time.perf_counter()
        if ovr is not None:
            model = OvrRegressionModel(x[train], ovr[train], params, ovr_temperature)
        elif soft is None:
            model = BoostedTreesModel(x[train], y[train], len(classes), params)
        else:
            fx, fy, fw = expand_soft(x[train], soft[train])
            model = BoostedTreesModel(fx, fy, len(classes), params, fw)
        seconds = time.perf_counter() - began
        pred = model.predict_proba(x[val]).argmax(axis=1)
        if y is None:
            scores = _fold_metrics(labels[val], np.asarray(classes, dtype=object)[pred])
        else:
            truth = y[val] if tied is None else tie_resolved_indices(y[val], pred, tied[val])
            scores = _fold_metrics(truth, pred)
        summary = {"fold": fold, **scores, "target": target,
                   "soft_labels": soft_labels, "soft_temperature": soft_temperature,
                   "n_train": int(train.sum()), "n_val": int(val.sum()),
                   "train_seconds": seconds}
        train_config = {"params": params, "sklearn_version": sklearn.__version__}
        if ovr is not None:
            train_config["temperature"] = ovr_temperature
        card = ModelCard(stage=BOOSTED, classes=classes, fold=fold, features=columns,
                         kind=KIND_BOOSTED if ovr is None else KIND_BOOSTED_OVR,
                         metrics=summary, train_config=train_config)
        model_dir = run.model_dir(BOOSTED, fold)
        save_model(model, card, model_dir)
        rows.append({**summary, "model_dir": model_dir})
    table = pd.DataFrame(rows)
    table.insert(0, "stage", BOOSTED)
    run.write_table(f"{MODELS}/{BOOSTED}/folds.parquet",
                    pa.Table.from_pandas(table, preserve_index=False))
    return table
