"""A test enhancer that raises on clips of one length (loaded by Ray workers by import path)."""

from __future__ import annotations

import numpy as np

from serec.enhancers.passthrough import Passthrough


class FaultyEnhancer(Passthrough):
    """Passthrough that raises ``RuntimeError`` on clips of exactly ``fail_samples`` samples."""

    default_params = {"fail_samples": 0}

    def enhance_batch(self, clips):
        if any(c.size == self.params["fail_samples"] for c in clips):
            if len(clips) > 1:
                raise RuntimeError("batch holds a poisoned clip")
            raise RuntimeError(f"planted failure on a {clips[0].size}-sample clip")
        return [np.asarray(c, np.float32).copy() for c in clips]
