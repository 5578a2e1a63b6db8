"""Connecting to Ray: local mode by default, a cluster via ``--address`` or ``RAY_ADDRESS``."""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd
import ray


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Start or join Ray once per process; keeps an existing session (tests, jobs)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs.setdefault("logging_level", logging.WARNING)
    kwargs.setdefault("log_to_driver", False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        kwargs.setdefault("include_dashboard", False)
        ray.init(**kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(os.environ.get("SEREC_PROGRESS"))
    ctx.print_on_execution_start = False
    if not os.environ.get("SEREC_PROGRESS"):
        # Without a terminal, Ray Data logs a progress table every few seconds.
        logging.getLogger("ray.data").setLevel(logging.WARNING)


def dataset_from_frame(frame: pd.DataFrame, rows_per_block: int) -> ray.data.Dataset:
    """A dataset of ``frame`` in blocks of ``rows_per_block`` rows, so that work spreads.

    (``from_pandas(override_num_blocks=...)`` fails with pandas 3 in Ray 2.60.)
    """
    step = max(1, rows_per_block)
    return ray.data.from_pandas([frame.iloc[i:i + step] for i in range(0, len(frame), step)])


def node_id() -> str:
    """Id of the Ray node this code runs on ("local" outside Ray)."""
    if not ray.is_initialized():
        return "local"
    return ray.get_runtime_context().get_node_id()
