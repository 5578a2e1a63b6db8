"""What routing is worth, from the measured ``scores/`` table: quality, regret and compute.

Conventions:

* A system's quality on a clip is its DNSMOS OVR in ``scores/``; an enhancer that failed on a
  clip (no OVR) counts as leaving the clip as it was (the noisy OVR).
* The oracle takes the best candidate per clip; it must run every candidate and score every
  output with DNSMOS, so its compute is the sum of both.
* ``random`` is the expected value of a uniformly random candidate (mean over candidates).
* A passthrough system (the ``passthrough`` kind, e.g. the ``all_failed`` fallback) yields the
  noisy OVR at no compute.
* The best single enhancer is chosen on the training pool (``fixed_best``), never on the
  clips it is then scored on.
* Gap closed = (system - best single) / (oracle - best single), on mean OVR.
* Regret = oracle OVR - the system's OVR on the same clip.
* Shift-null gain of a system: mean over clips of (its best OVR over the scored framings -
  its scored OVR). Picking the max over shifted copies of one output "gains" this much from
  metric noise alone, so it is the part of an oracle gap of that size that is noise (NaN
  when the run scored one framing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from serec.label.stages import NOISY

REGRET_LARGE = 0.2
SNR_EDGES = (0.0, 5.0, 10.0, 15.0, 20.0)
ORACLE = "oracle"
PASSTHROUGH_ROW = "passthrough"
RANDOM_ROW = "random"


@dataclass
class SystemScores:
    """OVR and compute per clip (rows, ``clip_id``) and system (columns: noisy + candidates)."""

    ovr: pd.DataFrame
    seconds: pd.DataFrame
    dnsmos_seconds: pd.DataFrame
    candidates: list[str]
    passthrough: frozenset[str] = field(default_factory=frozenset)
    missing: list[str] = field(default_factory=list)
    fixed_best: str | None = None  # the best single chosen elsewhere (the training pool)
    ovr_max_framing: pd.DataFrame | None = None  # max OVR over framings (None: one framing)

    @classmethod
    def from_scores(cls, scores: pd.DataFrame, clip_ids: Iterable[str], candidates: Sequence[str],
                    passthrough: Iterable[str] = (), extra: Sequence[str] = ()) -> SystemScores:
        """Pivot the long scores table to the given clips; clips without a noisy score are
        listed in ``missing`` and left out. ``extra`` systems (scored enhancers that are not
        candidates, e.g. a fallback) get columns too but never count as candidates."""
        clip_ids = [str(c) for c in clip_ids]
        scores = scores[scores["clip_id"].astype(str).isin(clip_ids)]
        scored = set(scores["system"].astype(str))
        unscored = [c for c in candidates if c not in scored]
        if unscored:
            raise ValueError(f"candidate(s) {unscored} have no rows in scores/ for these clips; "
                             "label the run with the same enhancers")
        systems = list(dict.fromkeys([NOISY, *candidates, *(e for e in extra if e in scored)]))

        def pivot(column: str) -> pd.DataFrame:
            table = scores.pivot_table(index="clip_id", columns="system", values=column,
                                       aggfunc="last", dropna=False)
            return table.reindex(index=clip_ids, columns=systems).astype(np.float64)

        ovr, seconds, dnsmos = pivot("ovr"), pivot("seconds"), pivot("dnsmos_seconds")
        present = ovr[NOISY].notna()
        missing = [c for c, ok in zip(clip_ids, present, strict=True) if not ok]
        ovr, seconds, dnsmos = ovr[present], seconds[present], dnsmos[present]
        for system in systems[1:]:
            ovr[system] = ovr[system].fillna(ovr[NOISY])
        framed = None
        # (framing count, max OVR) per score row, in one pass over the list cells
        framings = [(len(v), float(np.max(v))) if isinstance(v, (list, tuple, np.ndarray))
                    and len(v) else (0, np.nan)
                    for v in scores.get("ovr_framings", pd.Series(index=scores.index,
                                                                  dtype=object))]
        if any(count > 1 for count, _ in framings):
            scores = scores.assign(ovr_max_framing=[best for _, best in framings])
            framed = pivot("ovr_max_framing")[present]
        return cls(ovr, seconds.fillna(0.0), dnsmos.fillna(0.0), list(candidates),
                   frozenset(passthrough), missing, ovr_max_framing=framed)

    @property
    def clip_ids(self) -> list[str]:
        return list(self.ovr.index)

    def oracle(self) -> np.ndarray:
        return self.ovr[self.candidates].max(axis=1).to_numpy()

    def best_single(self) -> str:
        """``fixed_best`` when set, else the candidate with the highest mean OVR here."""
        if self.fixed_best is not None:
            return self.fixed_best
        means = self.ovr[self.candidates].mean(axis=0)
        return str(means.idxmax())

    def shift_null_gain(self, system: str) -> float:
        """Mean over clips of (max OVR over framings - scored OVR) of ``system``'s output;
        NaN without framings (see the module notes)."""
        if self.ovr_max_framing is None or system not in self.ovr_max_framing:
            return float("nan")
        gain = (self.ovr_max_framing[system] - self.ovr[system]).to_numpy(np.float64)
        return float(np.nanmean(gain)) if np.isfinite(gain).any() else float("nan")

    def mean_seconds(self) -> dict[str, float]:
        """Mean enhancer seconds per clip of every system column (noisy: 0)."""
        return {str(k): float(v) for k, v in self.seconds.mean(axis=0).fillna(0.0).items()}

    def lookup(self, systems: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(OVR, enhancer seconds)`` per clip of the system chosen for that clip (NaN when
        the system has no scores)."""
        systems = np.asarray(systems, dtype=object)
        if len(systems) != len(self.ovr):
            raise ValueError(f"{len(systems)} choices for {len(self.ovr)} clips")
        ovr = np.full(len(systems), np.nan)
        seconds = np.full(len(systems), np.nan)
        for system in np.unique(systems.astype(str)):
            rows = systems == system
            if system in self.ovr.columns:
                ovr[rows] = self.ovr[system].to_numpy()[rows]
                seconds[rows] = self.seconds[system].to_numpy()[rows]
            elif system in self.passthrough:
                ovr[rows] = self.ovr[NOISY].to_numpy()[rows]
                seconds[rows] = 0.0
        return ovr, seconds

    def run_all_seconds(self) -> np.ndarray:
        return self.seconds[self.candidates].sum(axis=1).to_numpy()

    def oracle_seconds(self) -> np.ndarray:
        """Every candidate plus DNSMOS of every candidate's output."""
        return self.run_all_seconds() + self.dnsmos_seconds[self.candidates].sum(axis=1).to_numpy()


