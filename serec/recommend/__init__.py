"""Recommendation: route any audio through the trained two-stage router and enhance each clip
with the one system it was routed to."""

from __future__ import annotations

from typing import Any

__all__ = ["recommend_files", "format_recommend_summary"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from serec.recommend import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'serec.recommend' has no attribute {name!r}")
