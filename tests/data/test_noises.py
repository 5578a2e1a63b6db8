"""Synthetic noise kinds: length, level, determinism, spectra and stationarity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from serec.data.noises import MIN_SAMPLES, NOISE_KINDS, NOISE_RMS, make_noise

SR = 16_000


def spectral_slope_db_per_octave(noise: np.ndarray, low_hz: float = 100.0,
                                 high_hz: float = 6000.0) -> float:
    """Least-squares slope of the Welch PSD (dB) against log2 frequency."""
    freqs, psd = signal.welch(noise, fs=SR, nperseg=4096)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    return float(np.polyfit(np.log2(freqs[band]), 10 * np.log10(psd[band]), 1)[0])


def frame_energy_cv(noise: np.ndarray, frame: int = 320) -> float:
    """Coefficient of variation of 20 ms frame energies (0 for perfectly steady noise)."""
    energy = np.square(noise[: noise.size // frame * frame]).reshape(-1, frame).mean(axis=1)
    return float(energy.std() / energy.mean())


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_kind_has_exact_length_level_and_finite_samples(kind: str):
    seconds = 1.23456
    noise = make_noise(kind, seconds, np.random.default_rng(0))
    assert noise.dtype == np.float32 and noise.ndim == 1
    assert noise.size == round(seconds * SR)
    assert np.isfinite(noise).all()
    assert np.sqrt(np.mean(np.square(noise, dtype=np.float64))) == pytest.approx(NOISE_RMS,
                                                                                  rel=1e-3)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_kind_is_deterministic_per_seed_and_varies_across_seeds(kind: str):
    first = make_noise(kind, 1.0, np.random.default_rng(7))
    again = make_noise(kind, 1.0, np.random.default_rng(7))
    other = make_noise(kind, 1.0, np.random.default_rng(8))
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_kind_handles_other_rates_and_tiny_lengths(kind: str):
    at_8k = make_noise(kind, 0.5, np.random.default_rng(1), sr=8000)
    tiny = make_noise(kind, MIN_SAMPLES / SR, np.random.default_rng(1))
    assert at_8k.size == 4000 and tiny.size == MIN_SAMPLES
    for noise in (at_8k, tiny):
        assert np.isfinite(noise).all()
        assert np.sqrt(np.mean(np.square(noise, dtype=np.float64))) == pytest.approx(NOISE_RMS,
                                                                                      rel=1e-3)


@pytest.mark.parametrize(("kind", "expected_slope"), [("white", 0.0), ("pink", -3.01),
                                                      ("brown", -6.02)])
def test_colored_noise_spectral_slopes(kind: str, expected_slope: float):
    noise = make_noise(kind, 20.0, np.random.default_rng(3))
    assert spectral_slope_db_per_octave(noise) == pytest.approx(expected_slope, abs=0.5)


@pytest.mark.parametrize("seed", range(6))
def test_hum_peaks_sit_on_mains_harmonics(seed: int):
    noise = make_noise("hum", 4.0, np.random.default_rng(seed))
    freqs, psd = signal.welch(noise, fs=SR, nperseg=SR)  # 1 Hz bins
    peaks, _ = signal.find_peaks(psd)
    strongest = freqs[peaks[np.argsort(psd[peaks])[::-1][:3]]]
    mains = 50.0 if np.all(np.abs(strongest / 50 - np.round(strongest / 50)) * 50 <= 1.5) \
        else 60.0
    assert np.all(np.abs(strongest - mains * np.round(strongest / mains)) <= 1.5), strongest
    assert np.all(np.round(strongest / mains) >= 1)
    assert psd[peaks].max() > 1e3 * np.median(psd)


def test_hum_uses_both_mains_frequencies_across_seeds():
    fundamentals = set()
    for seed in range(12):
        noise = make_noise("hum", 2.0, np.random.default_rng(seed))
        freqs, psd = signal.welch(noise, fs=SR, nperseg=SR)
        fundamentals.add(50 if psd[50] > psd[60] else 60)
    assert fundamentals == {50, 60}


def test_bursts_are_far_less_stationary_than_white_noise():
    rng = np.random.default_rng(11)
    white, bursts = make_noise("white", 10.0, rng), make_noise("bursts", 10.0, rng)
    assert frame_energy_cv(bursts) > 10 * frame_energy_cv(white)


@pytest.mark.parametrize(("kind", "min_kurtosis"), [("crackle", 50.0), ("rain", 4.5)])
def test_impulsive_kinds_are_heavy_tailed(kind: str, min_kurtosis: float):
    for seed in range(4):
        noise = make_noise(kind, 5.0, np.random.default_rng(seed)).astype(np.float64)
        kurtosis = np.mean(noise ** 4) / np.mean(noise ** 2) ** 2
        assert kurtosis > min_kurtosis  # Gaussian noise has 3


def test_babble_carries_speech_band_energy_with_syllabic_fluctuation():
    babble = make_noise("babble", 4.0, np.random.default_rng(2))
    freqs, psd = signal.welch(babble, fs=SR, nperseg=1024)
    speech_band = psd[(freqs >= 100) & (freqs <= 4000)].sum()
    assert speech_band > 0.8 * psd.sum()
    assert frame_energy_cv(babble) > 3 * frame_energy_cv(make_noise("white", 4.0,
                                                                    np.random.default_rng(2)))


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid kinds: white, pink"):
        make_noise("thunder", 1.0, np.random.default_rng(0))


def test_too_short_noise_is_rejected():
    with pytest.raises(ValueError, match="at least"):
        make_noise("white", 0.0, np.random.default_rng(0))


def test_there_are_at_least_ten_kinds():
    assert len(NOISE_KINDS) >= 10
    assert {"white", "pink", "brown", "babble", "hum", "machinery", "bursts",
            "crackle"} <= set(NOISE_KINDS)