def value(ovr: np.ndarray, oracle: np.ndarray, best_single_mean: float) -> dict[str, float]:
    """Mean OVR, gap closed and regret statistics of one system's per-clip OVR."""
    ovr = np.asarray(ovr, np.float64)
    oracle = np.asarray(oracle, np.float64)
    if len(ovr) == 0:
        return {k: float("nan") for k in ("mean_ovr", "gap_closed", "mean_regret", "p90_regret",
                                           "share_regret_gt_0_2")}
    regret = oracle - ovr
    gap = float(oracle.mean() - best_single_mean)
    return {"mean_ovr": float(np.mean(ovr)),
            "gap_closed": float((np.mean(ovr) - best_single_mean) / gap) if gap > 1e-9
            else float("nan"),
            "mean_regret": float(np.mean(regret)),
            "p90_regret": float(np.quantile(regret, 0.9)),
            "share_regret_gt_0_2": float(np.mean(regret > REGRET_LARGE))}


@dataclass
class RouterChoice:
    """One router's decisions on the clips of a :class:`SystemScores` (same order)."""

    name: str
    systems: np.ndarray          # system used per clip (fallback already applied)
    router_seconds: np.ndarray   # router compute per clip
    macro_f1: float | None = None


def headline_rows(table: SystemScores, routers: Sequence[RouterChoice]) -> list[dict[str, Any]]:
    """Rows: oracle, each router, best single, every single enhancer, passthrough, random."""
    oracle = table.oracle()
    best = table.best_single()
    best_mean = float(table.ovr[best].mean()) if len(table.ovr) else float("nan")

    def row(name: str, ovr: np.ndarray, compute: np.ndarray | float,
            f1: float | None = None) -> dict[str, Any]:
        return {"system": name, **value(ovr, oracle, best_mean),
                "compute_s": float(np.mean(compute)) if np.size(compute) else float("nan"),
                "macro_f1": f1}

    rows = [row(ORACLE, oracle, table.oracle_seconds())]
    for router in routers:
        ovr, seconds = table.lookup(router.systems)
        rows.append(row(router.name, ovr, router.router_seconds + seconds, router.macro_f1))
    rows.append({**row(f"best single ({best})", table.ovr[best].to_numpy(),
                       table.seconds[best].to_numpy())})
    for system in table.candidates:
        rows.append(row(system, table.ovr[system].to_numpy(), table.seconds[system].to_numpy()))
    if PASSTHROUGH_ROW not in table.candidates:  # else it is a candidate row already
        rows.append(row(PASSTHROUGH_ROW, table.ovr[NOISY].to_numpy(), 0.0))
    rows.append(row(RANDOM_ROW, table.ovr[table.candidates].mean(axis=1).to_numpy(),
                    table.seconds[table.candidates].mean(axis=1).to_numpy()))
    return rows


