"""Cheap routing descriptors of a noisy clip, from the same power STFT as the CE/KL features.

All come from the 1024/512 power spectrogram of :func:`serec.features.cekl.power_spectrogram`
(64 ms frames every 32 ms at 16 kHz), so computing them next to CE/KL costs little:

* ``snr_est_db``: 95th over 10th percentile of frame energy, in dB (speech peaks over the
  noise floor; a blind SNR estimate).
* ``speech_activity``: share of frames more than :data:`ACTIVITY_DB` above the noise floor.
* ``spectral_flatness``: mean over frames of geometric / arithmetic mean power (1: white
  noise, near 0: tonal or harmonic).
* ``spectral_tilt_db_oct``: slope of the clip's mean log spectrum against log2 frequency, in
  dB per octave (50 Hz-8 kHz).
* ``reverb_decay_db_s``: median energy decay rate after speech offsets, in dB per second (a
  linear fit over :data:`DECAY_FRAMES` frames after each active-to-inactive frame); slow
  decay means reverberation. NaN when a clip has no offset.
"""

from __future__ import annotations

import numpy as np

from serec.audio import TARGET_SR
from serec.features.cekl import (
    CEKL_COLUMNS,
    HOP,
    N_FFT,
    cekl_from_distributions,
    frame_distributions,
    power_spectrogram,
)

DESCRIPTOR_COLUMNS = (
    "snr_est_db",
    "speech_activity",
    "spectral_flatness",
    "spectral_tilt_db_oct",
    "reverb_decay_db_s",
)
ACTIVITY_DB = 6.0
DECAY_FRAMES = 5
TILT_BAND_HZ = (50.0, 8000.0)
_TINY = 1e-12


def descriptors_from_power(power: np.ndarray) -> np.ndarray:
    """The :data:`DESCRIPTOR_COLUMNS` values of a power spectrogram ``(T, 513)``."""
    power = np.asarray(power, np.float64)
    if len(power) == 0:
        return np.full(len(DESCRIPTOR_COLUMNS), np.nan)
    energy_db = 10.0 * np.log10(power.sum(axis=1) + _TINY)
    floor_db, peak_db = np.percentile(energy_db, [10.0, 95.0])
    active = energy_db > floor_db + ACTIVITY_DB
    log_power = np.log(power + _TINY)
    flatness = np.exp(log_power.mean(axis=1)) / (power.mean(axis=1) + _TINY)
    freqs = np.arange(power.shape[1]) * TARGET_SR / N_FFT
    band = (freqs >= TILT_BAND_HZ[0]) & (freqs <= TILT_BAND_HZ[1])
    mean_db = 10.0 * np.log10(power[:, band].mean(axis=0) + _TINY)
    tilt = float(np.polyfit(np.log2(freqs[band]), mean_db, 1)[0])
    return np.array([peak_db - floor_db, active.mean(), float(flatness.mean()), tilt,
                     _decay_rate(energy_db, active)])


def _decay_rate(energy_db: np.ndarray, active: np.ndarray) -> float:
    """Median decay (dB/s, positive) of the frames following each speech offset."""
    hop_s = HOP / TARGET_SR
    offsets = np.flatnonzero(active[:-1] & ~active[1:])
    times = np.arange(DECAY_FRAMES + 1) * hop_s
    rates = [-np.polyfit(times, energy_db[t:t + DECAY_FRAMES + 1], 1)[0]
             for t in offsets if t + DECAY_FRAMES < len(energy_db)]
    return float(np.median(rates)) if rates else float("nan")


def routing_descriptors(audio: np.ndarray, sr: int = TARGET_SR) -> np.ndarray:
    """:data:`DESCRIPTOR_COLUMNS` of one clip (float64)."""
    return descriptors_from_power(power_spectrogram(audio, sr))


AUDIO_FEATURE_COLUMNS = (*CEKL_COLUMNS, *DESCRIPTOR_COLUMNS)


def audio_features(audio: np.ndarray, sr: int = TARGET_SR) -> np.ndarray:
    """CE/KL statistics then routing descriptors (:data:`AUDIO_FEATURE_COLUMNS` order), from
    one power spectrogram."""
    power = power_spectrogram(audio, sr)
    return np.concatenate([cekl_from_distributions(frame_distributions(power)),
                           descriptors_from_power(power)])
