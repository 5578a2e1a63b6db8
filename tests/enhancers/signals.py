"""Test signals and measurements shared by the enhancer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import correlate

from serec.audio import TARGET_SR, read_audio

OFFLINE_KINDS = ("passthrough", "spectral_gate", "rnnoise", "deepfilternet3")


def speech_like(n_samples: int, seed: int = 0, sr: int = TARGET_SR) -> np.ndarray:
    """Voiced-speech-like syllables (gliding-f0 harmonics, smooth envelopes) in low noise."""
    rng = np.random.default_rng(seed)
    signal = np.zeros(n_samples)
    start = int(0.05 * sr)
    while start < n_samples:
        stop = min(n_samples, start + int(rng.uniform(0.12, 0.3) * sr))
        seconds = np.arange(stop - start) / sr
        f0 = rng.uniform(110, 220) + rng.uniform(-60, 60) * seconds / max(seconds[-1], 1e-3)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        harmonics = [k for k in range(1, 15) if k * f0.max() < sr / 2 - 500]
        voiced = sum(np.sin(k * phase) / k for k in harmonics)
        signal[start:stop] += 0.3 * voiced * np.hanning(stop - start)
        start = stop + int(rng.uniform(0.05, 0.15) * sr)
    signal += 0.003 * rng.standard_normal(n_samples)
    return signal.astype(np.float32)


def real_speech(corpus: Path, name: str, seconds: float, noise_level: float = 0.003,
                seed: int = 0) -> np.ndarray:
    """The first ``seconds`` of a corpus utterance with low-level white noise added."""
    speech = read_audio(corpus / "speech" / name)[: int(seconds * TARGET_SR)]
    noise = noise_level * np.random.default_rng(seed).standard_normal(speech.size)
    return (speech + noise).astype(np.float32)


def lag_and_peak(reference: np.ndarray, output: np.ndarray,
                 max_lag: int = 1600) -> tuple[int, float]:
    """Lag of ``output`` behind ``reference`` (samples, by cross-correlation within
    ±``max_lag``) and the normalised correlation at that lag."""
    corr = correlate(output.astype(np.float64), reference.astype(np.float64), mode="full",
                     method="fft")
    centre = reference.size - 1
    window = corr[centre - max_lag:centre + max_lag + 1]
    best = int(np.argmax(window))
    norm = float(np.linalg.norm(reference) * np.linalg.norm(output)) or 1.0
    return best - max_lag, float(window[best]) / norm
