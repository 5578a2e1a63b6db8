"""Evaluation: two-stage prediction per fold, metrics, routing value, report and plots.

``evaluate_run`` and ``format_headline`` are imported on first use, so that importing the
two-stage core (:mod:`serec.evaluate.ensemble`) does not load matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_run", "format_headline"]


def __getattr__(name: str) -> Any:
    if name == "evaluate_run":
        from serec.evaluate.run import evaluate_run

        return evaluate_run
    if name == "format_headline":
        from serec.evaluate.report import format_headline

        return format_headline
    raise AttributeError(f"module 'serec.evaluate' has no attribute {name!r}")
