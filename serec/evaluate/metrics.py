"""Classification metrics of the router: reports, bootstrap intervals, bottlenecks, threshold.

Labels are class names (strings). Every function takes the class list explicitly, so that a
class missing from a small test set still counts (with F1 0) in the macro average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from serec.evaluate.ensemble import TwoStage

DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
LOW_CONFIDENCE_WIDTH = 0.1


def class_list(classes: Sequence[str], *label_arrays: Sequence[str]) -> list[str]:
    """``classes`` followed by any other label seen in ``label_arrays`` (sorted)."""
    seen = {str(v) for labels in label_arrays for v in labels}
    return list(classes) + sorted(seen - set(classes))


def _codes(values: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Index of each value in ``classes`` (-1 for a value outside them)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(v), -1) for v in values], dtype=np.int64)


def macro_f1(truth: Sequence[Any], pred: Sequence[Any],
             classes: Sequence[Any] | None = None) -> float:
    """scikit-learn's macro F1 (``zero_division=0``) over the classes that occur in ``truth``
    or ``pred``; NaN for no clips. ``classes`` (a display order that may list absent classes)
    does not change the score. Training and evaluation both use this one definition."""
    if len(truth) == 0:
        return float("nan")
    return float(f1_score(truth, pred, average="macro", zero_division=0))


def tie_resolved(truth: Sequence[str], pred: Sequence[str],
                 accepted: Sequence[Sequence[str]]) -> np.ndarray:
    """``truth`` with each clip's label replaced by the prediction where the prediction is in
    the clip's ``accepted`` labels (its tied set, :func:`serec.label.rule.accepted_labels`)."""
    truth = np.asarray(truth, dtype=object)
    pred = np.asarray(pred, dtype=object)
    if len(accepted) != len(truth):
        raise ValueError(f"{len(accepted)} tied sets for {len(truth)} clips")
    hit = np.array([str(p) in set(map(str, a)) for p, a in zip(pred, accepted, strict=True)],
                   dtype=bool)
    return np.where(hit, pred, truth).astype(object)


def tie_resolved_indices(targets: np.ndarray, pred: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """:func:`tie_resolved` on class indices: the tied classes of a clip are those its target
    distribution ``soft`` (rows as ``targets``) gives probability > 0 (training's form)."""
    pred = np.asarray(pred, np.int64)
    return np.where(np.asarray(soft)[np.arange(len(pred)), pred] > 0, pred,
                    np.asarray(targets, np.int64))


def tie_aware(truth: Sequence[str], pred: Sequence[str],
              accepted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Strict and tie-aware accuracy and macro F1: a prediction inside the clip's tied set
    counts as right (for F1 the truth becomes the prediction there, then :func:`macro_f1`).
    NaN for no clips; ``n_tied`` counts clips whose tied set holds more than one label."""
    truth = np.asarray(truth, dtype=object)
    pred = np.asarray(pred, dtype=object)
    resolved = tie_resolved(truth, pred, accepted)
    n = len(truth)
    return {"n": int(n), "n_tied": int(sum(len(a) > 1 for a in accepted)),
            "accuracy": float(np.mean(truth == pred)) if n else float("nan"),
            "macro_f1": macro_f1(truth, pred),
            "tie_aware_accuracy": float(np.mean(resolved == pred)) if n else float("nan"),
            "tie_aware_macro_f1": macro_f1(resolved, pred)}


def class_report(truth: Sequence[str], pred: Sequence[str],
                 classes: Sequence[str]) -> dict[str, Any]:
    """Per-class precision/recall/F1/support, macro F1, accuracy and the confusion matrix.

    Confusion rows are true classes, columns predicted classes, both in ``classes`` order.
    An empty group gives ``n`` 0 and NaN scores (reported as "no clips").
    """
    truth = np.asarray(truth, dtype=object)
    pred = np.asarray(pred, dtype=object)
    classes = list(classes)
    if len(truth) == 0:  # an empty group (e.g. no test clip reached the expert)
        return {"classes": classes, "per_class": [
                    {"class": c, "precision": float("nan"), "recall": float("nan"),
                     "f1": float("nan"), "support": 0} for c in classes],
                "n": 0, "macro_f1": float("nan"), "accuracy": float("nan"),
                "confusion": np.zeros((len(classes), len(classes)), int).tolist()}
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, pred, labels=classes, zero_division=0)
    per_class = [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f),
                  "support": int(s)}
                 for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)]
    matrix = confusion_matrix(truth, pred, labels=classes)
    return {"classes": classes, "per_class": per_class, "n": int(len(truth)),
            "macro_f1": macro_f1(truth, pred, classes),
            "accuracy": float(np.mean(truth == pred)) if len(truth) else float("nan"),
            "confusion": matrix.astype(int).tolist()}


def bootstrap_ci(truth: Sequence[str], pred: Sequence[str], classes: Sequence[str],
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of macro F1 (clips resampled with replacement; the
    classes are those of the whole sample, so a resample that misses a class scores it 0)."""
    truth = np.asarray(truth, dtype=object)
    pred = np.asarray(pred, dtype=object)
    if len(truth) == 0:
        return float("nan"), float("nan")
    seen = {str(v) for v in truth} | {str(v) for v in pred}
    classes = [c for c in class_list(classes, truth, pred) if c in seen]
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(truth), size=(n_boot, len(truth)))
    truth_codes, pred_codes = _codes(truth, classes), _codes(pred, classes)
    labels = np.arange(len(classes))
    scores = [f1_score(truth_codes[s], pred_codes[s], labels=labels, average="macro",
                       zero_division=0) for s in samples]
    tail = (1.0 - level) / 2.0
    return float(np.quantile(scores, tail)), float(np.quantile(scores, 1.0 - tail))


def mean_std(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()) if len(values) else float("nan"),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values]}


