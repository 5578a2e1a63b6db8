"""Every offline enhancer returns clips of the input's length, time-aligned with the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serec.enhancers import Enhancer, rnnoise
from serec.enhancers.deepfilternet3 import ModelGeometry
from serec.enhancers.framing import padded_length, process_frames
from tests.enhancers.signals import OFFLINE_KINDS, lag_and_peak, real_speech, speech_like

ODD_LENGTHS = (8001, 16000, 23457)
MIN_PEAK_CORRELATION = 0.3  # below this a lag estimate would be noise, not a measurement


class DelayLine:
    """A streaming processor with a known delay: emits the input ``delay`` samples late."""

    def __init__(self, delay: int) -> None:
        self.history = np.zeros(delay, dtype=np.float32)

    def __call__(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        joined = np.concatenate([self.history, frame_in])
        frame_out[:] = joined[:frame_in.size]
        self.history = joined[frame_in.size:]


@pytest.mark.parametrize("frame_length, delay", [(480, 1440), (480, 960), (480, 0), (160, 37)])
@pytest.mark.parametrize("length", [1, 479, 480, 24003])
def test_process_frames_undoes_a_known_delay(frame_length: int, delay: int, length: int) -> None:
    audio = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    out = process_frames(audio, frame_length, delay, DelayLine(delay))
    np.testing.assert_array_equal(out, audio)
    assert padded_length(length, frame_length, delay) % frame_length == 0


def test_process_frames_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match="frame_length"):
        process_frames(np.zeros(10, np.float32), 0, 0, DelayLine(0))


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
@pytest.mark.parametrize("length", ODD_LENGTHS)
def test_output_length_and_range(built_enhancer, kind: str, length: int) -> None:
    clip = speech_like(length, seed=length)
    clip[length // 2] = 1.0  # full-scale sample: resampling may overshoot, output must not
    out = built_enhancer(kind).enhance(clip)
    assert out.dtype == np.float32 and out.shape == (length,)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def _assert_aligned(enhancer: Enhancer, clip: np.ndarray) -> None:
    lag, peak = lag_and_peak(clip, enhancer.enhance(clip))
    assert peak > MIN_PEAK_CORRELATION, f"{enhancer.name}: output barely correlates ({peak:.2f})"
    assert abs(lag) <= 1, f"{enhancer.name}: output lags the input by {lag} samples at 16 kHz"


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_aligned_on_speech_like_signal(built_enhancer, kind: str) -> None:
    for length in ODD_LENGTHS:
        _assert_aligned(built_enhancer(kind), speech_like(length, seed=length + 1))


@pytest.mark.corpus
@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_aligned_on_real_speech(built_enhancer, corpus: Path, kind: str) -> None:
    for name in ("lsto__1688-142285-0000.wav", "arctic__arctic_a0010.wav"):
        _assert_aligned(built_enhancer(kind), real_speech(corpus, name, seconds=3.0))


@pytest.mark.parametrize("kind, native_delay", [("rnnoise", 960), ("deepfilternet3", 1440)])
def test_declared_delay_is_the_measured_delay(built_enhancer, monkeypatch, kind: str,
                                              native_delay: int) -> None:
    """With compensation switched off, the output lags by exactly the declared 48 kHz delay."""
    enhancer = built_enhancer(kind)
    if kind == "rnnoise":
        assert rnnoise.DELAY_SAMPLES == native_delay
        monkeypatch.setattr("serec.enhancers.rnnoise.DELAY_SAMPLES", 0)
    else:
        assert enhancer.geometry.delay_samples == native_delay
        monkeypatch.setattr(ModelGeometry, "delay_samples", property(lambda self: 0))
    clip = speech_like(32000, seed=5)
    lag, peak = lag_and_peak(clip, enhancer.enhance(clip))
    assert peak > MIN_PEAK_CORRELATION
    assert abs(lag - native_delay * 16_000 // enhancer.native_sr) <= 1
