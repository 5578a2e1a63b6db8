"""Test enhancers loaded by import path in Ray workers: one kills its worker, one counts calls."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from serec.enhancers.passthrough import Passthrough


class AbortingEnhancer(Passthrough):
    """Passthrough that ``os.abort()``s its process on a clip of exactly ``abort_samples``
    samples, as a native library's panic, a segfault or an out-of-memory kill would."""

    default_params = {"abort_samples": 0}

    def enhance_batch(self, clips):
        if any(c.size == self.params["abort_samples"] for c in clips):
            os.abort()
        return [np.asarray(c, np.float32).copy() for c in clips]


class CountingEnhancer(Passthrough):
    """Passthrough that appends one line per enhanced clip (its length) to ``log_path``."""

    default_params = {"log_path": ""}

    def enhance_batch(self, clips):
        with Path(self.params["log_path"]).open("a") as log:
            log.writelines(f"{c.size}\n" for c in clips)
        return [np.asarray(c, np.float32).copy() for c in clips]
