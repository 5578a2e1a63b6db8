"""Mix clean speech with noise at an exact SNR (``serec data mix`` and the demo corpus)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serec.audio import TARGET_SR, read_audio, write_wav
from serec.data.manifest import (
    find_audio,
    parse_speaker,
    stable_id,
    strip_corpus_tag,
    write_manifest,
)
from serec.runs import RunDir

PEAK_LIMIT = 0.99
EPS = 1e-12


@dataclass(frozen=True)
class Mixture:
    noisy: np.ndarray
    clean: np.ndarray
    snr_db: float           # measured on the float signals after scaling
    noise_gain: float
    peak_scale: float       # common gain applied to clean and noise to avoid clipping
    noise_offset_s: float


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def measured_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of a mixture, with the noise taken as ``noisy - clean``."""
    noise = noisy.astype(np.float64) - clean.astype(np.float64)
    return 10.0 * np.log10(power(clean) / max(power(noise), EPS))


def crop_or_loop(noise: np.ndarray, length: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A ``length``-sample excerpt of ``noise`` starting at a random offset, looping if short."""
    offset = int(rng.integers(0, noise.size))
    reps = -(-(offset + length) // noise.size)
    return np.tile(noise, reps)[offset:offset + length], offset


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator,
               level_dbfs: float | None = None, sr: int = TARGET_SR) -> Mixture:
    """Scale ``noise`` so that the mixture has exactly ``snr_db``, then make it peak-safe.

    ``level_dbfs`` sets the clean speech RMS level first (None keeps it).
    """
    clean = clean.astype(np.float64)
    if level_dbfs is not None:
        clean = clean * (10 ** (level_dbfs / 20) / np.sqrt(max(power(clean), EPS)))
    excerpt, offset = crop_or_loop(noise.astype(np.float64), clean.size, rng)
    gain = np.sqrt(power(clean) / (max(power(excerpt), EPS) * 10 ** (snr_db / 10)))
    noise_part = gain * excerpt
    noisy = clean + noise_part
    peak = float(np.max(np.abs(noisy)))
    peak_scale = min(1.0, PEAK_LIMIT / peak) if peak > 0 else 1.0
    noisy, clean = noisy * peak_scale, clean * peak_scale
    return Mixture(noisy=noisy.astype(np.float32), clean=clean.astype(np.float32),
                   snr_db=measured_snr(clean, noisy), noise_gain=float(gain * peak_scale),
                   peak_scale=peak_scale, noise_offset_s=offset / sr)


def crop_speech(speech: np.ndarray, max_seconds: float, rng: np.random.Generator,
                sr: int = TARGET_SR) -> np.ndarray:
    """A random window of at most ``max_seconds`` (long utterances would otherwise be segmented)."""
    n = int(max_seconds * sr)
    if speech.size <= n:
        return speech
    start = int(rng.integers(0, speech.size - n + 1))
    return speech[start:start + n]


def write_mixture(run: RunDir, clip_id: str, mixture: Mixture) -> tuple[str, str]:
    """Write ``audio/noisy/<id>.wav`` and ``audio/clean/<id>.wav``; returns their paths."""
    root = Path(run.local_root)
    noisy_path = root / "audio" / "noisy" / f"{clip_id}.wav"
    clean_path = root / "audio" / "clean" / f"{clip_id}.wav"
    write_wav(noisy_path, mixture.noisy)
    write_wav(clean_path, mixture.clean)
    return str(noisy_path), str(clean_path)


@dataclass(frozen=True)
class SpeechItem:
    """Clean speech to mix: the samples plus who spoke which utterance."""

    audio: np.ndarray
    speaker_id: str
    source_id: str
    corpus: str


@dataclass(frozen=True)
class NoiseItem:
    audio: np.ndarray
    noise_id: str
    noise_type: str


def mix_corpus(run: RunDir, clips: int, seed: int,
               speech_at: Callable[[int, np.random.Generator], SpeechItem],
               noise_at: Callable[[int, np.random.Generator], NoiseItem],
               snr_min: float, snr_max: float, max_seconds: float, id_prefix: str,
               level_range_dbfs: tuple[float, float] = (-35.0, -18.0)) -> pd.DataFrame:
    """Make ``clips`` mixtures; one child RNG per clip so each clip is reproducible on its own.

    ``speech_at(i, rng)`` / ``noise_at(i, rng)`` supply the i-th clean utterance and noise.
    Clips whose ids are already in the manifest are not rewritten. Returns the manifest rows.
    """
    existing = set()
    if run.exists("manifest.parquet"):
        existing = set(run.read_pandas("manifest.parquet")["clip_id"])
    rows = []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(clips)):
        rng = np.random.default_rng(child)
        speech = speech_at(i, rng)
        noise = noise_at(i, rng)
        snr = float(rng.uniform(snr_min, snr_max))
        level = float(rng.uniform(*level_range_dbfs))
        clean = crop_speech(speech.audio, max_seconds, rng)
        clip_id = stable_id(id_prefix, seed, i, speech.source_id, noise.noise_id, f"{snr:.6f}",
                            prefix=f"{id_prefix}-")
        mixture = mix_at_snr(clean, noise.audio, snr, rng, level_dbfs=level)
        if clip_id in existing:
            noisy_path = str(Path(run.local_root) / "audio" / "noisy" / f"{clip_id}.wav")
            clean_path = str(Path(run.local_root) / "audio" / "clean" / f"{clip_id}.wav")
        else:
            noisy_path, clean_path = write_mixture(run, clip_id, mixture)
        rows.append(dict(clip_id=clip_id, path=noisy_path, clean_path=clean_path, offset_s=0.0,
                         duration_s=mixture.noisy.size / TARGET_SR, speaker_id=speech.speaker_id,
                         source_id=speech.source_id, noise_id=noise.noise_id,
                         noise_type=noise.noise_type, snr_db=mixture.snr_db, corpus=speech.corpus))
    frame = pd.DataFrame(rows)
    write_manifest(run, frame)
    return frame


def noise_type_of(path: Path) -> str:
    """Noise category from a file name's corpus tag (``hu__n1`` -> ``hu``) or its folder."""
    stem = path.stem
    return stem.split("__", 1)[0] if "__" in stem else path.parent.name


def mix_files(run: RunDir, speech_dirs: Sequence[str], noise_dirs: Sequence[str], clips: int,
              snr_min: float, snr_max: float, seed: int, max_seconds: float = 10.0) -> pd.DataFrame:
    """``serec data mix``: real clean speech files + real noise files -> noisy mixtures."""
    speech_files = find_audio(speech_dirs)
    noise_files = find_audio(noise_dirs)
    if not speech_files:
        raise FileNotFoundError(f"no audio files under {list(speech_dirs)}")
    if not noise_files:
        raise FileNotFoundError(f"no audio files under {list(noise_dirs)}")
    if snr_min > snr_max:
        raise ValueError(f"--snr-min {snr_min} is above --snr-max {snr_max}")
    cache: dict[Path, np.ndarray] = {}

    def load(path: Path) -> np.ndarray:
        if path not in cache:
            cache[path] = read_audio(path)
        return cache[path]

    def speech_at(_: int, rng: np.random.Generator) -> SpeechItem:
        path = speech_files[int(rng.integers(len(speech_files)))]
        speaker, corpus = parse_speaker(path)
        return SpeechItem(load(path), speaker, f"{corpus}:{strip_corpus_tag(path.stem)}", corpus)

    def noise_at(_: int, rng: np.random.Generator) -> NoiseItem:
        path = noise_files[int(rng.integers(len(noise_files)))]
        audio = load(path)
        return NoiseItem(audio / max(float(np.max(np.abs(audio))), EPS), path.stem,
                         noise_type_of(path))

    return mix_corpus(run, clips, seed, speech_at, noise_at, snr_min, snr_max, max_seconds,
                      id_prefix="mix")
