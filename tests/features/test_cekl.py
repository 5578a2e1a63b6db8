"""CE/KL spectral self-similarity features against a plain double-loop reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from serec.audio import TARGET_SR, read_audio, resample
from serec.features.cekl import (
    CEKL_COLUMNS,
    cekl_dict,
    cekl_features,
    power_spectrogram,
)

SPEECH_FILE = "lsto__1688-142285-0000.wav"
REFERENCE_EPS = 1e-10


def _mean_var(values: list[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    return mean, math.fsum((v - mean) ** 2 for v in values) / len(values)


def reference_cekl(power: np.ndarray) -> np.ndarray:
    """The 9 statistics straight from the definitions, one (i, j) pair at a time."""
    dist = [row / (row.sum() + REFERENCE_EPS) for row in power]
    n = len(dist)
    if n < 2:
        return np.zeros(9)
    ce = [[-float(np.sum(dist[i] * np.log2(dist[j] + REFERENCE_EPS))) for j in range(n)]
          for i in range(n)]
    entropy = [ce[i][i] for i in range(n)]
    kl = [[max(0.0, ce[i][j] - entropy[i]) for j in range(n)] for i in range(n)]
    off = [(i, j) for i in range(n) for j in range(n) if i != j]
    adjacent = [(i, j) for i, j in off if abs(i - j) == 1]
    stats = [_mean_var(entropy)[1]]
    for matrix in (ce, kl):
        stats += [*_mean_var([matrix[i][j] for i, j in off]),
                  *_mean_var([matrix[i][j] for i, j in adjacent])]
    return np.array(stats)


def _n_samples(n_frames: int) -> int:
    """A length giving exactly ``n_frames`` centred frames (T = 1 + N // 512)."""
    return (n_frames - 1) * 512 + 100


def _modulated_noise(n_frames: int, seed: int = 7) -> np.ndarray:
    """Seeded noise whose level and colour change over time, so that frames differ."""
    rng = np.random.default_rng(seed)
    n = _n_samples(n_frames)
    t = np.arange(n) / TARGET_SR
    white = rng.standard_normal(n)
    coloured = np.convolve(white, np.ones(8) / 8, mode="same")
    mix = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t)
    tone = 0.2 * np.sin(2 * np.pi * (300 + 200 * t) * t)
    return (0.1 * (mix * white + (1 - mix) * coloured) + tone).astype(np.float32)


@pytest.fixture(scope="module")
def speech_2s(corpus: Path) -> np.ndarray:
    path = corpus / "speech" / SPEECH_FILE
    if not path.is_file():
        pytest.skip(f"{SPEECH_FILE} not in the corpus")
    audio = read_audio(path)
    return audio[TARGET_SR: 3 * TARGET_SR]


