"""Spectral self-similarity features: cross-entropy and KL statistics between STFT frames.

Conventions (fixed; the feature tables depend on them):

* Power STFT at 16 kHz: ``n_fft`` 1024, hop 512, periodic Hann window, centred frames. The
  signal is padded by ``n_fft // 2`` on both sides with *reflect* padding, the default of
  ``torch.stft(center=True)``, so a clip of N samples has ``T = 1 + N // 512`` frames. (Clips
  shorter than 513 samples use numpy's repeated reflection, where torch would refuse.)
  Power is ``|X|**2``; ``F = 513`` bins.
* Each frame becomes a probability mass over bins: ``p_t = S_t / (sum_f S_t + EPS)``, with
  ``EPS = 1e-10``; an all-zero frame stays all-zero.
* ``CE(i, j) = -sum_f p_i(f) * log2(p_j(f) + EPS)``, ``H_i = CE(i, i)`` and
  ``KL(i, j) = max(0, CE(i, j) - H_i)``.
* The 9 statistics, in :data:`CEKL_COLUMNS` order: variance of ``H``; mean and variance of CE
  over off-diagonal pairs (``i != j``) and over the +-1 diagonals (``|i - j| == 1``); the same
  four for KL. Variances are population variances (ddof=0). Fewer than 2 frames gives zeros.

The off-diagonal statistics need every pair, so the T x T matrices are built in row blocks of
at most ``max_block_frames`` rows (memory O(block * T)); per-block means and squared-deviation
sums are merged with Chan et al.'s parallel update, which stays accurate although CE values are
large (~10 bits) compared with their spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from serec.audio import TARGET_SR, resample

N_FFT = 1024
HOP = 512
N_BINS = N_FFT // 2 + 1
EPS = 1e-10
# STFT frames are transformed this many at a time so that the windowed frames and their
# spectra stay in cache (about twice as fast as one call on a long clip).
_STFT_CHUNK_FRAMES = 64

CEKL_COLUMNS = (
    "cekl_h_var",
    "cekl_ce_off_mean",
    "cekl_ce_off_var",
    "cekl_ce_adj_mean",
    "cekl_ce_adj_var",
    "cekl_kl_off_mean",
    "cekl_kl_off_var",
    "cekl_kl_adj_mean",
    "cekl_kl_adj_var",
)

_PERIODIC_HANN = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)


def power_spectrogram(audio: np.ndarray, sr: int = TARGET_SR) -> np.ndarray:
    """Centred power STFT (T x 513, float64) of a 1-D signal, resampled to 16 kHz first."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {audio.shape}")
    if sr != TARGET_SR:
        audio = resample(audio, sr, TARGET_SR)
    signal = audio.astype(np.float64)
    if not np.isfinite(signal).all():
        raise ValueError("signal contains NaN or inf")
    if signal.size == 0:
        return np.zeros((0, N_BINS))
    padded = np.pad(signal, N_FFT // 2, mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = np.empty((frames.shape[0], N_BINS))
    for start in range(0, frames.shape[0], _STFT_CHUNK_FRAMES):
        chunk = slice(start, start + _STFT_CHUNK_FRAMES)
        spectrum = np.fft.rfft(frames[chunk] * _PERIODIC_HANN, axis=-1)
        np.square(spectrum.real, out=power[chunk])
        power[chunk] += np.square(spectrum.imag)
    return power


def frame_distributions(power: np.ndarray) -> np.ndarray:
    """Normalise each frame (row) of a power spectrogram to a probability mass over bins."""
    return power / (power.sum(axis=1, keepdims=True) + EPS)


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations (M2) of a stream of values."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def merge(self, count: int, mean: float, m2: float) -> None:
        """Fold in another group's moments (Chan, Golub & LeVeque parallel update)."""
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    @property
    def variance(self) -> float:
        return self.m2 / self.count if self.count else 0.0


def _off_diagonal_moments(block: np.ndarray, row_start: int) -> tuple[int, float, float]:
    """Moments of a row block of a square matrix without its main diagonal (overwrites block)."""
    rows = np.arange(block.shape[0])
    diagonal = (rows, rows + row_start)
    block[diagonal] = 0.0
    count = block.size - rows.size
    mean = float(block.sum()) / count
    block -= mean
    block[diagonal] = 0.0
    return count, mean, float(np.vdot(block, block))


def _rowwise_cross_entropy(dist: np.ndarray, neg_log_dist: np.ndarray) -> np.ndarray:
    """``sum_f dist[t] * neg_log_dist[t]`` for each row t."""
    return np.einsum("tf,tf->t", dist, neg_log_dist)


def cekl_from_distributions(dist: np.ndarray, max_block_frames: int = 512) -> np.ndarray:
    """The 9 CE/KL statistics (float64, :data:`CEKL_COLUMNS` order) of frame distributions."""
    if max_block_frames < 1:
        raise ValueError(f"max_block_frames must be >= 1, got {max_block_frames}")
    dist = np.asarray(dist, dtype=np.float64)
    n_frames = dist.shape[0]
    if n_frames < 2:
        return np.zeros(len(CEKL_COLUMNS))
    neg_log_dist = -np.log2(dist + EPS)
    entropy = _rowwise_cross_entropy(dist, neg_log_dist)
    # CE(i, i+1) for all i, then CE(i+1, i); their rows' entropies are H[:-1] and H[1:].
    ce_adjacent = np.concatenate([_rowwise_cross_entropy(dist[:-1], neg_log_dist[1:]),
                                  _rowwise_cross_entropy(dist[1:], neg_log_dist[:-1])])
    kl_adjacent = np.maximum(ce_adjacent - np.concatenate([entropy[:-1], entropy[1:]]), 0.0)

    ce_off, kl_off = _Moments(), _Moments()
    # Two reused buffers: fresh multi-megabyte arrays per block cost more in page faults.
    block_rows = min(max_block_frames, n_frames)
    ce_buffer = np.empty((block_rows, n_frames))
    kl_buffer = np.empty_like(ce_buffer)
    for start in range(0, n_frames, block_rows):
        stop = min(start + block_rows, n_frames)
        ce_block, kl_block = ce_buffer[: stop - start], kl_buffer[: stop - start]
        np.matmul(dist[start:stop], neg_log_dist.T, out=ce_block)
        np.subtract(ce_block, entropy[start:stop, None], out=kl_block)
        np.maximum(kl_block, 0.0, out=kl_block)
        ce_off.merge(*_off_diagonal_moments(ce_block, start))
        kl_off.merge(*_off_diagonal_moments(kl_block, start))

    return np.array([
        entropy.var(),
        ce_off.mean, ce_off.variance,
        ce_adjacent.mean(), ce_adjacent.var(),
        kl_off.mean, kl_off.variance,
        kl_adjacent.mean(), kl_adjacent.var(),
    ], dtype=np.float64)


def cekl_features(audio: np.ndarray, sr: int = TARGET_SR,
                  max_block_frames: int = 512) -> np.ndarray:
    """The 9 CE/KL statistics of a clip, shape (9,), float64, :data:`CEKL_COLUMNS` order."""
    dist = frame_distributions(power_spectrogram(audio, sr))
    return cekl_from_distributions(dist, max_block_frames)


def cekl_dict(audio: np.ndarray, sr: int = TARGET_SR) -> dict[str, float]:
    """:func:`cekl_features` keyed by :data:`CEKL_COLUMNS` (for feature-table rows)."""
    return dict(zip(CEKL_COLUMNS, map(float, cekl_features(audio, sr)), strict=True))
