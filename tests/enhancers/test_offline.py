"""Offline enhancers on real noisy speech: DNSMOS OVR improves; batching changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from serec.audio import TARGET_SR
from tests.enhancers.signals import OFFLINE_KINDS, speech_like

MIN_OVR_GAIN = 0.2  # measured: +0.42 spectral_gate, +1.22 rnnoise, +1.17 deepfilternet3


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", [k for k in OFFLINE_KINDS if k != "passthrough"])
def test_enhancing_noisy_speech_raises_dnsmos_ovr(built_enhancer, dnsmos, noisy_clips,
                                                  noisy_ovr: float, kind: str) -> None:
    enhanced = built_enhancer(kind).enhance_batch(noisy_clips)
    for clip, out in zip(noisy_clips, enhanced, strict=True):
        assert out.dtype == np.float32 and out.shape == clip.shape
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    enhanced_ovr = float(np.mean([s.ovr for s in dnsmos.score_batch(enhanced)]))
    assert enhanced_ovr > noisy_ovr + MIN_OVR_GAIN, (
        f"{kind}: mean DNSMOS OVR {noisy_ovr:.2f} -> {enhanced_ovr:.2f}")


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_batch_equals_one_by_one(built_enhancer, kind: str) -> None:
    """No state carries over between clips: order and batch composition do not matter."""
    clips = [speech_like(n, seed=n) + 0.05 * np.random.default_rng(n).standard_normal(n)
             .astype(np.float32) for n in (8000, 12001, 16000)]
    enhancer = built_enhancer(kind)
    batched = enhancer.enhance_batch(clips)
    singles = [enhancer.enhance(clip) for clip in reversed(clips)][::-1]
    for clip, one, alone in zip(clips, batched, singles, strict=True):
        assert one.shape == clip.shape
        np.testing.assert_array_equal(one, alone)
        assert np.isfinite(one).all() and np.abs(one).max() <= 1.0


def test_spectral_gate_modes_and_strength() -> None:
    """Both noise estimates gate stationary noise; prop_decrease scales the reduction."""
    from serec.enhancers import build_enhancer

    rng = np.random.default_rng(11)
    clip = speech_like(3 * TARGET_SR, seed=11)
    clip[: TARGET_SR] = 0.0  # one noise-only second to measure the reduction on
    clip += (0.02 * rng.standard_normal(clip.size)).astype(np.float32)
    noise_only = slice(0, TARGET_SR)

    def reduction_db(entry: dict) -> float:
        out = build_enhancer("sg", {"kind": "spectral_gate", **entry}).enhance(clip)
        return 10 * np.log10(np.mean(clip[noise_only] ** 2) / np.mean(out[noise_only] ** 2))

    stationary = reduction_db({"stationary": True})
    nonstationary = reduction_db({"stationary": False})
    half = reduction_db({"stationary": True, "prop_decrease": 0.5})
    assert stationary > 10 and nonstationary > 6
    assert 5.0 < half < 7.0  # a gain of 0.5 where gated: 6 dB
