"""Shared shim: a ``jobs.<stage>`` module is ``serec <stage>`` run as a Ray job driver."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def run_subcommand(subcommand: Sequence[str], argv: Sequence[str] | None = None) -> int:
    """Run ``serec <subcommand> <argv>``; the driver joins the cluster through RAY_ADDRESS,
    which ``ray job submit`` sets."""
    from serec.cli import main

    return main([*subcommand, *(sys.argv[1:] if argv is None else argv)])
