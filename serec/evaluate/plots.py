"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> bytes:
    """Counts with row-normalised shading (rows: truth, columns: prediction)."""
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.2 + 0.9 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, f"{int(count)}", ha="center", va="center",
                color="white" if shares[i, j] > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="share of true class")
    return _png(fig)


def regret_png(regret: np.ndarray, title: str = "router regret (oracle - chosen OVR)") -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    regret = np.asarray(regret, dtype=float)
    regret = regret[np.isfinite(regret)]
    ax.hist(regret, bins=min(30, max(5, len(regret) // 3)), color="tab:blue", alpha=0.8)
    ax.axvline(0.2, color="tab:red", linestyle="--", label="0.2 OVR")
    ax.set_xlabel("regret (DNSMOS OVR)")
    ax.set_ylabel("clips")
    ax.set_title(title)
    ax.legend()
    return _png(fig)


def compute_quality_points(rows: Sequence[dict[str, Any]]) -> dict[tuple[float, float],
                                                                    list[str]]:
    """Headline rows grouped by their (compute s/clip, mean OVR) point; rows without both are
    left out. The best single enhancer appears under two names at one point."""
    points: dict[tuple[float, float], list[str]] = {}
    for row in rows:
        x, y = row.get("compute_s"), row.get("mean_ovr")
        if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
            continue
        points.setdefault((float(x), float(y)), []).append(str(row["system"]))
    return points


def quality_compute_png(rows: Sequence[dict[str, Any]]) -> bytes:
    """Mean OVR against compute seconds per clip, one legend entry per point."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for (x, y), names in compute_quality_points(rows).items():
        router = any(n.startswith(("router", "full", "features", "boosted")) for n in names)
        marker = "*" if router else ("D" if "oracle" in names else "o")
        ax.scatter([x], [y], s=90 if router else 45, marker=marker, label=" = ".join(names))
    ax.set_xlabel("compute per clip (s)")
    ax.set_ylabel("mean DNSMOS OVR")
    ax.set_title("quality versus compute (test set)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return _png(fig)


def cost_quality_png(singles: Sequence[dict[str, Any]], hull: dict[str, Sequence[float]],
                     curves: Sequence[dict[str, Any]]) -> bytes:
    """Single systems, their best fixed mixture (hull) and every router's swept curve."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for point in singles:
        ax.scatter([point["compute_s"]], [point["mean_ovr"]], marker="o", s=45, zorder=3)
        ax.annotate(point["system"], (point["compute_s"], point["mean_ovr"]), fontsize=8,
                    textcoords="offset points", xytext=(4, 4))
    if hull["cost_s"]:
        x = [*hull["cost_s"], max(p["compute_s"] for p in singles)]
        y = [*hull["mean_ovr"], hull["mean_ovr"][-1]]
        ax.plot(x, y, color="black", linestyle="--", label="best fixed mixture (hull)")
    for curve in curves:
        points = sorted(curve["points"], key=lambda p: p["compute_s"])
        ax.plot([p["compute_s"] for p in points], [p["mean_ovr"] for p in points], marker=".",
                label=f"{curve['router']} ({curve['parameter']} sweep)")
    ax.set_xlabel("compute per clip (s, router + chosen enhancer)")
    ax.set_ylabel("mean DNSMOS OVR")
    ax.set_title("cost-quality plane (test set)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return _png(fig)
