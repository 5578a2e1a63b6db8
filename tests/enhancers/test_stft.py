"""The centred STFT: exact round trip, frames centred on multiples of the hop."""

from __future__ import annotations

import numpy as np
import pytest

from serec.enhancers.stft import CentredStft, sqrt_hann


@pytest.mark.parametrize("n_fft, hop", [(320, 160), (512, 256), (512, 128)])
@pytest.mark.parametrize("length", [1, 159, 16000, 23457])
def test_analysis_then_synthesis_is_the_identity(n_fft: int, hop: int, length: int) -> None:
    audio = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    stft = CentredStft(n_fft, hop, sqrt_hann(n_fft))
    spec = stft.analyze(audio)
    assert spec.shape == (stft.num_frames(length), n_fft // 2 + 1)
    np.testing.assert_allclose(stft.synthesize(spec, length), audio, atol=1e-4)


def test_frames_are_centred_on_multiples_of_the_hop() -> None:
    """An impulse at sample k * hop puts frame k's energy peak at the window centre."""
    stft = CentredStft(512, 128, sqrt_hann(512))
    audio = np.zeros(4000, dtype=np.float32)
    audio[10 * 128] = 1.0
    energy = (np.abs(stft.analyze(audio)) ** 2).sum(axis=1)
    assert int(np.argmax(energy)) == 10


def test_a_gain_of_one_half_halves_the_signal() -> None:
    audio = np.random.default_rng(1).standard_normal(8000).astype(np.float32)
    stft = CentredStft(320, 160, sqrt_hann(320))
    np.testing.assert_allclose(stft.synthesize(0.5 * stft.analyze(audio), audio.size),
                               0.5 * audio, atol=1e-4)


def test_bad_geometry_is_rejected() -> None:
    with pytest.raises(ValueError, match="hop"):
        CentredStft(512, 0, sqrt_hann(512))
    with pytest.raises(ValueError, match="window"):
        CentredStft(512, 128, sqrt_hann(320))
