"""Metrics of one set of two-stage predictions: the pipeline, its gatekeeper, its expert."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serec.evaluate.ensemble import TwoStage
from serec.evaluate.metrics import (
    bootstrap_ci,
    bottleneck,
    class_list,
    class_report,
    low_confidence,
    tie_aware,
)
from serec.label.rule import ALL_FAILED

REST = "other"  # the gatekeeper's non-majority class (as in serec.train.data)


@dataclass
class PipelineView:
    """Two-stage probabilities of some clips with their true labels."""

    clip_ids: list[str]
    truth: np.ndarray        # (N,) true label names
    p_majority: np.ndarray   # (N,) gatekeeper P(majority)
    p_expert: np.ndarray     # (N, len(expert_classes)) in the TwoStage's order

    def subset(self, rows: np.ndarray) -> PipelineView:
        return PipelineView([c for c, keep in zip(self.clip_ids, rows, strict=True) if keep],
                            self.truth[rows], self.p_majority[rows], self.p_expert[rows])

    def decide(self, two_stage: TwoStage, threshold: float) -> np.ndarray:
        return two_stage.decide(self.p_majority, self.p_expert, threshold)


def gatekeeper_report(truth: np.ndarray, p_majority: np.ndarray, majority: str,
                      threshold: float) -> dict[str, Any]:
    """The gatekeeper as a binary classifier (majority vs the rest)."""
    binary_truth = np.where(np.asarray(truth, dtype=object) == majority, majority, REST)
    binary_pred = np.where(np.asarray(p_majority) >= threshold, majority, REST)
    report = class_report(binary_truth, binary_pred, [majority, REST])
    report["threshold"] = float(threshold)
    return report


def expert_report(truth: np.ndarray, pred: np.ndarray, routed: np.ndarray,
                  two_stage: TwoStage) -> dict[str, Any]:
    """The expert on the clips it should see and did see: routed, truth not the majority."""
    rows = np.asarray(routed, bool) & (np.asarray(truth, dtype=object) != two_stage.majority)
    classes = class_list(two_stage.expert_classes, truth[rows])
    return class_report(truth[rows], pred[rows], classes)


def gatekeeper_accepted(accepted: Sequence[Sequence[str]],
                        majority: str) -> list[tuple[str, ...]]:
    """Tied sets seen by the gatekeeper: the majority if it is tied, ``other`` if any other
    label is."""
    return [tuple([majority] * (majority in a) + [REST] * any(x != majority for x in a))
            for a in accepted]


def pipeline_report(view: PipelineView, two_stage: TwoStage, threshold: float,
                    with_ci: bool = False, n_boot: int = 1000,
                    accepted: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
    """Full report of the pipeline at ``threshold``: all-class report (+ bootstrap CI),
    gatekeeper, expert, bottleneck, and the low-confidence gatekeeper decisions. With
    ``accepted`` (each clip's tied set) the pipeline, gatekeeper and expert also get
    ``tie_aware`` scores (:func:`serec.evaluate.metrics.tie_aware`)."""
    pred = view.decide(two_stage, threshold)
    routed = two_stage.routed(view.p_majority, threshold)
    classes = class_list(two_stage.classes, view.truth)
    report = class_report(view.truth, pred, classes)
    report["threshold"] = float(threshold)
    if with_ci:
        low, high = bootstrap_ci(view.truth, pred, classes, n_boot=n_boot)
        report["macro_f1_ci95"] = [low, high]
    report["gatekeeper"] = gatekeeper_report(view.truth, view.p_majority, two_stage.majority,
                                             threshold)
    report["expert"] = expert_report(view.truth, pred, routed, two_stage)
    report["bottleneck"] = bottleneck(view.truth, pred, routed, two_stage.majority)
    if accepted is not None:
        majority = two_stage.majority
        report["tie_aware"] = tie_aware(view.truth, pred, accepted)
        report["gatekeeper"]["tie_aware"] = tie_aware(
            np.where(view.truth == majority, majority, REST),
            np.where(routed, REST, majority), gatekeeper_accepted(accepted, majority))
        rows = routed & (view.truth != majority)
        report["expert"]["tie_aware"] = tie_aware(
            view.truth[rows], pred[rows], [a for a, r in zip(accepted, rows, strict=True) if r])
    low = low_confidence(view.clip_ids, view.p_majority, threshold, view.truth, pred)
    report["low_confidence"] = low.to_dict("records")
    return report


def flat_report(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str],
                with_ci: bool = False, n_boot: int = 1000) -> dict[str, Any]:
    """Report of a one-stage classifier (``full``/``features``) over ``classes``."""
    classes = class_list(classes, truth)
    report = class_report(truth, pred, classes)
    if with_ci:
        report["macro_f1_ci95"] = list(bootstrap_ci(truth, pred, classes, n_boot=n_boot))
    return report


def with_fallback(labels: np.ndarray, fallback: str) -> np.ndarray:
    """The system each predicted label runs: ``all_failed`` goes to the fallback system."""
    labels = np.asarray(labels, dtype=object)
    return np.where(labels == ALL_FAILED, fallback, labels).astype(object)


def margin_accuracy(truth: np.ndarray, pred: np.ndarray, margin: np.ndarray,
                    min_margin: float = 0.1) -> dict[str, Any]:
    """Accuracy on clips whose best candidate beats the second by more than ``min_margin``."""
    correct = np.asarray(truth, dtype=object) == np.asarray(pred, dtype=object)
    high = np.asarray(margin, np.float64) > min_margin
    return {"min_margin": min_margin, "n_all": int(len(correct)),
            "accuracy_all": float(correct.mean()) if len(correct) else float("nan"),
            "n_high_margin": int(high.sum()),
            "accuracy_high_margin": float(correct[high].mean()) if high.any() else float("nan")}
