"""The routing targets' figures from hand-made evaluation results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from serec.evaluate.targets import cheap_router_point, format_targets, target_figures

SINGLES = [{"system": "dfn3", "mean_ovr": 3.00, "compute_s": 1.0},
           {"system": "nsnet2", "mean_ovr": 2.90, "compute_s": 0.1}]
ROUTING = {"best_single": "dfn3", "oracle_minus_best_single": 0.08,
           "shift_null_gain_best_single": 0.05}


def _curve(points: list[tuple[float, float, float]]) -> dict:
    return {"router": "router", "points": [
        {"threshold": t, "mean_ovr": q, "compute_s": c, "gap_to_hull": q - (2.9 + 0.1 * c)}
        for t, q, c in points]}


def test_targets_met_when_the_router_pays():
    labels = pd.DataFrame({"best_system": ["dfn3", "nsnet2", "wpe", "hush", "dfn3"]})
    router = {"system": "router", "mean_ovr": 3.01}
    curve = _curve([(0.2, 2.99, 0.45), (0.5, 3.01, 0.8), (0.9, 2.95, 0.2)])
    t = target_figures(labels, ROUTING, router, SINGLES, curve,
                       np.array(["dfn3", "nsnet2", "dfn3", "dfn3"], dtype=object))
    assert t["router_share_off_best_single"] == 0.25
    assert t["best_shares"] == {"dfn3": 0.4, "nsnet2": 0.2, "wpe": 0.2, "hush": 0.2}
    assert t["max_best_share"] == {"value": 0.4, "met": True}
    assert t["router_minus_best_single"]["value"] == pytest.approx(0.01)
    assert t["router_minus_best_single"]["met"] is True
    assert t["cheap_point"]["compute_s"] == 0.45  # the best point within half of dfn3's 1.0 s
    assert t["cheap_minus_best_single"]["value"] == pytest.approx(-0.01)
    assert t["cheap_minus_best_single"]["met"] is True
    assert t["cheap_minus_hull"]["met"] is True
    text = "\n".join(format_targets(t))
    assert "largest share 40% (target <= 40%: met)" in text and "not met" not in text
    assert "router chosen on validation (router) - best single +0.010" in text
    assert "it picks another system than dfn3 on 25% of test clips" in text
    # a router that kept the best single on every test clip says so beside "met"
    same = target_figures(labels, ROUTING, {"system": "router", "mean_ovr": 3.0}, SINGLES,
                          curve, ["dfn3"] * 4)
    assert same["router_minus_best_single"]["met"] is True
    assert "(target >= 0: met); it picks another system than dfn3 on 0% of test clips" in \
        "\n".join(format_targets(same))


def test_targets_not_met_and_unmeasurable():
    labels = pd.DataFrame({"best_system": ["dfn3"] * 3 + ["nsnet2"]})
    router = {"system": "router", "mean_ovr": 2.97}
    t = target_figures(labels, ROUTING, router, SINGLES, _curve([(0.5, 3.0, 0.9)]))
    assert t["max_best_share"]["met"] is False and t["router_minus_best_single"]["met"] is False
    assert t["cheap_point"] is None and t["cheap_minus_hull"]["met"] is None
    assert math.isnan(t["cheap_minus_best_single"]["value"])
    text = "\n".join(format_targets(t))
    assert "no router operating point at <= 50%" in text
    assert "picks another system" not in text  # no picks given (an older metrics.json)
    assert target_figures(labels, ROUTING, router, SINGLES, None)["cheap_point"] is None
    # metrics.json gives None back as NaN (report.py's _numbers): still formats
    assert format_targets({**t, "cheap_point": math.nan,
                           "cheap_minus_hull": {"value": math.nan, "met": math.nan}})


def test_cheap_point_ignores_unmeasured_points():
    curve = _curve([(0.1, float("nan"), 0.1), (0.2, 2.5, float("nan")), (0.3, 2.6, 0.3)])
    assert cheap_router_point([curve], 0.5)["threshold"] == 0.3
    assert cheap_router_point([curve], 0.05) is None
