"""Routing value on a hand-computed scores table: oracle, gap closed, regret, compute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serec.evaluate.analysis import with_fallback
from serec.evaluate.routing import (
    RouterChoice,
    SystemScores,
    breakdown,
    headline_rows,
    snr_band,
    value,
)
from serec.evaluate.run import StageCards, router_seconds
from serec.models.card import KIND_LINEAR, ModelCard

CLIPS = ["c1", "c2", "c3", "c4"]
OVR = {"noisy": [2.0, 1.5, 2.5, 1.0],
       "a": [3.0, 2.0, np.nan, 1.8],   # a failed on c3: counts as the noisy OVR (2.5)
       "b": [2.5, 3.5, 2.0, 1.9]}
SECONDS = {"noisy": 0.0, "a": 1.0, "b": 2.0}


def scores_table() -> pd.DataFrame:
    rows = []
    for system, values in OVR.items():
        for clip, ovr in zip(CLIPS, values, strict=True):
            rows.append({"clip_id": clip, "system": system, "ovr": ovr,
                         "seconds": SECONDS[system], "dnsmos_seconds": 0.1,
                         "error": "boom" if np.isnan(ovr) else None})
    return pd.DataFrame(rows)


@pytest.fixture
def table() -> SystemScores:
    return SystemScores.from_scores(scores_table(), CLIPS, ["a", "b"], passthrough=["pass"])


def test_oracle_best_single_and_lookup(table):
    np.testing.assert_allclose(table.oracle(), [3.0, 3.5, 2.5, 1.9])
    assert table.best_single() == "b"  # means: a 2.325, b 2.475
    ovr, seconds = table.lookup(["a", "pass", "b", "missing"])
    np.testing.assert_allclose(ovr[:3], [3.0, 1.5, 2.0])
    np.testing.assert_allclose(seconds[:3], [1.0, 0.0, 2.0])
    assert np.isnan(ovr[3]) and np.isnan(seconds[3])
    np.testing.assert_allclose(table.oracle_seconds(), 3.2)


def test_value_of_a_known_router(table):
    ovr, _ = table.lookup(["a", "b", "b", "a"])  # 3.0, 3.5, 2.0, 1.8
    stats = value(ovr, table.oracle(), float(table.ovr["b"].mean()))
    assert stats["mean_ovr"] == pytest.approx(2.575)
    assert stats["gap_closed"] == pytest.approx((2.575 - 2.475) / (2.725 - 2.475))
    assert stats["mean_regret"] == pytest.approx(0.15)     # regrets 0, 0, 0.5, 0.1
    assert stats["p90_regret"] == pytest.approx(0.38)
    assert stats["share_regret_gt_0_2"] == pytest.approx(0.25)


def test_headline_rows(table):
    router = RouterChoice("router", np.array(["a", "b", "b", "a"], dtype=object),
                          np.full(4, 0.05), macro_f1=0.7)
    rows = {r["system"]: r for r in headline_rows(table, [router])}
    assert list(rows) == ["oracle", "router", "best single (b)", "a", "b", "passthrough",
                          "random"]
    assert rows["oracle"]["gap_closed"] == pytest.approx(1.0)
    assert rows["oracle"]["compute_s"] == pytest.approx(3.2)
    assert rows["best single (b)"]["gap_closed"] == pytest.approx(0.0)
    assert rows["router"]["compute_s"] == pytest.approx(0.05 + 1.5)
    assert rows["router"]["macro_f1"] == 0.7
    assert rows["passthrough"]["mean_ovr"] == pytest.approx(1.75)
    assert rows["passthrough"]["compute_s"] == 0.0
    assert rows["random"]["mean_ovr"] == pytest.approx(2.4)
    assert rows["random"]["compute_s"] == pytest.approx(1.5)


def test_all_failed_goes_to_the_fallback(table):
    systems = with_fallback(np.array(["a", "all_failed", "all_failed", "b"], dtype=object),
                            "pass")
    assert list(systems) == ["a", "pass", "pass", "b"]
    ovr, seconds = table.lookup(systems)
    np.testing.assert_allclose(ovr, [3.0, 1.5, 2.5, 1.9])
    np.testing.assert_allclose(seconds, [1.0, 0.0, 0.0, 2.0])


def test_clips_without_scores_are_left_out_and_unscored_candidates_fail():
    table = SystemScores.from_scores(scores_table(), [*CLIPS, "c9"], ["a", "b"])
    assert table.missing == ["c9"] and table.clip_ids == CLIPS
    with pytest.raises(ValueError, match="no rows in scores"):
        SystemScores.from_scores(scores_table(), CLIPS, ["a", "z"])


def test_breakdown_by_group(table):
    rows = breakdown(table, ["lo", "lo", "hi", "hi"], ["a", "b", "b", "a"],
                     ["a", "b", "b", "b"], ["a", "b", "b", "a"])
    by_group = {r["group"]: r for r in rows}
    assert by_group["lo"]["n"] == 2 and by_group["lo"]["router"] == pytest.approx(3.25)
    assert by_group["lo"]["oracle"] == pytest.approx(3.25)
    assert by_group["hi"]["accuracy"] == pytest.approx(0.5)
    assert by_group["hi"]["mean_regret"] == pytest.approx(0.3)


@pytest.mark.parametrize(("snr", "band"), [(-3.0, "<0 dB"), (0.0, "0-5 dB"), (7.5, "5-10 dB"),
                                           (19.9, "15-20 dB"), (25.0, ">=20 dB"),
                                           (float("nan"), "unknown")])
def test_snr_bands(snr, band):
    assert snr_band(snr) == band


def test_router_seconds_pay_each_input_once_and_the_expert_only_when_routed():
    gatekeeper = StageCards({0: ModelCard(stage="gatekeeper", classes=["a", "other"])})  # AST
    expert = StageCards({0: ModelCard(stage="expert", classes=["b", "c"],
                                      features=["cekl_h_var"])})                      # hybrid
    features = StageCards({0: ModelCard(stage="features", classes=["a", "b"], kind=KIND_LINEAR,
                                        features=["cekl_h_var", "noisy_ovr"])})
    inputs = {"spectrogram": np.array([1.0, 1.0]), "cekl": np.array([10.0, 10.0]),
              "dnsmos": np.array([100.0, 100.0])}
    routed = np.array([False, True])
    total = router_seconds([(gatekeeper, np.array([0.1, 0.1]), np.ones(2, bool)),
                            (expert, np.array([0.2, 0.2]), routed)], inputs)
    np.testing.assert_allclose(total, [1.1, 1.0 + 0.1 + 10.0 + 0.2])
    alone = router_seconds([(features, np.array([0.0, 0.0]), np.ones(2, bool))], inputs)
    np.testing.assert_allclose(alone, [110.0, 110.0])


def test_shift_null_gain_of_a_system_from_its_framings():
    scores = scores_table()
    assert np.isnan(SystemScores.from_scores(scores, CLIPS, ["a", "b"]).shift_null_gain("b"))
    # b's framings: the scored OVR first, then shifted copies up to 0.1 / 0.3 higher
    offsets = {"c1": [0.0, 0.1], "c2": [0.0, -0.2, 0.3], "c3": [0.0], "c4": [0.0, 0.1]}
    scores["ovr_framings"] = [
        [o + d for d in offsets[c]] if s == "b" else None if np.isnan(o) else [o]
        for c, s, o in zip(scores["clip_id"], scores["system"], scores["ovr"], strict=True)]
    table = SystemScores.from_scores(scores, CLIPS, ["a", "b"])
    assert table.shift_null_gain("b") == pytest.approx((0.1 + 0.3 + 0.0 + 0.1) / 4)
    assert table.shift_null_gain("a") == pytest.approx(0.0)  # one framing each: no gain
