"""Intrusive quality metrics against a clean reference: wide-band PESQ, ESTOI and SI-SDR."""

from __future__ import annotations

import math

import numpy as np
from pesq import PesqError, pesq

from serec.audio import TARGET_SR, resample

INTRUSIVE_COLUMNS: tuple[str, ...] = ("pesq_wb", "estoi", "si_sdr")
PESQ_SR = 16_000
# keeps SI-SDR finite when the estimate equals the reference (about +150 dB for unit power)
_ENERGY_EPS = 1e-15


def _as_signal(audio: np.ndarray, name: str) -> np.ndarray:
    """Validate a 1-D, finite, non-empty signal and return it as float64."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(audio.dtype, np.number) or not np.isfinite(audio).all():
        raise ValueError(f"{name} must be finite numbers")
    return audio.astype(np.float64, copy=False)


def align(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate both signals and truncate them to the shorter length (float64)."""
    reference = _as_signal(reference, "reference")
    estimate = _as_signal(estimate, "estimate")
    length = min(reference.size, estimate.size)
    return reference[:length], estimate[:length]


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of zero-mean signals (Le Roux et al., 2019)."""
    reference, estimate = align(reference, estimate)
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    reference_energy = float(np.dot(reference, reference))
    if reference_energy == 0.0:
        raise ValueError("reference is constant: SI-SDR is undefined")
    target = (np.dot(estimate, reference) / reference_energy) * reference
    residual = estimate - target
    return 10.0 * math.log10((float(np.dot(target, target)) + _ENERGY_EPS)
                             / (float(np.dot(residual, residual)) + _ENERGY_EPS))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sr: int = TARGET_SR) -> float:
    """Wide-band PESQ (P.862.2) at 16 kHz; NaN when PESQ cannot score (e.g. no utterance)."""
    reference, estimate = align(reference, estimate)
    if sr != PESQ_SR:
        reference = resample(reference, sr, PESQ_SR)
        estimate = resample(estimate, sr, PESQ_SR)
    if not (np.any(reference) and np.any(estimate)):
        return math.nan  # pesq would divide by a zero peak
    try:
        return float(pesq(PESQ_SR, reference, estimate, "wb"))
    except PesqError:
        return math.nan


def estoi(reference: np.ndarray, estimate: np.ndarray, sr: int = TARGET_SR) -> float:
    """Extended STOI (Jensen & Taal, 2016) via pystoi."""
    from pystoi import stoi  # imports scipy.signal (~1 s); only pay for it when used

    reference, estimate = align(reference, estimate)
    return float(stoi(reference, estimate, sr, extended=True))


def intrusive_scores(reference: np.ndarray, estimate: np.ndarray,
                     sr: int = TARGET_SR) -> dict[str, float]:
    """PESQ-WB, ESTOI and SI-SDR of ``estimate`` against ``reference`` (lengths truncated)."""
    reference, estimate = align(reference, estimate)
    return {
        "pesq_wb": pesq_wb(reference, estimate, sr),
        "estoi": estoi(reference, estimate, sr),
        "si_sdr": si_sdr(reference, estimate),
    }
