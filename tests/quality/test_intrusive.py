"""Intrusive metrics: SI-SDR properties, PESQ-WB / ESTOI ordering on real speech, error handling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from serec.audio import TARGET_SR, read_audio, resample
from serec.quality.intrusive import (
    INTRUSIVE_COLUMNS,
    estoi,
    intrusive_scores,
    pesq_wb,
    si_sdr,
)


def _noise_at_snr(signal: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise scaled so that signal-to-noise ratio (zero-mean powers) is ``snr_db``."""
    noise = np.random.default_rng(seed).standard_normal(signal.size)
    noise -= noise.mean()
    centred = signal - signal.mean()
    return noise * np.sqrt(np.sum(centred**2) / np.sum(noise**2) / 10 ** (snr_db / 10))


@pytest.fixture(scope="module")
def speech(corpus: Path) -> np.ndarray:
    return read_audio(corpus / "speech" / "vctk__p287_003.wav").astype(np.float64)


@pytest.fixture
def tone() -> np.ndarray:
    t = np.arange(3 * TARGET_SR) / TARGET_SR
    return 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1230 * t)


def test_si_sdr_of_identical_signals_is_very_high(tone: np.ndarray) -> None:
    assert si_sdr(tone, tone) > 100.0


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_si_sdr_matches_known_snr(tone: np.ndarray, snr_db: float) -> None:
    noisy = tone + _noise_at_snr(tone, snr_db)
    assert si_sdr(tone, noisy) == pytest.approx(snr_db, abs=0.1)


def test_si_sdr_is_scale_and_offset_invariant(tone: np.ndarray) -> None:
    noisy = tone + _noise_at_snr(tone, 5.0)
    base = si_sdr(tone, noisy)
    assert si_sdr(tone, 0.1 * noisy) == pytest.approx(base, abs=1e-9)
    assert si_sdr(3.0 * tone, noisy) == pytest.approx(base, abs=1e-9)
    assert si_sdr(tone, noisy + 0.05) == pytest.approx(base, abs=1e-9)


def test_si_sdr_truncates_to_shorter_signal(tone: np.ndarray) -> None:
    noisy = tone + _noise_at_snr(tone, 10.0)
    padded = np.concatenate([noisy, np.ones(1000)])
    assert si_sdr(tone, padded) == pytest.approx(si_sdr(tone, noisy), abs=1e-12)


@pytest.mark.corpus
def test_clean_scores_beat_noisy_on_real_speech(speech: np.ndarray) -> None:
    noisy = speech + _noise_at_snr(speech, 5.0)
    clean_scores = intrusive_scores(speech, speech)
    noisy_scores = intrusive_scores(speech, noisy)
    assert tuple(clean_scores) == INTRUSIVE_COLUMNS
    assert clean_scores["pesq_wb"] > 4.0 > noisy_scores["pesq_wb"]
    assert clean_scores["estoi"] > 0.99 > noisy_scores["estoi"]
    assert clean_scores["si_sdr"] > noisy_scores["si_sdr"]
    assert noisy_scores["si_sdr"] == pytest.approx(5.0, abs=0.1)


@pytest.mark.corpus
def test_real_noisy_pair_scores_below_clean(corpus: Path, speech: np.ndarray) -> None:
    noisy = read_audio(corpus / "pairs" / "vbd__p287_003_noisy.wav")
    assert pesq_wb(speech, noisy) < pesq_wb(speech, speech)
    assert estoi(speech, noisy) < estoi(speech, speech)


def test_pesq_returns_nan_when_pesq_cannot_score(tone: np.ndarray) -> None:
    silence = np.zeros(TARGET_SR)
    assert math.isnan(pesq_wb(silence, silence + 1e-9))  # no utterance detected
    assert math.isnan(pesq_wb(silence, silence))
    too_short = tone[: TARGET_SR // 5]  # pesq needs at least 0.25 s
    scores = intrusive_scores(too_short, too_short)
    assert math.isnan(scores["pesq_wb"])
    assert scores["si_sdr"] > 100.0


def test_pesq_resamples_other_rates(tone: np.ndarray) -> None:
    noisy = tone + _noise_at_snr(tone, 10.0)
    at_16k = pesq_wb(tone, noisy)
    at_48k = pesq_wb(resample(tone, TARGET_SR, 48_000), resample(noisy, TARGET_SR, 48_000),
                     sr=48_000)
    assert at_48k == pytest.approx(at_16k, abs=0.2)


@pytest.mark.parametrize(("reference", "estimate", "message"), [
    (np.zeros((2, 100)), np.zeros(100), "1-D"),
    (np.zeros(0), np.zeros(100), "empty"),
    (np.array([0.0, np.inf]), np.zeros(2), "finite"),
    (np.zeros(100), np.ones(100), "constant"),
])
def test_invalid_input_raises(reference: np.ndarray, estimate: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        si_sdr(reference, estimate)