def bottleneck(truth: Sequence[str], pred: Sequence[str], routed: Sequence[bool],
               majority: str) -> dict[str, Any]:
    """Where the pipeline's errors come from.

    * gatekeeper false positive: said majority, the truth is another class;
    * gatekeeper false negative: sent to the expert, the truth is the majority;
    * expert error: sent to the expert correctly, the expert chose the wrong class.

    Counts, share of all errors and share of all clips.
    """
    truth = np.asarray(truth, dtype=object)
    pred = np.asarray(pred, dtype=object)
    routed = np.asarray(routed, dtype=bool)
    is_majority = truth == majority
    if np.any((pred == majority) == routed):
        raise ValueError("predictions are not two-stage decisions: a clip kept by the "
                         "gatekeeper must be predicted as the majority and only those")
    counts = {
        "gatekeeper_false_positive": int(np.sum(~routed & ~is_majority)),
        "gatekeeper_false_negative": int(np.sum(routed & is_majority)),
        "expert_error": int(np.sum(routed & ~is_majority & (pred != truth))),
    }
    errors = int(np.sum(pred != truth))
    n = len(truth)
    return {"n": n, "errors": errors,
            "kinds": [{"kind": kind, "count": count,
                       "share_of_errors": count / errors if errors else 0.0,
                       "share_of_clips": count / n if n else 0.0}
                      for kind, count in counts.items()]}


@dataclass(frozen=True)
class Calibration:
    """The threshold that maximises pipeline macro F1 on the data it was chosen on."""

    threshold: float
    macro_f1: float
    default_threshold: float
    default_macro_f1: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {"threshold": self.threshold, "macro_f1": self.macro_f1,
                "default_threshold": self.default_threshold,
                "default_macro_f1": self.default_macro_f1, "n": self.n,
                "chosen_on": "out-of-fold validation predictions"}


def calibrate_threshold(truth: Sequence[str], p_majority: np.ndarray, p_expert: np.ndarray,
                        two_stage: TwoStage, grid: Sequence[float] = THRESHOLD_GRID,
                        default: float = DEFAULT_THRESHOLD) -> Calibration:
    """Grid search of the gatekeeper threshold for pipeline macro F1.

    The default is always a candidate, so the chosen threshold is never worse than it on this
    data; ties go to the threshold closest to the default.
    """
    classes = class_list(two_stage.classes, truth)
    candidates = sorted({float(t) for t in grid} | {float(default)})
    scores = {t: macro_f1(truth, two_stage.decide(p_majority, p_expert, t), classes)
              for t in candidates}
    best = max(candidates, key=lambda t: (scores[t], -abs(t - default)))
    return Calibration(best, scores[best], float(default), scores[float(default)], len(truth))


def low_confidence(clip_ids: Sequence[str], p_majority: np.ndarray, threshold: float,
                   truth: Sequence[str], pred: Sequence[str],
                   width: float = LOW_CONFIDENCE_WIDTH) -> pd.DataFrame:
    """Gatekeeper decisions within ``width`` of the threshold, closest first."""
    p = np.asarray(p_majority, np.float64)
    near = np.abs(p - threshold) < width
    table = pd.DataFrame({"clip_id": np.asarray(clip_ids, dtype=object)[near],
                          "p_majority": p[near], "distance": np.abs(p - threshold)[near],
                          "truth": np.asarray(truth, dtype=object)[near],
                          "predicted": np.asarray(pred, dtype=object)[near]})
    table["correct"] = table["truth"] == table["predicted"]
    return table.sort_values("distance").reset_index(drop=True)
