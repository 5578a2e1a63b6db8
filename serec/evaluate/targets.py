"""Whether routing pays on a run: the figures of the project's routing targets.

* Room to route: the share of clips on which each system is best (none should be best on more
  than ``MAX_BEST_SHARE`` of them), and oracle − best single beside the shift-null gain of the
  best single (the part of that gap that is metric noise).
* Quality: the mean OVR of the router chosen on validation (the one ``recommend`` deploys)
  against the best single system's (at least as good).
* Cost: the best operating point of that router's cost–quality curve that spends at most
  ``COMPUTE_SHARE`` of the best single system's compute: its OVR minus the best single's (at
  least ``-OVR_TOLERANCE``) and minus the best fixed mixture's at the same compute (above it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

MAX_BEST_SHARE = 0.40
COMPUTE_SHARE = 0.50
OVR_TOLERANCE = 0.02


def _check(value: float, ok: bool) -> dict[str, Any]:
    return {"value": value, "met": bool(ok) if math.isfinite(value) else None}


def best_shares(labels: pd.DataFrame) -> dict[str, float]:
    """Share of clips on which each system has the highest OVR (``best_system``)."""
    if labels.empty or "best_system" not in labels:
        return {}
    shares = labels["best_system"].astype(str).value_counts(normalize=True)
    return {str(k): float(v) for k, v in shares.items()}


def cheap_router_point(curves: Sequence[dict[str, Any]], budget_s: float
                       ) -> dict[str, Any] | None:
    """The highest-OVR router operating point (any sweep) with compute <= ``budget_s``."""
    points = [{"router": c["router"], **p} for c in curves for p in c["points"]
              if math.isfinite(p["compute_s"]) and p["compute_s"] <= budget_s
              and math.isfinite(p["mean_ovr"])]
    return max(points, key=lambda p: p["mean_ovr"], default=None)


def target_figures(labels: pd.DataFrame, routing: dict[str, Any], router: dict[str, Any],
                   singles: Sequence[dict[str, Any]], curve: dict[str, Any] | None,
                   router_systems: Sequence[str] | None = None) -> dict[str, Any]:
    """The targets' figures, each with ``met`` (None where it cannot be measured).

    ``labels``: every labeled clip of the run (shares); ``routing``/``singles``: the test-set
    results of :func:`serec.evaluate.run.evaluate_run` (the best single is
    ``routing['best_single']``); ``router``: the headline row of the router chosen on
    validation, ``curve`` its cost–quality curve on the test set (None: not swept),
    ``router_systems`` its pick per test clip (for the share of clips on which it leaves the
    best single: a router that never does meets the quality target only as that system).
    """
    shares = best_shares(labels)
    best = routing["best_single"]
    single = next(p for p in singles if p["system"] == best)
    nan = float("nan")
    cheap = cheap_router_point([curve] if curve else [], COMPUTE_SHARE * single["compute_s"])
    return {
        "best_shares": shares,
        "max_best_share": _check(max(shares.values(), default=nan),
                                 max(shares.values(), default=1.0) <= MAX_BEST_SHARE),
        "oracle_minus_best_single": routing["oracle_minus_best_single"],
        "shift_null_gain_best_single": routing["shift_null_gain_best_single"],
        "best_single": best, "best_single_ovr": single["mean_ovr"],
        "best_single_compute_s": single["compute_s"],
        "router": router["system"],
        "router_minus_best_single": _check(router["mean_ovr"] - single["mean_ovr"],
                                           router["mean_ovr"] >= single["mean_ovr"]),
        "router_share_off_best_single": (
            sum(str(s) != best for s in router_systems) / len(router_systems)
            if router_systems is not None and len(router_systems) else nan),
        "cheap_point": cheap,
        "cheap_minus_best_single": _check(
            cheap["mean_ovr"] - single["mean_ovr"] if cheap else nan,
            bool(cheap) and cheap["mean_ovr"] >= single["mean_ovr"] - OVR_TOLERANCE),
        "cheap_minus_hull": _check(cheap["gap_to_hull"] if cheap else nan,
                                   bool(cheap) and cheap["gap_to_hull"] > 0),
    }


def _signed(value: float | None) -> str:
    return f"{value:+.3f}" if value is not None and math.isfinite(value) else "n/a"


def _mark(check: dict[str, Any]) -> str:
    met = check["met"]  # None (or NaN, read back from JSON) where not measurable
    return "met" if met is True else "not met" if met is False else "n/a"


def _off_best(targets: dict[str, Any]) -> str:
    share = targets.get("router_share_off_best_single")  # absent in older metrics.json
    if share is None or not math.isfinite(share):
        return ""
    return f"; it picks another system than {targets['best_single']} on {share:.0%} of test clips"


def format_targets(targets: dict[str, Any]) -> list[str]:
    """The figures as plain lines (headline and report)."""
    shares = ", ".join(f"{k} {v:.0%}" for k, v in targets["best_shares"].items())
    cheap = targets["cheap_point"] if isinstance(targets["cheap_point"], dict) else None
    lines = [
        f"best on (all labeled clips): {shares or 'n/a'}; largest share "
        f"{targets['max_best_share']['value']:.0%} (target <= {MAX_BEST_SHARE:.0%}: "
        f"{_mark(targets['max_best_share'])})",
        f"oracle - best single ({targets['best_single']}) "
        f"{_signed(targets['oracle_minus_best_single'])} OVR; shift-null gain of the best single "
        f"{_signed(targets['shift_null_gain_best_single'])}",
        f"router chosen on validation ({targets['router']}) - best single "
        f"{_signed(targets['router_minus_best_single']['value'])} OVR "
        f"(target >= 0: {_mark(targets['router_minus_best_single'])}){_off_best(targets)}",
    ]
    if cheap is None:
        lines.append(f"no router operating point at <= {COMPUTE_SHARE:.0%} of the best single's "
                     f"compute ({targets['best_single_compute_s']:.3f} s/clip)")
    else:
        lines.append(
            f"at <= {COMPUTE_SHARE:.0%} of the best single's compute: {cheap['router']} at "
            f"{cheap['compute_s']:.3f} s/clip ({cheap['compute_s'] / max(targets['best_single_compute_s'], 1e-12):.0%}) "  # noqa: E501
            f"- best single {_signed(targets['cheap_minus_best_single']['value'])} OVR (target >= "
            f"-{OVR_TOLERANCE}: {_mark(targets['cheap_minus_best_single'])}), - best fixed "
            f"mixture {_signed(targets['cheap_minus_hull']['value'])} "
            f"(target > 0: {_mark(targets['cheap_minus_hull'])})")
    return lines
