"""The label rule's edge cases."""

from __future__ import annotations

import math

import pytest

from serec.label.rule import ALL_FAILED, decide_label

ORDER = ["spectral_gate", "rnnoise", "deepfilternet3"]


def test_best_ovr_wins_and_margin_recorded():
    d = decide_label({"spectral_gate": 2.5, "rnnoise": 3.1, "deepfilternet3": 2.9}, ORDER)
    assert (d.label, d.best_system) == ("rnnoise", "rnnoise")
    assert d.best_ovr == 3.1 and d.second_ovr == 2.9
    assert d.margin == pytest.approx(0.2)


def test_ties_go_to_config_order():
    d = decide_label({"spectral_gate": 3.0, "rnnoise": 3.0, "deepfilternet3": 3.0}, ORDER)
    assert d.label == "spectral_gate" and d.margin == 0.0
    d = decide_label({"spectral_gate": 3.0, "rnnoise": 3.0, "deepfilternet3": 3.0},
                     list(reversed(ORDER)))
    assert d.label == "deepfilternet3"


def test_all_failed_when_every_ovr_at_or_below_threshold():
    d = decide_label({"spectral_gate": 1.9, "rnnoise": 2.0, "deepfilternet3": 1.5}, ORDER)
    assert d.label == ALL_FAILED and d.best_system == "rnnoise"
    d = decide_label({"spectral_gate": 1.9, "rnnoise": 2.0001, "deepfilternet3": 1.5}, ORDER)
    assert d.label == "rnnoise"


def test_nan_and_missing_scores_are_ignored():
    d = decide_label({"spectral_gate": math.nan, "rnnoise": None, "deepfilternet3": 2.7}, ORDER)
    assert d.label == "deepfilternet3"
    assert math.isnan(d.second_ovr) and math.isnan(d.margin)
    assert decide_label({"spectral_gate": math.nan}, ORDER) is None


def test_noisy_is_not_a_candidate_unless_listed():
    scores = {"noisy": 4.0, "spectral_gate": 2.5, "passthrough": 4.0}
    assert decide_label(scores, ["spectral_gate"]).label == "spectral_gate"
    assert decide_label(scores, ["spectral_gate", "passthrough"]).label == "passthrough"
