"""Room impulse responses: simulated RT60 hits the request, recorded RIRs load aligned."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from serec.audio import TARGET_SR
from serec.data.rooms import (
    EARLY_MS,
    PRE_DIRECT_MS,
    load_rirs,
    random_room,
    reverberate,
    simulate_rir,
)


def schroeder_t30(rir: np.ndarray, sr: int = TARGET_SR) -> float:
    """RT60 from a least-squares line through the -5..-35 dB part of the Schroeder curve
    (independent of the T20 estimate the module uses)."""
    energy = np.cumsum(np.square(rir[::-1], dtype=np.float64))[::-1]
    decay_db = 10 * np.log10(energy / energy[0] + 1e-300)
    fit = (decay_db <= -5) & (decay_db >= -35)
    slope, _ = np.polyfit(np.flatnonzero(fit) / sr, decay_db[fit], 1)
    return -60.0 / slope


def decaying_noise_rir(rt60_s: float, sr: int, rng: np.random.Generator,
                       delay_s: float = 0.01) -> np.ndarray:
    """A direct-path impulse after ``delay_s`` and an exponentially decaying noise tail."""
    n = int(1.2 * rt60_s * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 0.2 * 10 ** (-3 * t / rt60_s)
    rir = np.concatenate([np.zeros(int(delay_s * sr)), [1.0], tail])
    return rir


@pytest.mark.parametrize(("seed", "rt60"), [(0, 0.3), (1, 0.6), (2, 1.0), (3, 0.8)])
def test_simulated_rt60_matches_request(seed, rt60):
    rir = simulate_rir(random_room(np.random.default_rng(seed)), rt60)
    assert rir.rt60_s == pytest.approx(rt60, rel=0.05)
    assert schroeder_t30(rir.samples) == pytest.approx(rt60, rel=0.15)
    assert rir.rir_id.startswith("sim-")


def test_simulation_is_deterministic_and_aligned():
    room = random_room(np.random.default_rng(7))
    first, second = simulate_rir(room, 0.5), simulate_rir(room, 0.5)
    np.testing.assert_array_equal(first.samples, second.samples)
    assert first.rir_id == second.rir_id != room.rir_id(0.6)
    peak = int(np.argmax(np.abs(first.samples)))
    assert peak <= round(PRE_DIRECT_MS * TARGET_SR / 1000)
    assert first.samples[peak] == pytest.approx(1.0)


def test_room_geometry_keeps_talker_and_mic_inside():
    for seed in range(20):
        room = random_room(np.random.default_rng(seed))
        for point in (room.source, room.mic):
            assert all(0.5 - 1e-3 <= p <= s - 0.5 + 1e-3 for p, s in zip(point, room.size,
                                                                         strict=True))


def test_reverberate_splits_early_and_late(rng):
    rir = simulate_rir(random_room(np.random.default_rng(3)), 0.7)
    speech = rng.standard_normal(TARGET_SR).astype(np.float32) * 0.1
    reverberant, early = reverberate(speech, rir)
    assert reverberant.shape == early.shape == speech.shape
    late = reverberant - early
    assert np.mean(late ** 2) > 0.05 * np.mean(early ** 2)     # audible late reverberation
    # The early part is the convolution with the first 50 ms of the response only.
    end = round((PRE_DIRECT_MS + EARLY_MS) * TARGET_SR / 1000)
    np.testing.assert_allclose(early[:200], np.convolve(speech, rir.samples[:end])[:200],
                               atol=1e-9)


def test_recorded_rirs_are_resampled_aligned_and_measured(tmp_path, rng):
    folder = tmp_path / "rirs"
    folder.mkdir()
    rir = decaying_noise_rir(0.6, 48_000, rng)
    sf.write(folder / "hall.wav", np.stack([rir, np.roll(rir, 30)], axis=1), 48_000)
    sf.write(folder / "booth.flac", decaying_noise_rir(0.25, 16_000, rng) * 0.5, 16_000)
    loaded = {r.rir_id: r for r in load_rirs([str(folder)])}
    assert set(loaded) == {"rec:hall", "rec:booth"}
    assert loaded["rec:hall"].rt60_s == pytest.approx(0.6, rel=0.1)
    assert loaded["rec:booth"].rt60_s == pytest.approx(0.25, rel=0.1)
    for r in loaded.values():
        assert np.argmax(np.abs(r.samples)) == round(PRE_DIRECT_MS * TARGET_SR / 1000)
        assert np.max(np.abs(r.samples)) == pytest.approx(1.0)


def test_unreadable_or_missing_rirs_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--rir-dir"):
        load_rirs([str(tmp_path)])
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="--rir-dir: cannot read"):
        load_rirs([str(tmp_path)])
