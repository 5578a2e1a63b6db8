"""The embedded demo corpus holds real (synthetic) speech: clean beats noisy on DNSMOS."""

from __future__ import annotations

import numpy as np
import pytest

from serec.audio import read_audio
from serec.data.demo import make_demo_corpus
from serec.data.mix import measured_snr
from serec.runs import RunDir


@pytest.mark.timeout(300)
def test_demo_corpus_contains_speech(tmp_path):
    from serec.quality.dnsmos import Dnsmos

    run = RunDir.of(tmp_path / "run")
    frame = make_demo_corpus(run, clips=10, seed=5, snr_min=-5, snr_max=5)
    assert len(frame) == 10 and frame["clip_id"].is_unique
    assert frame["speaker_id"].nunique() > 1 and frame["noise_type"].nunique() > 1
    noisy = [read_audio(p) for p in frame["path"]]
    clean = [read_audio(p) for p in frame["clean_path"]]
    for n, c, snr in zip(noisy, clean, frame["snr_db"], strict=True):
        assert measured_snr(c, n) == pytest.approx(snr, abs=0.1)
    dnsmos = Dnsmos()
    clean_ovr = np.mean([s.ovr for s in dnsmos.score_batch(clean)])
    noisy_ovr = np.mean([s.ovr for s in dnsmos.score_batch(noisy)])
    assert clean_ovr > noisy_ovr + 0.3
    again = make_demo_corpus(RunDir.of(tmp_path / "again"), clips=10, seed=5, snr_min=-5,
                             snr_max=5)
    assert list(again["clip_id"]) == list(frame["clip_id"])
