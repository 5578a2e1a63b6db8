"""Router metrics: macro F1, bottleneck split, threshold calibration, low-confidence table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from serec.evaluate.analysis import PipelineView, gatekeeper_report, pipeline_report
from serec.evaluate.ensemble import TwoStage
from serec.evaluate.metrics import (
    bootstrap_ci,
    bottleneck,
    calibrate_threshold,
    class_report,
    low_confidence,
    macro_f1,
    tie_aware,
    tie_resolved,
)
from serec.evaluate.report import _class_table

TWO_STAGE = TwoStage("A", ("B", "C"))


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    classes = ["A", "B", "C", "D"]
    for n in (1, 7, 60):
        for _ in range(20):
            truth = rng.choice(classes[:3], n)
            pred = rng.choice(classes, n)
            expected = f1_score(truth, pred, average="macro", zero_division=0)
            assert macro_f1(truth, pred, classes) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    truth = rng.choice(["A", "B", "C"], 80)
    pred = np.where(rng.random(80) < 0.7, truth, rng.choice(["A", "B", "C"], 80))
    low, high = bootstrap_ci(truth, pred, ["A", "B", "C"], n_boot=300)
    assert low < macro_f1(truth, pred, ["A", "B", "C"]) < high
    assert bootstrap_ci(truth, truth, ["A", "B", "C"], n_boot=50) == (1.0, 1.0)


def test_bottleneck_counts_on_a_hand_built_table():
    # truth, routed to the expert, prediction
    rows = [("A", False, "A"),   # right
            ("B", False, "A"),   # gatekeeper false positive
            ("C", False, "A"),   # gatekeeper false positive
            ("A", True, "B"),    # gatekeeper false negative
            ("B", True, "B"),    # right
            ("B", True, "C"),    # expert error
            ("C", True, "C")]    # right
    truth, routed, pred = map(list, zip(*rows, strict=True))
    result = bottleneck(truth, pred, routed, "A")
    kinds = {k["kind"]: k for k in result["kinds"]}
    assert result["errors"] == 4 and result["n"] == 7
    assert kinds["gatekeeper_false_positive"]["count"] == 2
    assert kinds["gatekeeper_false_negative"]["count"] == 1
    assert kinds["expert_error"]["count"] == 1
    assert kinds["gatekeeper_false_positive"]["share_of_errors"] == pytest.approx(0.5)
    assert kinds["expert_error"]["share_of_clips"] == pytest.approx(1 / 7)


def test_bottleneck_rejects_predictions_that_are_not_two_stage():
    with pytest.raises(ValueError, match="two-stage"):
        bottleneck(["B"], ["C"], [False], "A")  # not routed, yet not the majority


def test_two_stage_decisions_feed_the_bottleneck():
    p_major = np.array([0.9, 0.7, 0.2, 0.4, 0.1])
    p_expert = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    truth = np.array(["A", "B", "C", "A", "C"], dtype=object)
    pred = TWO_STAGE.decide(p_major, p_expert, 0.5)
    assert list(pred) == ["A", "A", "C", "B", "B"]
    probs = TWO_STAGE.class_probabilities(p_major, p_expert)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    result = bottleneck(truth, pred, TWO_STAGE.routed(p_major, 0.5), "A")
    counts = {k["kind"]: k["count"] for k in result["kinds"]}
    assert counts == {"gatekeeper_false_positive": 1, "gatekeeper_false_negative": 1,
                      "expert_error": 1}


def _noisy_table(seed: int, n: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]).astype(object)
    # a gatekeeper biased low: majority clips sit around 0.4, the rest around 0.2
    p_major = np.clip(np.where(truth == "A", 0.42, 0.22) + rng.normal(0, 0.08, n), 0, 1)
    logits = rng.normal(0, 1, (n, 2)) + np.where(truth[:, None] == np.array(["B", "C"]), 1.5, 0)
    p_expert = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return truth, p_major, p_expert


@pytest.mark.parametrize("seed", range(6))
def test_calibrated_threshold_is_never_worse_than_the_default(seed):
    truth, p_major, p_expert = _noisy_table(seed)
    calibration = calibrate_threshold(truth, p_major, p_expert, TWO_STAGE)
    at_default = macro_f1(truth, TWO_STAGE.decide(p_major, p_expert, 0.5), ["A", "B", "C"])
    assert calibration.default_macro_f1 == pytest.approx(at_default)
    assert calibration.macro_f1 >= at_default
    chosen = TWO_STAGE.decide(p_major, p_expert, calibration.threshold)
    assert macro_f1(truth, chosen, ["A", "B", "C"]) == pytest.approx(calibration.macro_f1)


def test_calibration_moves_a_biased_gatekeeper_threshold():
    truth, p_major, p_expert = _noisy_table(0, n=300)
    calibration = calibrate_threshold(truth, p_major, p_expert, TWO_STAGE)
    assert 0.22 < calibration.threshold < 0.42
    assert calibration.macro_f1 > calibration.default_macro_f1 + 0.1


def test_calibration_keeps_the_default_on_a_tie():
    truth = np.array(["A", "B"], dtype=object)
    calibration = calibrate_threshold(truth, np.array([0.99, 0.01]),
                                      np.array([[1.0, 0.0], [1.0, 0.0]]), TWO_STAGE)
    assert calibration.threshold == 0.5 and calibration.macro_f1 == 1.0


def test_low_confidence_rows_are_those_near_the_threshold():
    table = low_confidence(["a", "b", "c", "d"], np.array([0.45, 0.9, 0.58, 0.61]), 0.5,
                           ["A", "B", "A", "A"], ["B", "A", "A", "A"])
    assert list(table["clip_id"]) == ["a", "c"]
    assert list(table["correct"]) == [False, True]


def test_reports_on_a_pipeline_view():
    truth, p_major, p_expert = _noisy_table(3, n=40)
    view = PipelineView([f"c{i}" for i in range(40)], truth, p_major, p_expert)
    report = pipeline_report(view, TWO_STAGE, 0.3, with_ci=True, n_boot=50)
    pred = view.decide(TWO_STAGE, 0.3)
    assert report["macro_f1"] == pytest.approx(macro_f1(truth, pred, ["A", "B", "C"]))
    assert np.sum(report["confusion"]) == 40
    assert report["macro_f1_ci95"][0] <= report["macro_f1_ci95"][1]
    gate = gatekeeper_report(truth, p_major, "A", 0.3)
    assert gate["classes"] == ["A", "other"]
    routed_right = (p_major < 0.3) & (truth != "A")
    assert report["expert"]["n"] == int(routed_right.sum())
    per_class = class_report(truth, pred, ["A", "B", "C"])["per_class"]
    assert [r["support"] for r in per_class] == [int((truth == c).sum()) for c in "ABC"]


def test_no_clip_reaching_the_expert_is_reported_not_a_crash():
    # a small, lopsided test set: the gatekeeper keeps every clip
    truth = np.array(["A", "A", "B", "C"], dtype=object)
    view = PipelineView(["c0", "c1", "c2", "c3"], truth, np.full(4, 0.9), np.full((4, 2), 0.5))
    report = pipeline_report(view, TWO_STAGE, 0.5, with_ci=True, n_boot=20)
    assert report["expert"]["n"] == 0 and np.isnan(report["expert"]["macro_f1"])
    assert report["expert"]["confusion"] == [[0, 0], [0, 0]]
    assert _class_table(report["expert"]) == "No clips in this group."
    assert "| B |" in _class_table(report)
    empty = class_report([], [], ["A", "B"])
    assert empty["n"] == 0 and [r["support"] for r in empty["per_class"]] == [0, 0]


def test_tie_aware_scores_count_a_pick_inside_the_tied_set_as_right():
    truth = np.array(["A", "A", "B", "C", "C"], dtype=object)
    pred = np.array(["A", "B", "A", "B", "C"], dtype=object)
    accepted = [("A",), ("A", "B"), ("B",), ("B", "C"), ("C",)]
    resolved = tie_resolved(truth, pred, accepted)
    assert list(resolved) == ["A", "B", "B", "B", "C"]  # clips 1 and 3: the pick was tied
    scores = tie_aware(truth, pred, accepted)
    assert scores["n"] == 5 and scores["n_tied"] == 2
    assert scores["accuracy"] == pytest.approx(2 / 5)
    assert scores["tie_aware_accuracy"] == pytest.approx(4 / 5)
    assert scores["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    # resolved truth A,B,B,B,C vs pred A,B,A,B,C: F1 A 2/3, B 0.8, C 1
    assert scores["tie_aware_macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1.0) / 3)
    empty = tie_aware([], [], [])
    assert empty["n"] == 0 and np.isnan(empty["tie_aware_macro_f1"])
    assert np.isnan(empty["tie_aware_accuracy"])
    with pytest.raises(ValueError, match="tied sets"):
        tie_resolved(truth, pred, accepted[:2])


def test_pipeline_report_scores_gatekeeper_and_expert_tie_aware():
    truth = np.array(["A", "B", "C", "B"], dtype=object)
    p_major = np.array([0.9, 0.9, 0.1, 0.1])    # keeps c0, c1; routes c2, c3
    p_expert = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])  # c2 -> B, c3 -> C
    view = PipelineView(["c0", "c1", "c2", "c3"], truth, p_major, p_expert)
    accepted = [("A",), ("A", "B"), ("B", "C"), ("B",)]
    report = pipeline_report(view, TWO_STAGE, 0.5, accepted=accepted)
    assert report["tie_aware"]["accuracy"] == 0.25  # only c0 is strictly right
    assert report["tie_aware"]["tie_aware_accuracy"] == 0.75  # c1 and c2 picks were tied
    gate = report["gatekeeper"]["tie_aware"]  # c1: majority tied, kept: right
    assert (gate["accuracy"], gate["tie_aware_accuracy"]) == (0.75, 1.0)
    expert = report["expert"]["tie_aware"]  # routed, truth not majority: c2, c3
    assert (expert["n"], expert["tie_aware_accuracy"]) == (2, 0.5)
    assert "tie_aware" not in pipeline_report(view, TWO_STAGE, 0.5)


def test_report_sections_say_n_a_without_framings_or_clips():
    from serec.evaluate.report import _shift_null, _tie_section

    assert "n/a" in _shift_null({"shift_null_gain_best_single": None})
    assert "0.020" in _shift_null({"shift_null_gain_best_single": 0.02})
    empty = tie_aware([], [], [])
    lines = _tie_section({"rows": [{"router": "r", **empty, "mean_regret": float("nan")}],
                          "n_test": 0, "n_tied": 0, "share_tied": float("nan"),
                          "median_noise_floor": float("nan")})
    text = "\n".join(lines)
    assert "| r | n/a | n/a | n/a | n/a | n/a |" in text and "median floor n/a" in text
    assert _tie_section(None) == []
