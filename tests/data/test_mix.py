"""``serec data mix``: exact SNR, determinism, unique ids, speaker parsing, conditions."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serec.audio import TARGET_SR, read_audio
from serec.cli import main
from serec.data.manifest import parse_speaker
from serec.data.mix import (
    CONDITIONS,
    MixSettings,
    allocate_conditions,
    at_level,
    combine,
    measured_snr,
    mix_at_snr,
    mix_files,
    noise_bed,
    parse_conditions,
    parse_count_range,
)
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


# -- conditions ----------------------------------------------------------------------------
ALL_CONDITIONS = {c: 1.0 for c in CONDITIONS}


def _read(row) -> tuple[np.ndarray, np.ndarray]:
    return read_audio(row.path), read_audio(row.clean_path)


def _check_conditions(frame: pd.DataFrame, settings: MixSettings) -> None:
    """Every clip is what its manifest row says."""
    for row in frame.itertuples():
        noisy, clean = _read(row)
        assert np.abs(noisy).max() <= 0.99 + 1e-4 and np.abs(clean).max() <= 0.99 + 1e-4
        if row.condition == "clean":
            assert np.isnan(row.snr_db) and row.n_noises == 0 and row.noise_type == "none"
            np.testing.assert_array_equal(noisy, clean)
            continue
        low, high = settings.snr_range(row.condition)
        assert low - 0.01 <= row.snr_db <= high + 0.01
        if row.condition == "reverb":
            # noisy - clean also holds the late reverberation, so it is below the noise SNR.
            assert measured_snr(clean, noisy) < row.snr_db - 0.5
            assert settings.rt60_s[0] * 0.94 <= row.rt60_s <= settings.rt60_s[1] * 1.06
            assert row.rir_id.startswith("sim-")
        else:
            assert measured_snr(clean, noisy) == pytest.approx(row.snr_db, abs=0.1)
            assert pd.isna(row.rt60_s) and pd.isna(row.rir_id)
        if row.condition == "talker":
            assert row.interferer_speaker_id != row.speaker_id
            assert row.noise_type == "talker" and row.n_noises == 1
            assert row.noise_id != row.source_id
        else:
            assert pd.isna(row.interferer_speaker_id)
        if row.condition in ("noise", "reverb", "near_clean"):
            low_n, high_n = settings.noises_per_clip
            assert low_n <= row.n_noises <= high_n
            assert len(row.noise_id.split("+")) == row.n_noises


def test_parse_conditions_normalises_shares():
    assert parse_conditions("noise,reverb") == {"noise": 0.5, "reverb": 0.5}
    assert parse_conditions("noise=3, clean=1") == {"noise": 0.75, "clean": 0.25}
    assert parse_conditions("noise=1,talker=0") == {"noise": 1.0}


@pytest.mark.parametrize(("text", "message"), [
    ("noise,echo", "unknown condition 'echo'"),
    ("noise=-1", "must be a number >= 0"),
    ("noise=x", "needs a number"),
    ("noise=0", "at least one condition"),
    ("noise,noise", "given twice"),
])
def test_parse_conditions_rejects_bad_input(text, message):
    with pytest.raises(ValueError, match=message):
        parse_conditions(text)


def test_count_range():
    assert parse_count_range("2") == (2, 2)
    assert parse_count_range("1-3") == (1, 3)
    with pytest.raises(ValueError, match="--noises-per-clip"):
        parse_count_range("a-b")


@pytest.mark.parametrize(("changes", "message"), [
    (dict(snr_db=(10.0, 0.0)), "--snr-min 10 is above --snr-max 0"),
    (dict(talker_snr_db=(5.0, 1.0)), "--talker-snr-min 5 is above --talker-snr-max 1"),
    (dict(near_clean_snr_db=(40.0, 30.0)), "--clean-snr-min 40 is above"),
    (dict(rt60_s=(0.9, 0.5)), "--rt60-min 0.9 is above --rt60-max 0.5"),
    (dict(rt60_s=(0.0, 0.5)), "--rt60-min/--rt60-max must lie within"),
    (dict(noises_per_clip=(0, 2)), "--noises-per-clip"),
    (dict(noises_per_clip=(3, 2)), "--noises-per-clip"),
    (dict(conditions={"echo": 1.0}), "unknown condition"),
    (dict(snr_db=(float("nan"), 5.0)), "finite"),
])
def test_settings_reject_bad_flags(changes, message):
    with pytest.raises(ValueError, match=message):
        MixSettings(**changes)


def test_allocation_has_exact_counts_and_depends_on_seed():
    shares = parse_conditions("noise,reverb,talker,near_clean")
    first = allocate_conditions(shares, 60, seed=0)
    assert {c: first.count(c) for c in set(first)} == dict.fromkeys(shares, 15)
    assert allocate_conditions(shares, 60, seed=0) == first
    assert allocate_conditions(shares, 60, seed=1) != first
    odd = allocate_conditions(parse_conditions("noise=2,clean=1"), 10, seed=0)
    assert odd.count("noise") == 7 and odd.count("clean") == 3


def test_reverb_snr_is_exact_against_reverberant_speech(rng):
    from serec.data.rooms import random_room, reverberate, simulate_rir

    speech = at_level(rng.standard_normal(TARGET_SR), -20.0)
    reverberant, early = reverberate(speech, simulate_rir(random_room(rng), 0.6))
    noise = rng.standard_normal(TARGET_SR)
    mixture = combine(reverberant, early, noise, 5.0)
    in_mix = reverberant * mixture.peak_scale
    assert measured_snr(in_mix, mixture.noisy) == pytest.approx(5.0, abs=1e-3)
    np.testing.assert_allclose(mixture.clean, early * mixture.peak_scale, atol=1e-6)


def test_several_noises_are_all_in_the_mix(rng):
    tone = np.sin(2 * np.pi * 1000 * np.arange(TARGET_SR) / TARGET_SR)
    hiss = rng.standard_normal(TARGET_SR)
    bed, _ = noise_bed([tone, hiss], TARGET_SR, rng)
    spectrum = np.abs(np.fft.rfft(bed)) ** 2
    tone_share = spectrum[995:1006].sum() / spectrum.sum()
    assert 0.1 < tone_share < 0.9          # neither noise drowns the other (0..6 dB apart)


def test_every_condition_is_what_the_manifest_says(tmp_path, rng):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    settings = MixSettings(conditions=ALL_CONDITIONS, noises_per_clip=(1, 3),
                           rt60_s=(0.3, 0.6))
    frame = mix_files(RunDir.of(tmp_path / "run"), [str(speech)], [str(noise)], clips=15,
                      snr_min=-5, snr_max=20, seed=3, settings=settings)
    assert frame["condition"].value_counts().to_dict() == dict.fromkeys(CONDITIONS, 3)
    manifest = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert list(manifest["clip_id"]) == list(frame["clip_id"]) and manifest["clip_id"].is_unique
    _check_conditions(manifest, replace(settings, snr_db=(-5, 20)))
    assert manifest["n_noises"].max() > 1


def test_conditions_are_deterministic_and_resume(tmp_path, rng):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    settings = MixSettings(conditions=ALL_CONDITIONS, noises_per_clip=(1, 2))
    runs = [tmp_path / "a", tmp_path / "b"]
    frames = [mix_files(RunDir.of(r), [str(speech)], [str(noise)], clips=10, snr_min=0,
                        snr_max=10, seed=4, settings=settings) for r in runs]
    assert list(frames[0]["clip_id"]) == list(frames[1]["clip_id"])
    assert _digest(runs[0]) == _digest(runs[1])
    before = {p: p.stat().st_mtime_ns for p in (runs[0] / "audio").rglob("*.wav")}
    again = mix_files(RunDir.of(runs[0]), [str(speech)], [str(noise)], clips=10, snr_min=0,
                      snr_max=10, seed=4, settings=settings)
    assert {p: p.stat().st_mtime_ns for p in (runs[0] / "audio").rglob("*.wav")} == before
    assert list(again["clip_id"]) == list(frames[0]["clip_id"])
    assert len(pd.read_parquet(runs[0] / "manifest.parquet")) == 10


def test_recorded_rirs_are_used_for_reverb(tmp_path, rng):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    rirs = tmp_path / "rirs"
    rirs.mkdir()
    t = np.arange(int(0.5 * TARGET_SR)) / TARGET_SR
    sf.write(rirs / "office.wav", np.concatenate(
        [[1.0], 0.2 * rng.standard_normal(t.size) * 10 ** (-3 * t / 0.4)]), TARGET_SR)
    frame = mix_files(RunDir.of(tmp_path / "run"), [str(speech)], [str(noise)], clips=3,
                      snr_min=0, snr_max=10, seed=0,
                      settings=MixSettings(conditions={"reverb": 1.0}, rir_dirs=(str(rirs),)))
    assert set(frame["rir_id"]) == {"rec:office"}
    assert frame["rt60_s"].to_numpy() == pytest.approx(0.4, rel=0.1)


def test_talker_needs_two_speakers(tmp_path, rng):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    with pytest.raises(ValueError, match="at least two speakers"):
        mix_files(RunDir.of(tmp_path / "run"), [str(speech / "p225_000.wav")], [str(noise)],
                  clips=2, snr_min=0, snr_max=5, seed=0,
                  settings=MixSettings(conditions={"talker": 1.0}))


def test_talker_and_clean_need_no_noise_files(tmp_path, rng):
    speech, _ = _synthetic_dirs(tmp_path, rng)
    frame = mix_files(RunDir.of(tmp_path / "run"), [str(speech)], [], clips=4, snr_min=0,
                      snr_max=5, seed=0, settings=MixSettings(conditions={"talker": 1.0,
                                                                          "clean": 1.0}))
    assert sorted(frame["condition"]) == ["clean", "clean", "talker", "talker"]
    with pytest.raises(FileNotFoundError, match="--noise is needed"):
        mix_files(RunDir.of(tmp_path / "other"), [str(speech)], [], clips=2, snr_min=0,
                  snr_max=5, seed=0)


def test_cli_mixes_conditions_and_rejects_bad_flags(tmp_path, rng, capsys):
    speech, noise = _synthetic_dirs(tmp_path, rng)
    base = ["data", "mix", "--run", str(tmp_path / "run"), "--speech", str(speech),
            "--noise", str(noise), "--clips", "4"]
    assert main([*base, "--conditions", "noise,echo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["serec data mix: error: --conditions: unknown condition 'echo' "
                   "(known: noise, reverb, talker, near_clean, clean)"]
    assert main([*base, "--rt60-min", "1.5", "--rt60-max", "0.5"]) == 2
    assert "--rt60-min 1.5 is above --rt60-max 0.5" in capsys.readouterr().err
    assert main([*base, "--conditions", "talker=1,near_clean=1", "--clean-snr-min", "35",
                 "--noises-per-clip", "2"]) == 0
    manifest = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    near = manifest[manifest["condition"] == "near_clean"]
    assert len(near) == 2 and (near["snr_db"] >= 35 - 0.01).all()
    assert (near["n_noises"] == 2).all()


def test_mix_every_condition_on_real_corpus(tmp_path, corpus):
    settings = MixSettings(conditions=ALL_CONDITIONS, noises_per_clip=(1, 2))
    frame = mix_files(RunDir.of(tmp_path / "run"), [str(corpus / "speech")],
                      [str(corpus / "noise")], clips=10, snr_min=-5, snr_max=20, seed=2,
                      settings=settings)
    assert frame["condition"].value_counts().to_dict() == dict.fromkeys(CONDITIONS, 2)
    _check_conditions(pd.read_parquet(tmp_path / "run" / "manifest.parquet"), settings)
