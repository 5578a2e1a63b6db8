"""Report figures: valid PNGs, and rows sharing a point share one legend entry."""

from __future__ import annotations

import numpy as np

from serec.evaluate import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_rows_at_one_point_share_an_entry_and_incomplete_rows_are_left_out() -> None:
    rows = [dict(system="oracle", compute_s=6.8, mean_ovr=3.0),
            dict(system="best single (dfn3)", compute_s=1.4, mean_ovr=2.99),
            dict(system="dfn3", compute_s=1.4, mean_ovr=2.99),
            dict(system="router", compute_s=1.2, mean_ovr=2.96),
            dict(system="passthrough", compute_s=None, mean_ovr=2.2),
            dict(system="broken", compute_s=1.0, mean_ovr=float("nan"))]
    points = plots.compute_quality_points(rows)
    assert points == {(6.8, 3.0): ["oracle"], (1.4, 2.99): ["best single (dfn3)", "dfn3"],
                      (1.2, 2.96): ["router"]}
    assert plots.quality_compute_png(rows).startswith(PNG_MAGIC)


def test_confusion_and_regret_figures_are_pngs() -> None:
    assert plots.confusion_png([[3, 1], [0, 2]], ["a", "b"], "t").startswith(PNG_MAGIC)
    assert plots.regret_png(np.array([0.0, 0.1, np.nan, 0.4])).startswith(PNG_MAGIC)


def test_cost_quality_figure_is_a_png() -> None:
    singles = [dict(system="a", compute_s=0.0, mean_ovr=2.0),
               dict(system="b", compute_s=1.0, mean_ovr=3.0)]
    hull = {"cost_s": [0.0, 1.0], "mean_ovr": [2.0, 3.0]}
    curves = [{"router": "r", "parameter": "threshold",
               "points": [dict(compute_s=0.5, mean_ovr=2.8), dict(compute_s=0.2, mean_ovr=2.4)]}]
    assert plots.cost_quality_png(singles, hull, curves).startswith(PNG_MAGIC)
    assert plots.cost_quality_png(singles, {"cost_s": [], "mean_ovr": []}, []).startswith(
        PNG_MAGIC)
