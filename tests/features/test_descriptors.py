"""Routing descriptors: each one moves the way its definition says on tiny seeded signals."""

from __future__ import annotations

import numpy as np
import pytest

from serec.audio import TARGET_SR
from serec.features.cekl import cekl_features
from serec.features.descriptors import (
    AUDIO_FEATURE_COLUMNS,
    DESCRIPTOR_COLUMNS,
    audio_features,
    routing_descriptors,
)

COLUMN = {name: i for i, name in enumerate(DESCRIPTOR_COLUMNS)}


def _bursts(rng: np.random.Generator, noise: float, seconds: float = 2.0) -> np.ndarray:
    """Harmonic bursts (0.3 s on, 0.3 s off) over white noise of the given level."""
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    voiced = sum(np.sin(2 * np.pi * k * 130 * t) / k for k in range(1, 10))
    gate = (np.floor(t / 0.3) % 2 == 0).astype(float)
    return (0.2 * voiced * gate + noise * rng.standard_normal(t.size)).astype(np.float32)


def _d(audio: np.ndarray, name: str) -> float:
    return float(routing_descriptors(audio)[COLUMN[name]])


def test_snr_and_activity_follow_the_noise_level(rng):
    clean, noisy = _bursts(rng, 0.001), _bursts(rng, 0.2)
    assert _d(clean, "snr_est_db") > _d(noisy, "snr_est_db") + 10
    assert 0.3 < _d(clean, "speech_activity") < 0.7  # bursts half the time
    assert 0.0 <= _d(noisy, "speech_activity") <= 1.0


def test_flatness_and_tilt_tell_noise_from_harmonics(rng):
    white = (0.1 * rng.standard_normal(TARGET_SR)).astype(np.float32)
    harmonic = _bursts(rng, 0.0005)
    assert _d(white, "spectral_flatness") > 0.3 > _d(harmonic, "spectral_flatness")
    assert abs(_d(white, "spectral_tilt_db_oct")) < 1.0
    assert _d(harmonic, "spectral_tilt_db_oct") < -3.0  # 1/k harmonics fall off


def test_reverberation_slows_the_decay_after_offsets(rng):
    dry = _bursts(rng, 0.0005)
    tail = np.exp(-np.arange(int(0.6 * TARGET_SR)) / (0.12 * TARGET_SR))  # RT60 about 0.8 s
    wet = np.convolve(dry, tail * rng.standard_normal(tail.size))[: dry.size]
    wet = (wet / np.abs(wet).max() * 0.5).astype(np.float32)
    assert _d(dry, "reverb_decay_db_s") > 2 * _d(wet, "reverb_decay_db_s") > 0
    assert np.isnan(_d(np.full(TARGET_SR, 0.1, np.float32), "reverb_decay_db_s"))


def test_audio_features_are_cekl_then_descriptors(rng):
    audio = _bursts(rng, 0.05, seconds=1.0)
    values = audio_features(audio)
    assert len(values) == len(AUDIO_FEATURE_COLUMNS)
    np.testing.assert_allclose(values[:9], cekl_features(audio))
    np.testing.assert_allclose(values[9:], routing_descriptors(audio), equal_nan=True)
    assert np.all(np.isnan(routing_descriptors(np.zeros(0, np.float32))))
    with pytest.raises(ValueError):
        routing_descriptors(np.zeros((2, 10), np.float32))
