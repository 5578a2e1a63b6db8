"""The embedded demo corpus holds real (synthetic) speech: clean beats noisy on DNSMOS; its
default mix covers the conditions where enhancers differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serec.audio import read_audio
from serec.data.demo import DEMO_CONDITIONS, DEMO_SETTINGS, make_demo_corpus
from serec.data.mix import MixSettings, measured_snr
from serec.data.tts import DEMO_VOICES
from serec.runs import RunDir


@pytest.mark.timeout(300)
def test_demo_corpus_contains_speech(tmp_path):
    from serec.quality.dnsmos import Dnsmos

    run = RunDir.of(tmp_path / "run")
    noise_only = MixSettings(snr_db=(-5.0, 5.0))
    frame = make_demo_corpus(run, clips=10, seed=5, settings=noise_only)
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
    again = make_demo_corpus(RunDir.of(tmp_path / "again"), clips=10, seed=5,
                             settings=noise_only)
    assert list(again["clip_id"]) == list(frame["clip_id"])


@pytest.mark.timeout(300)
def test_demo_default_mixes_the_conditions(tmp_path):
    frame = make_demo_corpus(RunDir.of(tmp_path / "run"), clips=8, seed=1)
    assert frame["condition"].value_counts().to_dict() == dict.fromkeys(DEMO_CONDITIONS, 2)
    manifest = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    by = {c: manifest[manifest["condition"] == c] for c in DEMO_CONDITIONS}
    assert by["reverb"]["rt60_s"].between(0.4 * 0.94, 1.0 * 1.06).all()
    assert by["near_clean"]["snr_db"].between(30 - 0.01, 40 + 0.01).all()
    talkers = by["talker"]
    assert (talkers["interferer_speaker_id"] != talkers["speaker_id"]).all()
    assert set(talkers["interferer_speaker_id"]) <= {v.speaker_id for v in DEMO_VOICES}
    assert manifest["n_noises"].between(1, DEMO_SETTINGS.noises_per_clip[1]).all()
    for row in manifest[manifest["condition"] != "reverb"].itertuples():
        assert measured_snr(read_audio(row.clean_path), read_audio(row.path)) == \
            pytest.approx(row.snr_db, abs=0.1)


@pytest.mark.parametrize(("flags", "message"), [
    (["--conditions", "noise=abc"], "--conditions: 'noise=abc' needs a number after '='"),
    (["--talker-snr-min", "20"], "--talker-snr-min 20 is above --talker-snr-max 15"),
    (["--noises-per-clip", "0"], "--noises-per-clip must be N or MIN-MAX"),
    (["--clips", "0"], "--clips: must be at least 1"),
])
def test_demo_flags_are_checked_before_any_work(tmp_path, capsys, flags, message):
    from serec.cli import main

    assert main(["data", "demo", "--run", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "run" / "manifest.parquet").exists()