def regret(table: SystemScores, systems: Sequence[str]) -> np.ndarray:
    return table.oracle() - table.lookup(systems)[0]


def snr_band(snr_db: float | None) -> str:
    """``"<0 dB"``, ``"0-5 dB"``, ..., ``">=20 dB"``; ``"unknown"`` without an SNR."""
    if snr_db is None or not np.isfinite(snr_db):
        return "unknown"
    edges = SNR_EDGES
    if snr_db < edges[0]:
        return f"<{edges[0]:g} dB"
    for low, high in zip(edges, edges[1:], strict=False):
        if snr_db < high:
            return f"{low:g}-{high:g} dB"
    return f">={edges[-1]:g} dB"


def breakdown(table: SystemScores, groups: Sequence[str], systems: Sequence[str],
              truth: Sequence[str], pred: Sequence[str]) -> list[dict[str, Any]]:
    """Per group of clips: mean OVR of oracle, router, best single, passthrough and random,
    the share of the gap the router closes, and the router's accuracy against the labels."""
    groups = np.asarray(groups, dtype=object)
    systems = np.asarray(systems, dtype=object)
    correct = np.asarray(truth, dtype=object) == np.asarray(pred, dtype=object)
    best = table.best_single()
    oracle = table.oracle()
    router_ovr = table.lookup(systems)[0]
    best_ovr = table.ovr[best].to_numpy()
    rows = []
    for group in sorted({str(g) for g in groups}):
        rows_in = groups.astype(str) == group
        stats = value(router_ovr[rows_in], oracle[rows_in], float(best_ovr[rows_in].mean()))
        rows.append({"group": group, "n": int(rows_in.sum()),
                     "oracle": float(oracle[rows_in].mean()),
                     "router": stats["mean_ovr"], "best_single": float(best_ovr[rows_in].mean()),
                     "passthrough": float(table.ovr[NOISY].to_numpy()[rows_in].mean()),
                     "random": float(table.ovr[table.candidates].mean(axis=1)
                                     .to_numpy()[rows_in].mean()),
                     "gap_closed": stats["gap_closed"],
                     "mean_regret": stats["mean_regret"],
                     "accuracy": float(correct[rows_in].mean())})
    return rows
