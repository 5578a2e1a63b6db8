"""Connecting to Ray: local mode by default, a cluster via ``--address`` or ``RAY_ADDRESS``."""

from __future__ import annotations

import copy
import logging
import os
import sys
import warnings
from typing import Any

import pandas as pd
import ray

from serec import progress

# Known third-party warnings that say nothing a serec user can act on (message regexes).
NOISY_WARNINGS = (
    r".*pkg_resources is deprecated.*",
    r".*`resume_download` is deprecated.*",
    r".*The least populated class in y has only.*",
    r".*torch\.meshgrid: in an upcoming release.*",
    r".*You are using `torch\.load` with `weights_only=False`.*",
    r".*Tip: In future versions of Ray, Ray will no longer override accelerator.*",
    r".*set RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO.*",
    # Ray 2.60's map_batches has no named parameter for max_retries/max_task_retries yet.
    r".*`ray_remote_args` is deprecated.*",
)
# Loggers whose INFO/WARNING chatter hides serec's own progress lines (errors still show).
NOISY_LOGGERS = ("ray.data", "ray.tune", "ray.train", "ray.air", "filelock", "urllib3",
                 "numba", "matplotlib")


def quiet_library_warnings() -> None:
    """Filter the known noisy warnings and raise chatty library loggers to ERROR (errors
    always show)."""
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Start or join Ray once per process; keeps an existing session (tests, jobs).

    Worker output reaches the driver (``log_to_driver``), so an actor's traceback shows in
    ``ray job logs``; Ray Data draws its own progress bars only on a terminal (elsewhere
    serec's :class:`serec.progress.Progress` writes plain lines).
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs.setdefault("logging_level", logging.ERROR)
    kwargs.setdefault("log_to_driver", True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        kwargs.setdefault("include_dashboard", False)
        ray.init(**kwargs)
    live = sys.stderr.isatty() and not progress.is_quiet()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = live or bool(os.environ.get("SEREC_PROGRESS"))
    ctx.print_on_execution_start = False
    if not ctx.enable_progress_bars:
        # Without a terminal, Ray Data logs a progress table every few seconds.
        logging.getLogger("ray.data").setLevel(logging.ERROR)


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


def epoch_progress(desc: str, trials: int, epochs: int) -> Any:
    """A Ray Tune callback reporting finished epochs of all trials through
    :class:`serec.progress.Progress` (a trial stopped early counts its remaining epochs)."""
    from ray.tune import Callback

    class EpochProgress(Callback):
        # Tune pickles its callbacks with the experiment state: the bar (which holds a stream)
        # is made in setup(), on the driver, when the experiment starts.
        def __init__(self) -> None:
            self.bar: progress.Progress | None = None
            self.seen: dict[str, int] = {}

        def setup(self, **info) -> None:
            self.bar = progress.Progress(desc, trials * epochs, unit="epochs")

        def _update(self, n: int) -> None:
            if self.bar is None:
                self.setup()
            self.bar.update(n)

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.seen[trial.trial_id] = self.seen.get(trial.trial_id, 0) + 1
            self._update(1)

        def _finish(self, trial) -> None:
            self._update(max(0, epochs - self.seen.get(trial.trial_id, 0)))
            self.seen[trial.trial_id] = epochs

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._finish(trial)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._finish(trial)

        def on_experiment_end(self, trials, **info) -> None:
            if self.bar is not None:
                self.bar.close()

        def __getstate__(self) -> dict:
            return {**self.__dict__, "bar": None}

    return EpochProgress()


def capped_execution_options(object_store_bytes: float) -> ray.data.ExecutionOptions:
    """The session's Ray Data execution options with the blocks a plan keeps in the object
    store capped at ``object_store_bytes`` (Ray Data holds back upstream operators instead)."""
    options = copy.copy(ray.data.DataContext.get_current().execution_options)
    options.resource_limits = options.resource_limits.copy(
        object_store_memory=object_store_bytes)
    return options