def test_power_spectrogram_matches_torch_stft() -> None:
    torch = pytest.importorskip("torch")
    audio = np.random.default_rng(3).standard_normal(8000)
    expected = torch.stft(torch.from_numpy(audio), n_fft=1024, hop_length=512,
                          window=torch.hann_window(1024, periodic=True, dtype=torch.float64),
                          center=True, pad_mode="reflect", return_complex=True)
    expected_power = (expected.abs() ** 2).numpy().T
    power = power_spectrogram(audio)
    assert power.dtype == np.float64
    assert power.shape == expected_power.shape == (1 + 8000 // 512, 513)
    np.testing.assert_allclose(power, expected_power, rtol=1e-9,
                               atol=1e-12 * expected_power.max())


@pytest.mark.parametrize("n_samples", [1, 511, 512, 1023, 16000])
def test_frame_count_is_one_plus_samples_over_hop(n_samples: int) -> None:
    audio = np.random.default_rng(0).standard_normal(n_samples)
    assert power_spectrogram(audio).shape == (1 + n_samples // 512, 513)


def test_matches_reference_on_seeded_noise() -> None:
    audio = _modulated_noise(n_frames=60)
    expected = reference_cekl(power_spectrogram(audio))
    np.testing.assert_allclose(cekl_features(audio), expected, rtol=1e-9, atol=1e-12)
    assert np.all(expected[[2, 4, 6, 8]] > 0), "statistics degenerate; the check would be weak"


def test_matches_reference_on_speech(speech_2s: np.ndarray) -> None:
    expected = reference_cekl(power_spectrogram(speech_2s))
    np.testing.assert_allclose(cekl_features(speech_2s), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_samples", [0, 1, 400, 511])
def test_fewer_than_two_frames_give_zeros(n_samples: int) -> None:
    audio = np.random.default_rng(1).standard_normal(n_samples)
    features = cekl_features(audio)
    assert features.shape == (9,)
    assert np.array_equal(features, np.zeros(9))


def test_two_frame_clip_matches_reference() -> None:
    audio = np.random.default_rng(2).standard_normal(800) * np.linspace(0.1, 1.0, 800)
    power = power_spectrogram(audio)
    assert power.shape[0] == 2
    features = cekl_features(audio)
    np.testing.assert_allclose(features, reference_cekl(power), rtol=1e-9, atol=1e-12)
    # With two frames the off-diagonal pairs are exactly the +-1 diagonals.
    np.testing.assert_allclose(features[[1, 2, 5, 6]], features[[3, 4, 7, 8]], rtol=1e-12)


def test_block_size_does_not_change_results() -> None:
    audio = _modulated_noise(n_frames=80, seed=11)
    whole = cekl_features(audio, max_block_frames=10_000)
    for block in (1, 7, 79):
        np.testing.assert_allclose(cekl_features(audio, max_block_frames=block), whole,
                                   rtol=1e-12, atol=1e-15)


def test_kl_is_clamped_at_zero_for_identical_frames() -> None:
    # An even period of 512 samples, tiled and closed with its first sample: with reflect
    # padding every frame then sees bit-identical samples, so every KL is 0 mathematically
    # while CE - H computed two ways differs by rounding of either sign.
    half = np.random.default_rng(5).standard_normal(257)
    period = np.concatenate([half, half[-2:0:-1]])
    audio = np.concatenate([np.tile(period, 40), period[:1]])
    power = power_spectrogram(audio)
    assert np.array_equal(power, np.broadcast_to(power[0], power.shape))
    features = cekl_features(audio, max_block_frames=16)
    kl_stats = features[5:]
    assert np.all(kl_stats >= 0.0)
    assert np.all(kl_stats < 1e-12)
    assert features[0] < 1e-20 and features[2] < 1e-20


def test_kl_statistics_are_non_negative(speech_2s: np.ndarray) -> None:
    for audio in (_modulated_noise(50), speech_2s):
        features = cekl_features(audio)
        assert np.all(features[5:] >= 0.0)
        assert np.all(features[[0, 2, 4, 6, 8]] >= 0.0)
        assert features[5] > 0.0


def test_stationary_white_noise_is_more_self_similar_than_speech(speech_2s: np.ndarray) -> None:
    noise = np.random.default_rng(9).standard_normal(speech_2s.size).astype(np.float32) * 0.1
    noise_features = cekl_dict(noise, TARGET_SR)
    speech_features = cekl_dict(speech_2s, TARGET_SR)
    assert noise_features["cekl_kl_off_mean"] < speech_features["cekl_kl_off_mean"]
    assert noise_features["cekl_kl_adj_mean"] < speech_features["cekl_kl_adj_mean"]


def test_shape_dtype_and_column_order() -> None:
    audio = _modulated_noise(20)
    features = cekl_features(audio)
    assert features.shape == (len(CEKL_COLUMNS),) == (9,)
    assert features.dtype == np.float64
    as_dict = cekl_dict(audio, TARGET_SR)
    assert tuple(as_dict) == CEKL_COLUMNS == (
        "cekl_h_var", "cekl_ce_off_mean", "cekl_ce_off_var", "cekl_ce_adj_mean",
        "cekl_ce_adj_var", "cekl_kl_off_mean", "cekl_kl_off_var", "cekl_kl_adj_mean",
        "cekl_kl_adj_var")
    assert list(as_dict.values()) == features.tolist()


def test_other_sample_rates_are_resampled_first() -> None:
    audio_48k = resample(_modulated_noise(30), TARGET_SR, 48_000)
    np.testing.assert_array_equal(cekl_features(audio_48k, sr=48_000),
                                  cekl_features(resample(audio_48k, 48_000, TARGET_SR)))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        cekl_features(np.zeros((2, 1000)))
    with pytest.raises(ValueError, match="NaN"):
        cekl_features(np.full(1000, np.nan))
    with pytest.raises(ValueError, match="max_block_frames"):
        cekl_features(np.ones(2000), max_block_frames=0)
