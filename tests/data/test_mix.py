"""``serec data mix``: exact SNR, determinism, unique ids, speaker parsing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serec.audio import TARGET_SR, read_audio
from serec.data.manifest import parse_speaker
from serec.data.mix import measured_snr, mix_at_snr, mix_files
from serec.runs import RunDir


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_mix_hits_requested_snr(rng, snr):
    clean = rng.standard_normal(TARGET_SR).astype(np.float32) * 0.2
    noise = rng.standard_normal(TARGET_SR // 3).astype(np.float32)  # shorter: must loop
    mixture = mix_at_snr(clean, noise, snr, rng, level_dbfs=-20.0)
    assert mixture.noisy.size == clean.size
    assert measured_snr(mixture.clean, mixture.noisy) == pytest.approx(snr, abs=0.01)
    assert np.abs(mixture.noisy).max() <= 0.99 + 1e-6


def test_peak_safe_scaling_is_recorded(rng):
    clean = np.sin(np.linspace(0, 200, TARGET_SR)).astype(np.float32)
    mixture = mix_at_snr(clean, rng.standard_normal(TARGET_SR), -5.0, rng, level_dbfs=-3.0)
    assert mixture.peak_scale < 1.0
    assert np.abs(mixture.noisy).max() == pytest.approx(0.99, abs=1e-4)
    assert mixture.snr_db == pytest.approx(-5.0, abs=0.01)


@pytest.mark.parametrize(
    ("name", "speaker"),
    [
        ("lsto__1688-142285-0000.wav", "librispeech:1688"),
        ("p287_001.wav", "vctk:p287"),
        ("vbd__p287_003_noisy.wav", "vctk:p287"),
        ("1001_DFA_ANG_XX.wav", "crema-d:1001"),
        ("arctic__cmu_arctic_us_aew_a0001.wav", "arctic:aew"),
        ("cmu_us_bdl_arctic/wav/arctic_a0001.wav", "arctic:bdl"),
        ("someone/take1.wav", "dir:someone"),
    ],
)
def test_speaker_parsing(name, speaker):
    assert parse_speaker(Path("/data") / name)[0] == speaker


def _synthetic_dirs(tmp_path: Path, rng) -> tuple[Path, Path]:
    speech, noise = tmp_path / "speech", tmp_path / "noise"
    speech.mkdir()
    noise.mkdir()
    for i, spk in enumerate(["p225", "p226", "p227"]):
        t = np.arange(int(1.5 * 22_050)) / 22_050
        sf.write(speech / f"{spk}_00{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)
                 * (1 + np.sin(2 * np.pi * 3 * t)), 22_050)
    sf.write(noise / "fan.wav", rng.standard_normal(48_000 // 2) * 0.5, 48_000)
    return speech, noise


def _digest(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted((run / "audio").rglob("*.wav"))}


def test_mix_is_deterministic_and_measured(tmp_path, rng):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    runs = [tmp_path / "a", tmp_path / "b"]
    frames = [mix_files(RunDir.of(r), [str(speech)], [str(noise)], clips=12, snr_min=-5,
                        snr_max=20, seed=7) for r in runs]
    assert list(frames[0]["clip_id"]) == list(frames[1]["clip_id"])
    assert frames[0]["clip_id"].is_unique
    assert _digest(runs[0]) == _digest(runs[1])
    manifest = pd.read_parquet(runs[0] / "manifest.parquet")
    assert len(manifest) == 12
    assert set(manifest["speaker_id"]) <= {"vctk:p225", "vctk:p226", "vctk:p227"}
    for row in manifest.itertuples():
        noisy, clean = read_audio(row.path), read_audio(row.clean_path)
        assert measured_snr(clean, noisy) == pytest.approx(row.snr_db, abs=0.1)
        assert -5 <= row.snr_db <= 20


def test_rerun_with_another_seed_appends_without_overwriting(tmp_path, rng):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    run = RunDir.of(tmp_path / "run")
    mix_files(run, [str(speech)], [str(noise)], clips=5, snr_min=0, snr_max=5, seed=1)
    before = _digest(tmp_path / "run")
    mix_files(run, [str(speech)], [str(noise)], clips=5, snr_min=0, snr_max=5, seed=1)
    mix_files(run, [str(speech)], [str(noise)], clips=5, snr_min=0, snr_max=5, seed=2)
    after = _digest(tmp_path / "run")
    assert all(after[name] == digest for name, digest in before.items())
    assert len(pd.read_parquet(tmp_path / "run" / "manifest.parquet")) == 10


def test_mix_real_corpus(tmp_path, corpus):
    run = RunDir.of(tmp_path / "run")
    frame = mix_files(run, [str(corpus / "speech")], [str(corpus / "noise")], clips=6,
                      snr_min=-5, snr_max=20, seed=1)
    assert len(frame) == 6 and frame["clip_id"].is_unique
    for row in frame.itertuples():
        assert measured_snr(read_audio(row.clean_path), read_audio(row.path)) == \
            pytest.approx(row.snr_db, abs=0.1)
        assert row.duration_s <= 10.0 + 1e-6
