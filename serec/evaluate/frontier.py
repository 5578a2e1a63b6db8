"""The cost-quality plane: single systems, their best fixed mixture (hull), router curves, AIQ.

Conventions (after RouterBench):

* A point is ``(mean compute seconds per clip, mean DNSMOS OVR)`` over the same clips.
* A *fixed mixture* sends each clip to system A with probability ``a`` and to B otherwise; its
  expected point lies on the segment between A and B. The best fixed mixture for a compute
  budget is therefore the upper concave envelope of the single systems' points, made
  non-decreasing (a larger budget may always be left unspent): :class:`Frontier`. It is the
  "zero router" a learned router has to beat.
* A router's operating points (a threshold or cost-weight sweep) can be mixed the same way, so
  its curve is the same envelope of its own points.
* AIQ (average improvement in quality) of a curve is the area under it over a compute range,
  divided by the range's width: the mean OVR over that range. Router and hull share the range
  from the larger of their lowest costs to the larger of their highest costs; a curve stays at
  its best quality beyond its most expensive point (so a router dearer than every single
  system is compared with the hull's best quality).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serec.evaluate.routing import PASSTHROUGH_ROW, SystemScores

# Enhancer kinds that run no neural network (DSP or nothing).
NETWORK_FREE_KINDS = frozenset({"passthrough", "spectral_gate", "webrtc", "wpe"})
# One pass of each of their networks over the clip's frames (DTLN's two stages and Hush's
# three networks count as one pass of the enhancer, like DeepFilterNet3's).
SINGLE_PASS_KINDS = frozenset({"rnnoise", "deepfilternet3", "nsnet2", "gtcrn", "dtln", "hush"})
CDIFFUSE_FAST_STEPS = 6


def _corrected_steps(params: Mapping[str, Any], steps: Any) -> float | None:
    """Score-network passes of a predictor-corrector sampler of ``steps`` steps."""
    if steps is None:
        return None
    corrector = params.get("corrector", "none")
    per_step = 1 + (int(params.get("corrector_steps", 1)) if corrector != "none" else 0)
    return float(int(steps) * per_step)


def _step_passes(step: Any, entries: Mapping[str, Any]) -> float | None:
    """Passes of one ``chain`` step: a kind, an inline entry or the name of another entry."""
    if isinstance(step, Mapping):
        params = {k: v for k, v in step.items() if k not in ("kind", "resources")}
        return network_passes(str(step.get("kind")), params, entries)
    entry = entries.get(str(step))
    if entry is not None:
        return network_passes(entry.kind, entry.params, entries)
    return network_passes(str(step), {}, entries)


def network_passes(kind: str, params: Mapping[str, Any],
                   entries: Mapping[str, Any] | None = None) -> float | None:
    """Forward passes of the enhancer's network(s) per clip; None where not known up front.

    0 for DSP/passthrough, 1 for single-pass networks, ``N x (1 + corrector steps)`` for the
    predictor-corrector diffusion samplers (plus one predictive pass for StoRM), 6 for
    CDiffuSE's fast schedule, the sum of its steps for a ``chain`` (``entries``: the parsed
    enhancer specs by name, for steps that name another entry). SGMSE+ without an explicit
    ``N`` (the checkpoint's own) or with an adaptive ODE sampler is unknown.
    """
    if kind == "chain":
        steps = [_step_passes(step, entries or {}) for step in params.get("steps", [])]
        return None if any(p is None for p in steps) else float(sum(steps))
    if kind in NETWORK_FREE_KINDS:
        return 0.0
    if kind in SINGLE_PASS_KINDS:
        return 1.0
    if kind == "sgmse":
        if params.get("sampler_type", "pc") != "pc":
            return None
        return _corrected_steps(params, params.get("N"))
    if kind == "storm":
        mode = params.get("mode", "storm")
        if mode == "denoiser":
            return 1.0
        diffusion = _corrected_steps(params, params.get("N"))
        if diffusion is None:
            return None
        return diffusion + (1.0 if mode == "storm" else 0.0)
    if kind == "cdiffuse":
        return float(CDIFFUSE_FAST_STEPS) if params.get("fast_sampling", True) else None
    return None


def upper_envelope(costs: Sequence[float], qualities: Sequence[float]) -> np.ndarray:
    """Vertices ``(K, 2)`` of the non-decreasing upper concave envelope of the points, by cost.

    Non-finite points are ignored; an empty input gives an empty array.
    """
    points = np.column_stack([np.asarray(costs, np.float64), np.asarray(qualities, np.float64)])
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return np.zeros((0, 2))
    # cheapest first; at equal cost the best quality first, so later duplicates are dominated
    points = points[np.lexsort((-points[:, 1], points[:, 0]))]
    hull: list[np.ndarray] = []
    for point in points:
        if hull and point[1] <= hull[-1][1]:
            continue  # no better than something cheaper: never on a non-decreasing envelope
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle vertex when it lies on or below the chord from x1 to the point
            if (y2 - y1) * (point[0] - x1) <= (point[1] - y1) * (x2 - x1):
                hull.pop()
            else:
                break
        hull.append(point)
    return np.array(hull)


@dataclass
class Frontier:
    """A non-decreasing concave quality-versus-compute curve through ``vertices``."""

    vertices: np.ndarray  # (K, 2): cost, quality; increasing in both

    @classmethod
    def of(cls, costs: Sequence[float], qualities: Sequence[float]) -> Frontier:
        return cls(upper_envelope(costs, qualities))

    @property
    def min_cost(self) -> float:
        return float(self.vertices[0, 0]) if len(self.vertices) else float("nan")

    @property
    def max_cost(self) -> float:
        return float(self.vertices[-1, 0]) if len(self.vertices) else float("nan")

    def quality_at(self, budget: float | np.ndarray) -> np.ndarray:
        """Best quality for a compute budget (NaN below the cheapest vertex)."""
        budget = np.asarray(budget, np.float64)
        if len(self.vertices) == 0:
            return np.full(budget.shape, np.nan)
        x, y = self.vertices[:, 0], self.vertices[:, 1]
        out = np.interp(budget, x, y, left=np.nan, right=y[-1])
        return np.where(budget < x[0], np.nan, out)

    def aiq(self, low: float, high: float, samples: int = 512) -> float:
        """Mean quality over ``[low, high]`` (area under the curve / width)."""
        if not (np.isfinite(low) and np.isfinite(high)) or high < low:
            return float("nan")
        if high == low:
            return float(self.quality_at(low))
        grid = np.linspace(low, high, samples)
        return float(np.trapezoid(self.quality_at(grid), grid) / (high - low))

    def to_dict(self) -> dict[str, list[float]]:
        return {"cost_s": self.vertices[:, 0].tolist(), "mean_ovr": self.vertices[:, 1].tolist()}


def shared_range(router: Frontier, hull: Frontier) -> tuple[float, float]:
    """The compute range on which router and hull AIQ are compared."""
    return max(router.min_cost, hull.min_cost), max(router.max_cost, hull.max_cost)


def cost_weighted_choice(probs: np.ndarray, costs: np.ndarray, weight: float) -> np.ndarray:
    """Index per row of ``argmax_s P(s) - weight * cost(s)``.

    ``probs`` is ``(N, S)``, ``costs`` ``(S,)`` seconds per clip (or ``(N, S)``). A larger
    ``weight`` never picks a more expensive system for a clip: at weight 0 this is the most
    probable class, and the cheapest system as the weight grows.
    """
    scores = np.asarray(probs, np.float64) - weight * np.asarray(costs, np.float64)
    return np.argmax(scores, axis=1)


MARGIN_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)  # 1.0: never leaves the default


def deferring_choice(probs: np.ndarray, default: int, margin: float) -> np.ndarray:
    """Index per row of the most probable class when its probability exceeds that of class
    ``default`` by more than ``margin``, else ``default``: a router that leaves the default
    system (the best single) only where it is confident. Margin 0 is the most probable class;
    at 1 every row keeps the default."""
    probs = np.asarray(probs, np.float64)
    best = probs.argmax(axis=1)
    lead = probs[np.arange(len(probs)), best] - probs[:, default]
    return np.where(lead > margin, best, default)


def weight_grid(costs: Sequence[float], n: int = 24) -> np.ndarray:
    """Cost weights: 0 (the most probable system), then log-spaced up to a weight at which
    even the smallest cost difference outweighs any probability (the cheapest system)."""
    costs = np.unique(np.asarray(costs, np.float64)[np.isfinite(costs)])
    if len(costs) < 2:
        return np.zeros(1)
    low, high = 0.01 / float(costs[-1] - costs[0]), 2.0 / float(np.diff(costs).min())
    return np.concatenate([[0.0], np.geomspace(low, max(high, low), n - 1)])


# -- measured points on a SystemScores table -------------------------------------------------
@dataclass
class SystemCosts:
    """Where each system runs (``cpu``/``gpu``), its network passes, and the router's device."""

    device: dict[str, str]
    passes: dict[str, float | None]
    router_device: str = "cpu"

    @classmethod
    def from_config(cls, enhancers: Mapping[str, Mapping[str, Any]], passthrough: Sequence[str],
                    router_device: str = "cpu") -> SystemCosts:
        """From the config's enhancer entries: GPU when an enhancer reserves GPUs."""
        from serec.enhancers.registry import parse_enhancer_specs

        specs = parse_enhancer_specs(dict(enhancers))
        device = {n: ("gpu" if s.resources.num_gpus else "cpu") for n, s in specs.items()}
        passes = {n: network_passes(s.kind, s.params, specs) for n, s in specs.items()}
        for name in passthrough:
            device.setdefault(name, "cpu")
            passes.setdefault(name, 0.0)
        return cls(device, passes, router_device)


def operating_point(table: SystemScores, systems: Sequence[str],
                    router_s: np.ndarray | float, costs: SystemCosts) -> dict[str, float]:
    """Mean OVR and compute per clip of one set of choices: total, CPU-s, GPU-s and network
    passes (NaN when a chosen system's passes are unknown). Router seconds count on the
    router's device."""
    systems = np.asarray(systems, dtype=object)
    ovr, seconds = table.lookup(systems)
    router_s = np.broadcast_to(np.asarray(router_s, np.float64), seconds.shape)
    on_gpu = np.array([costs.device.get(str(s), "cpu") == "gpu" for s in systems], bool)
    router_on_gpu = costs.router_device == "gpu"
    gpu_s = np.where(on_gpu, seconds, 0.0) + (router_s if router_on_gpu else 0.0)
    cpu_s = np.where(on_gpu, 0.0, seconds) + (0.0 if router_on_gpu else router_s)
    passes = [costs.passes.get(str(s)) for s in systems]
    known = all(p is not None for p in passes)

    def mean(values: np.ndarray) -> float:
        values = np.asarray(values, np.float64)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    return {"mean_ovr": mean(ovr), "compute_s": mean(router_s + seconds), "cpu_s": mean(cpu_s),
            "gpu_s": mean(gpu_s),
            "network_passes": float(np.mean(passes)) if known and passes else float("nan")}


def single_points(table: SystemScores, costs: SystemCosts) -> list[dict[str, Any]]:
    """Every candidate and passthrough (the noisy input, free) on the table's clips."""
    n = len(table.clip_ids)
    names = list(dict.fromkeys([*table.candidates, PASSTHROUGH_ROW]))
    return [{"system": name, **operating_point(table, [name] * n, 0.0, costs)} for name in names]


def router_curve(name: str, parameter: str, values: Sequence[float],
                 choices: Sequence[Sequence[str]], router_s: Sequence[np.ndarray],
                 table: SystemScores, costs: SystemCosts, hull: Frontier) -> dict[str, Any]:
    """A router's operating points (one per parameter value), each with the best fixed
    mixture's quality at the same compute and the gap to it, plus AIQ of router and hull."""
    points = []
    for value, systems, seconds in zip(values, choices, router_s, strict=True):
        point = {parameter: float(value), **operating_point(table, systems, seconds, costs)}
        point["hull_ovr"] = float(hull.quality_at(point["compute_s"]))
        point["gap_to_hull"] = point["mean_ovr"] - point["hull_ovr"]
        points.append(point)
    curve = Frontier.of([p["compute_s"] for p in points], [p["mean_ovr"] for p in points])
    low, high = shared_range(curve, hull)
    return {"router": name, "parameter": parameter, "points": points,
            "frontier": curve.to_dict(), "aiq": curve.aiq(low, high),
            "hull_aiq": hull.aiq(low, high), "aiq_range_s": [low, high]}
