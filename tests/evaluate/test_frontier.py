"""The cost-quality plane: best fixed mixture (hull), AIQ, cost-weighted choice, passes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serec.evaluate.frontier import (
    Frontier,
    SystemCosts,
    cost_weighted_choice,
    deferring_choice,
    network_passes,
    operating_point,
    router_curve,
    shared_range,
    single_points,
    upper_envelope,
    weight_grid,
)
from serec.evaluate.routing import SystemScores


def test_envelope_drops_dominated_and_below_chord_points():
    # (cost, quality): B is dominated (costlier, worse than A); C lies below the A-D chord
    costs = [0.0, 1.0, 2.0, 1.5, 4.0, 5.0]
    quality = [2.0, 3.0, 2.9, 3.1, 3.8, 3.7]
    hull = upper_envelope(costs, quality)
    np.testing.assert_allclose(hull, [[0.0, 2.0], [1.0, 3.0], [4.0, 3.8]])
    assert upper_envelope([], []).shape == (0, 2)
    assert len(upper_envelope([1.0, np.nan], [np.nan, 2.0])) == 0


def test_quality_at_a_budget_is_the_best_fixed_mixture():
    frontier = Frontier.of([0.0, 1.0, 3.0], [2.0, 3.0, 3.5])
    # half the clips to the 1 s system, half to the 3 s one: 2 s, quality 3.25
    assert frontier.quality_at(2.0) == pytest.approx(3.25)
    assert frontier.quality_at(10.0) == pytest.approx(3.5)  # budget left unspent
    assert np.isnan(Frontier.of([1.0], [3.0]).quality_at(0.5))


def test_aiq_is_the_mean_quality_over_the_range():
    frontier = Frontier.of([0.0, 2.0], [2.0, 4.0])
    assert frontier.aiq(0.0, 2.0) == pytest.approx(3.0, abs=1e-9)
    assert frontier.aiq(0.0, 4.0) == pytest.approx(3.5, abs=1e-3)
    assert np.isnan(frontier.aiq(2.0, 1.0))


def test_cost_weight_sweep_never_raises_a_clip_compute():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    costs = np.array([0.0, 0.05, 0.4, 2.0])
    weights = weight_grid(costs)
    assert weights[0] == 0.0 and np.all(np.diff(weights) > 0)
    chosen = np.stack([costs[cost_weighted_choice(probs, costs, w)] for w in weights])
    assert np.array_equal(cost_weighted_choice(probs, costs, 0.0), probs.argmax(axis=1))
    assert np.all(np.diff(chosen, axis=0) <= 0)
    assert np.all(chosen[-1] == 0.0)  # the largest weight always takes the free system


def test_deferring_choice_leaves_the_default_only_with_a_lead_above_the_margin():
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.35, 0.4, 0.25], [0.1, 0.1, 0.8]])
    assert deferring_choice(probs, 0, 0.0).tolist() == [0, 1, 1, 2]  # the most probable
    assert deferring_choice(probs, 0, 0.2).tolist() == [0, 1, 0, 2]
    assert deferring_choice(probs, 0, 0.6).tolist() == [0, 0, 0, 2]
    assert deferring_choice(probs, 1, 1.0).tolist() == [1, 1, 1, 1]  # never leaves it
    assert deferring_choice(np.zeros((0, 3)), 0, 0.1).tolist() == []


def test_network_passes_per_kind():
    assert network_passes("passthrough", {}) == 0.0
    assert network_passes("spectral_gate", {}) == 0.0
    assert network_passes("deepfilternet3", {}) == 1.0
    assert network_passes("sgmse", {"N": 30, "corrector": "ald", "corrector_steps": 1}) == 60.0
    assert network_passes("sgmse", {"N": 30, "corrector": "none"}) == 30.0
    assert network_passes("sgmse", {"N": None}) is None
    assert network_passes("storm", {"N": 50, "corrector": "ald", "corrector_steps": 1,
                                    "mode": "storm"}) == 101.0
    assert network_passes("storm", {"mode": "denoiser"}) == 1.0
    assert network_passes("cdiffuse", {"fast_sampling": True}) == 6.0
    assert network_passes("something_new", {}) is None
    assert network_passes("wpe", {}) == 0.0 and network_passes("gtcrn", {}) == 1.0


def test_a_chain_costs_the_passes_of_its_steps():
    from serec.enhancers.registry import parse_enhancer_specs

    specs = parse_enhancer_specs({"wpe": {}, "fast_sgmse": {
        "kind": "sgmse", "checkpoint": "x.ckpt", "trust_checkpoint": True, "N": 4,
        "corrector": "none"}})
    assert network_passes("chain", {"steps": ["wpe", "deepfilternet3"]}, specs) == 1.0
    assert network_passes("chain", {"steps": ["wpe", "fast_sgmse",
                                              {"kind": "deepfilternet3"}]}, specs) == 5.0
    assert network_passes("chain", {"steps": ["wpe", {"kind": "sgmse"}]}, specs) is None


def _table() -> SystemScores:
    clips = ["a", "b", "c", "d"]
    rows = []
    for i, clip in enumerate(clips):
        for system, ovr, seconds in (("noisy", 2.0, 0.0), ("cheap", 2.8 + 0.1 * i, 0.1),
                                     ("gpu_net", 3.0 + 0.1 * (i % 2), 2.0)):
            rows.append({"clip_id": clip, "system": system, "ovr": ovr, "seconds": seconds,
                         "dnsmos_seconds": 0.01})
    return SystemScores.from_scores(pd.DataFrame(rows), clips, ["cheap", "gpu_net"],
                                    ["passthrough"])


def test_operating_points_split_cpu_and_gpu_seconds():
    table = _table()
    costs = SystemCosts({"cheap": "cpu", "gpu_net": "gpu", "passthrough": "cpu"},
                        {"cheap": 0.0, "gpu_net": 1.0, "passthrough": 0.0})
    point = operating_point(table, ["cheap", "gpu_net", "gpu_net", "passthrough"],
                            np.full(4, 0.02), costs)
    assert point["gpu_s"] == pytest.approx(2 * 2.0 / 4)
    assert point["cpu_s"] == pytest.approx((0.1 + 4 * 0.02) / 4)
    assert point["compute_s"] == pytest.approx(point["cpu_s"] + point["gpu_s"])
    assert point["network_passes"] == pytest.approx(0.5)
    assert point["mean_ovr"] == pytest.approx((2.8 + 3.1 + 3.0 + 2.0) / 4)
    costs.passes["gpu_net"] = None
    assert np.isnan(operating_point(table, ["gpu_net"] * 4, 0.0, costs)["network_passes"])


def test_router_curve_reports_gaps_to_the_hull_and_aiq():
    table = _table()
    costs = SystemCosts({"gpu_net": "gpu"}, {})
    singles = single_points(table, costs)
    assert [p["system"] for p in singles] == ["cheap", "gpu_net", "passthrough"]
    hull = Frontier.of([p["compute_s"] for p in singles], [p["mean_ovr"] for p in singles])
    oracle = np.where(table.ovr["gpu_net"] > table.ovr["cheap"], "gpu_net", "cheap")
    curve = router_curve("r", "cost_weight", [0.0, 1.0],
                         [oracle, np.array(["cheap"] * 4)], [np.zeros(4), np.zeros(4)],
                         table, costs, hull)
    first, second = curve["points"]
    assert first["gap_to_hull"] > 0  # per-clip choice beats every fixed mixture here
    assert second["gap_to_hull"] == pytest.approx(0.0, abs=1e-12)  # a single system
    assert curve["aiq"] >= curve["hull_aiq"]


def test_shared_range_covers_a_router_dearer_than_every_system():
    hull = Frontier.of([0.0, 1.0], [2.0, 3.0])
    router = Frontier.of([2.0, 4.0], [3.2, 3.4])
    low, high = shared_range(router, hull)
    assert (low, high) == (2.0, 4.0)
    assert hull.aiq(low, high) == pytest.approx(3.0)
    assert router.aiq(low, high) == pytest.approx(3.3, abs=1e-3)
