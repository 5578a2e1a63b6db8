"""The label rule: which system a clip should have been routed to."""

from __future__ import annotations

import math
import statistics
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
    tied: tuple[str, ...] = ()  # candidates within the tie margin of the best, config order
    noise_floor: float = math.nan  # the best output's OVR spread over framings


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def decide_label(ovr_by_system: Mapping[str, float | None], candidates: Sequence[str],
                 fail_threshold: float = 2.0, cheapest_within: float | None = None,
                 cost_by_system: Mapping[str, float | None] | None = None,
                 tie_margin: float = 0.0,
                 noise_floor_by_system: Mapping[str, float] | None = None,
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

    ``noise_floor`` is the best system's entry of ``noise_floor_by_system`` (the metric noise
    of its output, :func:`noise_floor`); ``tied`` lists the candidates whose OVR is within
    ``max(noise_floor, tie_margin)`` of the best, in candidate order; just the best when that
    is 0 (a NaN floor counts as 0).
    """
    scored = [(name, float(ovr_by_system[name])) for name in candidates
              if _finite(ovr_by_system.get(name))]
    if not scored:
        return None
    ranked = sorted(scored, key=lambda item: -item[1])  # stable: config order breaks ties
    best_system, best_ovr = ranked[0]
    second_ovr = ranked[1][1] if len(ranked) > 1 else math.nan
    chosen = best_system

    def near(delta: float) -> list[str]:
        return [name for name, ovr in scored if ovr >= best_ovr - delta]

    if cheapest_within is not None:
        if cheapest_within < 0:
            raise ValueError(f"cheapest_within must be >= 0, got {cheapest_within}")
        costs = cost_by_system or {}

        def cost(name: str) -> float:
            value = costs.get(name)
            return float(value) if _finite(value) else math.inf

        chosen = min(near(cheapest_within), key=cost)  # min keeps the first of equal costs
    floor = float((noise_floor_by_system or {}).get(best_system, math.nan))
    tie_within = max(floor if math.isfinite(floor) else 0.0, tie_margin)
    tied = tuple(near(tie_within)) if tie_within > 0 else (best_system,)
    label = ALL_FAILED if best_ovr <= fail_threshold else chosen
    return LabelDecision(label=label, best_system=best_system, best_ovr=best_ovr,
                         second_ovr=second_ovr, margin=best_ovr - second_ovr, tied=tied,
                         noise_floor=floor)


def noise_floor(ovr_framings: Sequence[float] | None) -> float:
    """The metric noise of one output: the sample SD of its OVR over framings.

    The SD (not the half-range) estimates the spread of a single framing's score whatever the
    number of framings, so floors of runs with 2 or 5 framings compare. NaN with fewer than
    two finite framings.
    """
    try:
        items = list(ovr_framings)  # type: ignore[arg-type]
    except TypeError:  # None, or a NaN cell of a scores row without framings
        items = []
    values = [float(v) for v in items if _finite(float(v))]
    return statistics.stdev(values) if len(values) >= 2 else math.nan


def accepted_labels(label: str, tied_systems: str | None) -> tuple[str, ...]:
    """The labels a prediction may take and count as right: the clip's tied set
    (``tied_systems``, comma-joined) when its label is in it, else the label alone (an
    ``all_failed`` or cheapest-within label, or a label table from before tied sets)."""
    tied = tuple(t for t in str(tied_systems).split(",") if t) \
        if isinstance(tied_systems, str) else ()
    return tied if label in tied else (label,)
