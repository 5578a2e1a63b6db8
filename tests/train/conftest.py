"""Tiny labeled runs for the training tests (tones whose frequency depends on the label)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serec.runs import RunDir
from serec.train.synthetic import build_tone_run


@pytest.fixture
def tiny_run(tmp_path: Path) -> RunDir:
    return build_tone_run(tmp_path)
