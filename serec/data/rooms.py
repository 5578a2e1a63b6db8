"""Room impulse responses for reverberant mixtures: simulated shoebox rooms or recorded files.

Simulated rooms use pyroomacoustics' image-source method. The Eyring formula alone misses the
requested RT60 by up to ~35 % in the image-source model, so the wall absorption is corrected
from the RT60 measured on the simulated response (Schroeder backward integration, T20) until it
lands within :data:`RT60_TOLERANCE` of the request. Every RIR is cut to start just before its
direct path and scaled to a direct-path peak of 1, so the reverberant speech keeps the dry
speech's timing and roughly its level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve

from serec.audio import TARGET_SR, resample
from serec.data.manifest import find_audio, stable_id

SPEED_OF_SOUND = 343.0
RT60_TOLERANCE = 0.05          # relative; simulated rooms are re-fitted until within it
MAX_FITS = 4
EARLY_MS = 50.0                # direct path + reflections within 50 ms: the clean reference
PRE_DIRECT_MS = 2.5            # kept before the direct-path peak (fractional-delay pre-ringing)
ROOM_SIZE_M = ((3.0, 10.0), (3.0, 8.0), (2.5, 4.0))
WALL_MARGIN_M = 0.5
SOURCE_DISTANCE_M = (0.7, 3.0)
DECAY_COVERAGE = 0.75          # image-source order reaches 0.75 x RT60 (about -45 dB)


@dataclass(frozen=True)
class Rir:
    """A room impulse response starting at its direct path, with its measured RT60."""

    samples: np.ndarray
    rt60_s: float
    rir_id: str


@dataclass(frozen=True)
class ShoeboxRoom:
    """Geometry of one simulated room: size, talker and microphone positions (metres)."""

    size: tuple[float, float, float]
    source: tuple[float, float, float]
    mic: tuple[float, float, float]

    @property
    def volume(self) -> float:
        return float(np.prod(self.size))

    @property
    def surface(self) -> float:
        x, y, z = self.size
        return 2.0 * (x * y + x * z + y * z)

    def rir_id(self, rt60_s: float) -> str:
        return stable_id(*self.size, *self.source, *self.mic, f"{rt60_s:.6f}", prefix="sim-")


def measure_rt60(rir: np.ndarray, sr: int = TARGET_SR) -> float:
    """RT60 from the Schroeder backward-integrated energy decay, fitted over -5..-25 dB (T20)."""
    from pyroomacoustics.experimental import measure_rt60 as schroeder_rt60

    return float(schroeder_rt60(np.asarray(rir, dtype=np.float64), fs=sr, decay_db=20))


def random_room(rng: np.random.Generator) -> ShoeboxRoom:
    """A random shoebox with talker and microphone at least 0.5 m from the walls."""
    size = np.array([rng.uniform(lo, hi) for lo, hi in ROOM_SIZE_M])
    low, high = np.full(3, WALL_MARGIN_M), size - WALL_MARGIN_M
    source = rng.uniform(low, high)
    distance = rng.uniform(*SOURCE_DISTANCE_M)
    direction = rng.standard_normal(3)
    direction[2] *= 0.2                          # mostly horizontal, as between people
    mic = np.clip(source + distance * direction / np.linalg.norm(direction), low, high)
    return ShoeboxRoom(_point(size), _point(source), _point(mic))


def _point(v: np.ndarray) -> tuple[float, float, float]:
    """Coordinates rounded to 0.1 mm, so that ids and simulations see the same numbers."""
    x, y, z = (round(float(c), 4) for c in v)
    return x, y, z


def eyring_absorption(room: ShoeboxRoom, rt60_s: float) -> float:
    """Uniform wall energy absorption that gives ``rt60_s`` by Eyring's formula."""
    return float(np.clip(1.0 - np.exp(-0.161 * room.volume / (room.surface * rt60_s)),
                         1e-3, 0.999))


def _shoebox_rir(room: ShoeboxRoom, absorption: float, rt60_s: float, sr: int) -> np.ndarray:
    import pyroomacoustics as pra

    max_order = int(np.ceil(SPEED_OF_SOUND * DECAY_COVERAGE * rt60_s / min(room.size)))
    shoebox = pra.ShoeBox(list(room.size), fs=sr, materials=pra.Material(absorption),
                          max_order=max_order, air_absorption=False)
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(list(room.mic))
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)


def align_to_direct_path(rir: np.ndarray, sr: int = TARGET_SR) -> np.ndarray:
    """Drop the silence before the direct path (its peak) and scale that peak to 1."""
    rir = np.asarray(rir, dtype=np.float64)
    peak = int(np.argmax(np.abs(rir)))
    start = max(0, peak - int(round(PRE_DIRECT_MS * sr / 1000)))
    return rir[start:] / max(float(np.abs(rir[peak])), 1e-12)


def simulate_rir(room: ShoeboxRoom, rt60_s: float, sr: int = TARGET_SR) -> Rir:
    """The room's response with wall absorption fitted so that its measured RT60 is ``rt60_s``."""
    design = rt60_s
    best: tuple[float, np.ndarray, float] | None = None
    for _ in range(MAX_FITS):
        rir = _shoebox_rir(room, eyring_absorption(room, design), design, sr)
        measured = measure_rt60(rir, sr)
        error = abs(measured / rt60_s - 1.0)
        if best is None or error < best[0]:
            best = (error, rir, measured)
        if error <= RT60_TOLERANCE:
            break
        design *= rt60_s / measured
    _, rir, measured = best
    return Rir(align_to_direct_path(rir, sr), measured, room.rir_id(rt60_s))


def load_rirs(rir_dirs: list[str] | tuple[str, ...], sr: int = TARGET_SR) -> list[Rir]:
    """Recorded RIRs (any audio files under the folders), aligned, with measured RT60s.

    Of a multichannel (microphone array) response only the first channel is used: averaging
    channels with different delays would smear the response.
    """
    files = find_audio(rir_dirs)
    if not files:
        raise FileNotFoundError(f"no audio files under --rir-dir {list(rir_dirs)}")
    rirs = []
    for path in files:
        try:
            data, file_sr = sf.read(path, dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
            raise ValueError(f"--rir-dir: cannot read {path}: {exc}") from exc
        samples = align_to_direct_path(resample(data[:, 0], int(file_sr), sr), sr)
        rirs.append(Rir(samples, measure_rt60(samples, sr), f"rec:{Path(path).stem}"))
    return rirs


def reverberate(speech: np.ndarray, rir: Rir, sr: int = TARGET_SR,
                early_ms: float = EARLY_MS) -> tuple[np.ndarray, np.ndarray]:
    """``(reverberant, early)`` speech, both as long as ``speech``.

    ``early`` is the speech convolved with the first ``early_ms`` of the response after the
    direct path: the clean reference for reverberant clips (intrusive metrics compare against
    the speech as heard without late reverberation).
    """
    speech = np.asarray(speech, dtype=np.float64)
    early_end = int(round((PRE_DIRECT_MS + early_ms) * sr / 1000))
    reverberant = fftconvolve(speech, rir.samples)[:speech.size]
    early = fftconvolve(speech, rir.samples[:early_end])[:speech.size]
    return reverberant, early
