"""Progress of long stages: done/total, rate and ETA.

On a terminal a live tqdm bar; otherwise (``ray job logs``, CI logs, pipes) one plain line every
``interval`` seconds and a last one at the end, so logs show progress without bar clutter.
Every stage reports through :class:`Progress`; ``-q`` turns it off with :func:`set_quiet`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO

_QUIET = False
DEFAULT_INTERVAL_S = float(os.environ.get("SEREC_PROGRESS_INTERVAL", "10"))


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) every progress report of this process."""
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    """Whether progress reports are silenced (``-q``)."""
    return _QUIET


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts finished units of one stage and reports them (context manager)."""

    def __init__(self, desc: str, total: int | None, unit: str = "clips",
                 stream: IO[str] | None = None, interval_s: float | None = None,
                 live: bool | None = None) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = DEFAULT_INTERVAL_S if interval_s is None else interval_s
        self.done = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar = None
        if _QUIET:
            return
        live = self.stream.isatty() if live is None else live
        if live:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", file=self.stream,
                             dynamic_ncols=True)
        else:
            self._write(f"{desc}: started, {total if total is not None else '?'} {unit} to do")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Record ``n`` more finished units."""
        self.done += n
        if _QUIET:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval_s:
            self._last_line = now
            self._write(self.line())

    def line(self) -> str:
        """``label: 12/60 clips (20%), 0.15 clips/s, ETA 5m20s``."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = max(self.total - self.done, 0)
            eta = format_duration(left / rate) if rate > 0 else "?"
            return (f"{self.desc}: {self.done}/{self.total} {self.unit} "
                    f"({self.done / self.total:.0%}), {rate:.2f} {self.unit}/s, ETA {eta}")
        return f"{self.desc}: {self.done} {self.unit}, {rate:.2f} {self.unit}/s"

    def close(self) -> None:
        """Finish the bar, or write the final line (with the elapsed time)."""
        if _QUIET:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        elapsed = format_duration(time.monotonic() - self.started)
        self._write(f"{self.line()} — done in {elapsed}")

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
