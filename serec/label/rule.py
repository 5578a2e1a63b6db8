"""The label rule: which system a clip should have been routed to."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALL_FAILED = "all_failed"


@dataclass(frozen=True)
class LabelDecision:
    label: str
    best_system: str
    best_ovr: float
    second_ovr: float
    margin: float


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def decide_label(ovr_by_system: Mapping[str, float | None], candidates: Sequence[str],
                 fail_threshold: float = 2.0, cheapest_within: float | None = None,
                 cost_by_system: Mapping[str, float | None] | None = None,
                 ) -> LabelDecision | None:
    """The label objective: which candidate a clip should go to.

    Default (the thesis rule): the best candidate by DNSMOS OVR. With ``cheapest_within``
    (delta, OVR): the cheapest candidate by ``cost_by_system`` (measured seconds) among those
    whose OVR is within delta of the best; a missing cost counts as the most expensive. Either
    way the label is ``all_failed`` when every candidate's OVR <= ``fail_threshold``.

    Ties go to the candidate listed first. Missing or NaN scores (an enhancer that raised)
    are ignored; ``None`` when no candidate has a score at all. ``best_system``/``best_ovr``
    are always the highest-OVR candidate; ``margin`` is best minus second best OVR (NaN with
    a single scored candidate).
    """
    scored = [(name, float(ovr_by_system[name])) for name in candidates
              if _finite(ovr_by_system.get(name))]
    if not scored:
        return None
    ranked = sorted(scored, key=lambda item: -item[1])  # stable: config order breaks ties
    best_system, best_ovr = ranked[0]
    second_ovr = ranked[1][1] if len(ranked) > 1 else math.nan
    chosen = best_system
    if cheapest_within is not None:
        if cheapest_within < 0:
            raise ValueError(f"cheapest_within must be >= 0, got {cheapest_within}")
        costs = cost_by_system or {}

        def cost(name: str) -> float:
            value = costs.get(name)
            return float(value) if _finite(value) else math.inf

        near = [name for name, ovr in scored if ovr >= best_ovr - cheapest_within]
        chosen = min(near, key=cost)  # min keeps the first of equal costs
    label = ALL_FAILED if best_ovr <= fail_threshold else chosen
    return LabelDecision(label=label, best_system=best_system, best_ovr=best_ovr,
                         second_ovr=second_ovr, margin=best_ovr - second_ovr)
