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
                 fail_threshold: float = 2.0) -> LabelDecision | None:
    """Best candidate by DNSMOS OVR; ``all_failed`` when every candidate's OVR <= threshold.

    Ties go to the candidate listed first. Missing or NaN scores (an enhancer that raised)
    are ignored; ``None`` when no candidate has a score at all. ``margin`` is best minus
    second best (NaN with a single scored candidate).
    """
    scored = [(name, float(ovr_by_system[name])) for name in candidates
              if _finite(ovr_by_system.get(name))]
    if not scored:
        return None
    ranked = sorted(scored, key=lambda item: -item[1])  # stable: config order breaks ties
    best_system, best_ovr = ranked[0]
    second_ovr = ranked[1][1] if len(ranked) > 1 else math.nan
    label = ALL_FAILED if best_ovr <= fail_threshold else best_system
    return LabelDecision(label=label, best_system=best_system, best_ovr=best_ovr,
                         second_ovr=second_ovr, margin=best_ovr - second_ovr)
