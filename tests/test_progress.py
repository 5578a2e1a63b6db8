"""Progress lines without a terminal, the quiet switch and duration formatting."""

from __future__ import annotations

import io

from serec import progress
from serec.progress import Progress, format_duration


def test_plain_lines_show_done_total_rate_and_eta() -> None:
    out = io.StringIO()
    with Progress("label", total=4, stream=out, interval_s=0.0, live=False) as bar:
        bar.update(1)
        bar.update(3)
    lines = out.getvalue().splitlines()
    assert lines[0] == "label: started, 4 clips to do"
    assert lines[1].startswith("label: 1/4 clips (25%)") and "ETA" in lines[1]
    assert lines[-1].startswith("label: 4/4 clips (100%)") and "done in" in lines[-1]


def test_lines_are_throttled_by_interval() -> None:
    out = io.StringIO()
    with Progress("features", total=100, stream=out, interval_s=3600, live=False) as bar:
        for _ in range(100):
            bar.update()
    assert len(out.getvalue().splitlines()) == 2  # the start line and the final line


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress.set_quiet(True)
    try:
        with Progress("train", total=2, stream=out, interval_s=0.0, live=False) as bar:
            bar.update(2)
    finally:
        progress.set_quiet(False)
    assert out.getvalue() == ""


def test_format_duration() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(75) == "1m15s"
    assert format_duration(3725) == "1h02m"
