"""A centred short-time Fourier transform with exact weighted overlap-add resynthesis.

Frames are centred on multiples of ``hop`` (the clip is zero-padded by ``n_fft // 2`` on both
sides), so a spectral-domain enhancer that only changes bin values returns audio aligned with
its input. Resynthesis divides by the summed squared window, so analysis followed by synthesis
reproduces the clip exactly whatever the window.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def sqrt_hann(length: int) -> np.ndarray:
    """Square root of the symmetric Hann window (NSNet2, GTCRN and DTLN-era training)."""
    return np.sqrt(np.hanning(length)).astype(np.float32)


class CentredStft:
    """``analyze``: clip -> (frames, n_fft // 2 + 1) complex; ``synthesize``: the inverse."""

    def __init__(self, n_fft: int, hop: int, window: np.ndarray) -> None:
        window = np.asarray(window, dtype=np.float32)
        if window.shape != (n_fft,) or not 0 < hop <= n_fft:
            raise ValueError(f"need a window of n_fft={n_fft} samples and 0 < hop <= n_fft, "
                             f"got window {window.shape}, hop {hop}")
        self.n_fft, self.hop, self.window = n_fft, hop, window

    def num_frames(self, length: int) -> int:
        """Frames covering ``length`` samples plus the centring pad."""
        return -(-length // self.hop) + 1

    def analyze(self, audio: np.ndarray) -> np.ndarray:
        """Complex spectrum, shape (frames, bins), of a 1-D clip (no scaling of the FFT)."""
        half = self.n_fft // 2
        frames = self.num_frames(audio.size)
        padded = np.zeros((frames - 1) * self.hop + self.n_fft, dtype=np.float32)
        padded[half:half + audio.size] = audio
        windows = sliding_window_view(padded, self.n_fft)[::self.hop][:frames]
        return np.fft.rfft(windows * self.window, axis=-1).astype(np.complex64)

    def synthesize(self, spec: np.ndarray, length: int) -> np.ndarray:
        """The clip of ``length`` samples whose :meth:`analyze` is (closest to) ``spec``."""
        frames = spec.shape[0]
        blocks = np.fft.irfft(spec, n=self.n_fft, axis=-1).astype(np.float32) * self.window
        total = (frames - 1) * self.hop + self.n_fft
        signal = np.zeros(total, dtype=np.float32)
        weight = np.zeros(total, dtype=np.float32)
        squared = self.window ** 2
        for index in range(frames):
            start = index * self.hop
            signal[start:start + self.n_fft] += blocks[index]
            weight[start:start + self.n_fft] += squared
        half = self.n_fft // 2
        signal, weight = signal[half:half + length], weight[half:half + length]
        return np.where(weight > 1e-8, signal / np.maximum(weight, 1e-8), 0.0).astype(np.float32)
