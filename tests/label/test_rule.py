"""The label rule's edge cases."""

from __future__ import annotations

import math

import pytest

from serec.label.rule import ALL_FAILED, accepted_labels, decide_label, noise_floor

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


COST = {"spectral_gate": 0.01, "rnnoise": 0.2, "deepfilternet3": 1.5}


def test_cheapest_within_delta_of_the_best():
    ovr = {"spectral_gate": 2.90, "rnnoise": 3.06, "deepfilternet3": 3.10}
    assert decide_label(ovr, ORDER).label == "deepfilternet3"  # thesis rule by default
    d = decide_label(ovr, ORDER, cheapest_within=0.05, cost_by_system=COST)
    assert d.label == "rnnoise"  # within 0.05 of 3.10 and cheaper
    assert d.best_system == "deepfilternet3" and d.best_ovr == pytest.approx(3.10)
    assert decide_label(ovr, ORDER, cheapest_within=0.25, cost_by_system=COST).label \
        == "spectral_gate"
    assert decide_label(ovr, ORDER, cheapest_within=0.0, cost_by_system=COST).label \
        == "deepfilternet3"


def test_cheapest_within_keeps_all_failed_and_missing_costs():
    low = {"spectral_gate": 1.5, "rnnoise": 1.9, "deepfilternet3": 1.95}
    assert decide_label(low, ORDER, cheapest_within=1.0, cost_by_system=COST).label \
        == ALL_FAILED
    ovr = {"spectral_gate": 3.0, "rnnoise": 3.0, "deepfilternet3": 3.0}
    # an unmeasured cost is the most expensive; equal costs go to the first listed
    assert decide_label(ovr, ORDER, cheapest_within=0.1,
                        cost_by_system={"rnnoise": 0.2, "deepfilternet3": 0.2}).label == "rnnoise"
    with pytest.raises(ValueError, match="cheapest_within"):
        decide_label(ovr, ORDER, cheapest_within=-0.1, cost_by_system=COST)


def test_the_aggregation_passes_the_objective_and_measured_seconds():
    import pandas as pd

    from serec.label.aggregate import derive_frame, real_time_factors

    clips = pd.DataFrame({"clip_id": ["c0"], "path": ["c0.wav"]})
    scores = pd.DataFrame({
        "clip_id": ["c0", "c0", "c0", "other"], "system": ["noisy", "gate", "rnnoise", "gate"],
        "ovr": [2.1, 3.00, 3.04, 3.0], "error": [None] * 4,
        "seconds": [0.0, 0.01, 0.3, 0.03], "audio_s": [1.0, 1.0, 1.0, 3.0]})
    costs = real_time_factors(scores)
    assert costs["gate"] == pytest.approx(0.04 / 4.0) and costs["rnnoise"] == pytest.approx(0.3)
    systems, candidates = ["noisy", "gate", "rnnoise"], ["gate", "rnnoise"]
    thesis, _ = derive_frame(clips, scores, systems, candidates, fail_threshold=2.0)
    assert thesis["label"].tolist() == ["rnnoise"]
    cheap, _ = derive_frame(clips, scores, systems, candidates, fail_threshold=2.0,
                            cheapest_within=0.05, cost_by_system=costs)
    assert cheap["label"].tolist() == ["gate"] and cheap["best_system"].tolist() == ["rnnoise"]


def test_a_negative_margin_fails_at_config_load():
    from serec.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="label.cheapest_within"):
        load_config(None, overrides={"enhancers": {"rnnoise": {}},
                                     "label": {"cheapest_within": -0.1}})


def test_noise_floor_is_the_sample_sd_over_framings():
    assert noise_floor([3.0, 3.2]) == pytest.approx(0.2 / math.sqrt(2))
    assert noise_floor([3.0, 3.1, 3.2]) == pytest.approx(0.1)
    assert math.isnan(noise_floor([3.0])) and math.isnan(noise_floor(None))
    assert math.isnan(noise_floor(float("nan")))


def test_accepted_labels_are_the_tied_set_only_when_the_label_is_in_it():
    assert accepted_labels("rnnoise", "spectral_gate,rnnoise") == ("spectral_gate", "rnnoise")
    assert accepted_labels(ALL_FAILED, "rnnoise") == (ALL_FAILED,)
    assert accepted_labels("rnnoise", None) == ("rnnoise",)
    assert accepted_labels("rnnoise", float("nan")) == ("rnnoise",)
