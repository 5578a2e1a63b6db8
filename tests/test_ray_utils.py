"""Ray helpers: noisy library warnings filtered (errors kept), epoch progress of Tune trials."""

from __future__ import annotations

import io
import logging
import warnings
from types import SimpleNamespace

from serec import progress
from serec.ray_utils import NOISY_LOGGERS, epoch_progress, quiet_library_warnings


def test_noisy_warnings_are_filtered_and_errors_are_not(caplog, monkeypatch):
    for name in NOISY_LOGGERS:  # restored after the test
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        warnings.warn("pkg_resources is deprecated as an API", UserWarning, stacklevel=1)
        warnings.warn("a warning serec users must see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning serec users must see"]
    with caplog.at_level(logging.INFO):
        logging.getLogger("ray.data").info("a progress table")
        logging.getLogger("ray.data").error("an actor failed on clip c1")
    assert [r.getMessage() for r in caplog.records] == ["an actor failed on clip c1"]


def test_epoch_progress_counts_epochs_and_fills_early_stops(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    callback = epoch_progress("train expert", trials=2, epochs=3)
    first, second = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for trial in (first, second, first):
        callback.on_trial_result(0, [], trial, {})
    assert callback.bar.done == 3
    callback.on_trial_complete(0, [], first)     # ran all 3 epochs
    callback.on_trial_complete(0, [], second)    # stopped early after 1: counts its other 2
    callback.on_experiment_end([])
    assert callback.bar.done == 6
    lines = stream.getvalue().splitlines()
    assert lines[0] == "train expert: started, 6 epochs to do"
    assert lines[-1].startswith("train expert: 6/6 epochs (100%)") and "ETA 0s" in lines[-1]
