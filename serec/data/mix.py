"""Mix clean speech into noisy clips under several acoustic conditions (``serec data mix``,
``serec data demo``).

Conditions (column ``condition`` of the manifest):

- ``noise``: one or more additive noises at ``snr_db`` (``--snr-min..--snr-max``).
- ``reverb``: the speech convolved with a room impulse response (simulated shoebox rooms with
  RT60 in ``--rt60-min..--rt60-max``, or recorded RIRs from ``--rir-dir``), plus noise as in
  ``noise``. The clean reference is the *early-reverberant* speech (direct path + first 50 ms),
  and ``snr_db`` is the reverberant speech over the added noise, so ``noisy - clean`` also
  holds the late reverberation.
- ``talker``: a competing talker (another speaker's utterance) at ``snr_db``
  (``--talker-snr-min..max``); its speaker is ``interferer_speaker_id``, its utterance
  ``noise_id``.
- ``near_clean``: noise at +30..+40 dB (``--clean-snr-min..max``).
- ``clean``: no noise at all; ``snr_db`` is NaN (null in Parquet), ``n_noises`` 0.

Every clip is peak-safe (noisy and clean scaled together below 0.99) and ``snr_db`` is measured
on the final float signals. Ids and bytes depend only on the seed and settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
from serec.data.rooms import Rir, load_rirs, random_room, reverberate, simulate_rir
from serec.progress import Progress
from serec.runs import RunDir

PEAK_LIMIT = 0.99
EPS = 1e-12
CONDITIONS = ("noise", "reverb", "talker", "near_clean", "clean")
TALKER_NOISE_TYPE = "talker"
NO_NOISE_TYPE = "none"
EXTRA_NOISE_DB = (-6.0, 0.0)     # level of the 2nd, 3rd... noise relative to the first
RT60_LIMITS_S = (0.1, 2.0)
MAX_NOISES_PER_CLIP = 8


@dataclass(frozen=True)
class Mixture:
    noisy: np.ndarray
    clean: np.ndarray
    snr_db: float           # speech in the mixture over the added noise, measured after scaling
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


def noise_bed(noises: Sequence[np.ndarray], length: int,
              rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Excerpts of one or more noises summed into one ``length``-sample noise.

    A single noise is used as is; several are brought to equal power first and then the 2nd,
    3rd... are set 0..6 dB below the first. Returns the bed and the first excerpt's offset.
    """
    excerpts = [crop_or_loop(np.asarray(n, dtype=np.float64), length, rng) for n in noises]
    if len(excerpts) == 1:
        return excerpts[0]
    bed = np.zeros(length)
    for k, (excerpt, _) in enumerate(excerpts):
        relative_db = 0.0 if k == 0 else float(rng.uniform(*EXTRA_NOISE_DB))
        bed += 10 ** (relative_db / 20) * excerpt / np.sqrt(max(power(excerpt), EPS))
    return bed, excerpts[0][1]


def at_level(speech: np.ndarray, level_dbfs: float | None) -> np.ndarray:
    """``speech`` as float64 scaled to an RMS of ``level_dbfs`` (None keeps its level)."""
    speech = np.asarray(speech, dtype=np.float64)
    if level_dbfs is None:
        return speech
    return speech * (10 ** (level_dbfs / 20) / np.sqrt(max(power(speech), EPS)))


def combine(speech: np.ndarray, reference: np.ndarray, noise: np.ndarray | None,
            snr_db: float, noise_offset: int = 0, sr: int = TARGET_SR) -> Mixture:
    """``speech + g * noise`` with ``g`` giving exactly ``snr_db``, then made peak-safe.

    ``speech`` is the speech as it sounds in the mixture (dry or reverberant); ``reference``
    is what the clean file holds. Both files share one scale so that neither peaks above
    :data:`PEAK_LIMIT`. Without ``noise`` the mixture is the speech itself (SNR NaN).
    """
    speech = np.asarray(speech, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if noise is None:
        gain, noisy = 0.0, speech
    else:
        gain = float(np.sqrt(power(speech) / (max(power(noise), EPS) * 10 ** (snr_db / 10))))
        noisy = speech + gain * noise
    peak = max(float(np.max(np.abs(noisy))), float(np.max(np.abs(reference))))
    peak_scale = min(1.0, PEAK_LIMIT / peak) if peak > 0 else 1.0
    snr = math.nan if noise is None else measured_snr(speech * peak_scale, noisy * peak_scale)
    return Mixture(noisy=(noisy * peak_scale).astype(np.float32),
                   clean=(reference * peak_scale).astype(np.float32), snr_db=snr,
                   noise_gain=gain * peak_scale, peak_scale=peak_scale,
                   noise_offset_s=noise_offset / sr)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator,
               level_dbfs: float | None = None, sr: int = TARGET_SR) -> Mixture:
    """Scale ``noise`` so that the mixture has exactly ``snr_db``, then make it peak-safe.

    ``level_dbfs`` sets the clean speech RMS level first (None keeps it).
    """
    clean = at_level(clean, level_dbfs)
    excerpt, offset = noise_bed([noise], clean.size, rng)
    return combine(clean, clean, excerpt, snr_db, offset, sr)


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


# -- settings ------------------------------------------------------------------------------
def parse_conditions(text: str) -> dict[str, float]:
    """``"noise,reverb"`` (equal shares) or ``"noise=0.5,talker=0.25,clean=0.25"`` -> shares
    summing to 1 (weights are normalised, so ``noise=3,clean=1`` is 75 %/25 %)."""
    shares: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in CONDITIONS:
            raise ValueError(f"--conditions: unknown condition '{name}' "
                             f"(known: {', '.join(CONDITIONS)})")
        if name in shares:
            raise ValueError(f"--conditions: '{name}' is given twice")
        try:
            share = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"--conditions: '{item}' needs a number after '='") from None
        if not math.isfinite(share) or share < 0:
            raise ValueError(f"--conditions: the share of '{name}' must be a number >= 0")
        shares[name] = share
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("--conditions: give at least one condition with a share above 0")
    return {name: share / total for name, share in shares.items() if share > 0}


def parse_count_range(text: str) -> tuple[int, int]:
    """``"2"`` -> ``(2, 2)``; ``"1-3"`` -> ``(1, 3)`` (for ``--noises-per-clip``)."""
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise ValueError(f"--noises-per-clip: '{text}' is not N or MIN-MAX") from None
    return bounds


def _check_range(low_flag: str, high_flag: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{low_flag}/{high_flag} must be finite numbers")
    if low > high:
        raise ValueError(f"{low_flag} {low:g} is above {high_flag} {high:g}")


@dataclass(frozen=True)
class MixSettings:
    """Which conditions to mix, in which shares, and their parameter ranges."""

    conditions: Mapping[str, float] = field(default_factory=lambda: {"noise": 1.0})
    snr_db: tuple[float, float] = (-5.0, 20.0)
    talker_snr_db: tuple[float, float] = (0.0, 15.0)
    near_clean_snr_db: tuple[float, float] = (30.0, 40.0)
    rt60_s: tuple[float, float] = (0.4, 1.0)
    noises_per_clip: tuple[int, int] = (1, 1)
    rir_dirs: tuple[str, ...] = ()
    max_seconds: float = 10.0
    level_dbfs: tuple[float, float] = (-35.0, -18.0)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"--conditions: unknown condition(s) {unknown}")
        if not self.conditions or sum(self.conditions.values()) <= 0:
            raise ValueError("--conditions: give at least one condition with a share above 0")
        _check_range("--snr-min", "--snr-max", self.snr_db)
        _check_range("--talker-snr-min", "--talker-snr-max", self.talker_snr_db)
        _check_range("--clean-snr-min", "--clean-snr-max", self.near_clean_snr_db)
        _check_range("--rt60-min", "--rt60-max", self.rt60_s)
        low, high = RT60_LIMITS_S
        if self.rt60_s[0] < low or self.rt60_s[1] > high:
            raise ValueError(f"--rt60-min/--rt60-max must lie within {low:g}..{high:g} s")
        n_low, n_high = self.noises_per_clip
        if not 1 <= n_low <= n_high <= MAX_NOISES_PER_CLIP:
            raise ValueError(f"--noises-per-clip must be N or MIN-MAX with "
                             f"1 <= MIN <= MAX <= {MAX_NOISES_PER_CLIP}")
        if not self.max_seconds > 0:
            raise ValueError("--max-seconds must be above 0")
        _check_range("level-min", "level-max", self.level_dbfs)

    def snr_range(self, condition: str) -> tuple[float, float]:
        return {"talker": self.talker_snr_db,
                "near_clean": self.near_clean_snr_db}.get(condition, self.snr_db)


def allocate_conditions(shares: Mapping[str, float], clips: int, seed: int) -> list[str]:
    """The condition of each clip: exact counts from the shares (largest remainder), in an
    order shuffled by the seed (its own RNG, after the clips' ones)."""
    names = [c for c in CONDITIONS if shares.get(c, 0) > 0]
    weights = np.array([shares[c] for c in names], dtype=np.float64)
    exact = weights / weights.sum() * clips
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[:clips - int(counts.sum())]:
        counts[k] += 1
    order = np.repeat(np.array(names, dtype=object), counts)
    if len(names) > 1:
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(clips + 1)[-1])
        order = order[rng.permutation(clips)]
    return [str(c) for c in order]


# -- corpus --------------------------------------------------------------------------------
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


SpeechSource = Callable[[np.random.Generator, "str | None"], SpeechItem]
"""``speech_at(rng, avoid_speaker)``: a random utterance by anyone but ``avoid_speaker``."""
NoiseSource = Callable[[int, int, np.random.Generator], NoiseItem]
"""``noise_at(clip_index, noise_index, rng)``: the clip's k-th noise."""


class RirSource:
    """Draws each reverberant clip's RIR: a recorded one, or a random room to simulate."""

    def __init__(self, settings: MixSettings) -> None:
        self.rt60_range = settings.rt60_s
        self.recorded = load_rirs(settings.rir_dirs) if settings.rir_dirs else []

    def draw(self, rng: np.random.Generator) -> tuple[str, Callable[[], Rir]]:
        """``(rir_id, make)``: the id is known at once, the (costly) response on ``make()``."""
        if self.recorded:
            rir = self.recorded[int(rng.integers(len(self.recorded)))]
            return rir.rir_id, lambda: rir
        rt60 = float(rng.uniform(*self.rt60_range))
        room = random_room(rng)
        return room.rir_id(rt60), lambda: simulate_rir(room, rt60)


def mix_corpus(run: RunDir, clips: int, seed: int, speech_at: SpeechSource,
               noise_at: NoiseSource, id_prefix: str,
               settings: MixSettings | None = None) -> pd.DataFrame:
    """Make ``clips`` mixtures; one child RNG per clip so each clip is reproducible on its own.

    Clips whose ids are already in the manifest are neither recomputed nor rewritten (a rerun
    after a crash resumes). Returns this call's manifest rows.
    """
    if clips < 1:
        raise ValueError(f"--clips must be at least 1, not {clips}")
    settings = settings or MixSettings()
    existing: dict[str, dict[str, Any]] = {}
    if run.exists("manifest.parquet"):
        old = run.read_pandas("manifest.parquet")
        existing = {row["clip_id"]: row for row in old.to_dict("records")}
    rirs = RirSource(settings) if settings.conditions.get("reverb", 0) > 0 else None
    conditions = allocate_conditions(settings.conditions, clips, seed)
    rows = []
    children = np.random.SeedSequence(seed).spawn(clips)
    with Progress(f"{id_prefix} clips", clips) as progress:
        for i, (child, condition) in enumerate(zip(children, conditions, strict=True)):
            rows.append(_mix_one(run, i, np.random.default_rng(child), condition, seed,
                                 speech_at, noise_at, rirs, id_prefix, settings, existing))
            progress.update()
    frame = pd.DataFrame(rows)
    write_manifest(run, frame)
    return frame


def _mix_one(run: RunDir, i: int, rng: np.random.Generator, condition: str, seed: int,
             speech_at: SpeechSource, noise_at: NoiseSource, rirs: RirSource | None,
             id_prefix: str, settings: MixSettings,
             existing: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One clip's manifest row (its audio written unless the id already exists)."""
    speech = speech_at(rng, None)
    interferer_speaker = None
    if condition == "talker":
        talker = speech_at(rng, speech.speaker_id)
        interferer_speaker = talker.speaker_id
        noises = [NoiseItem(talker.audio, talker.source_id, TALKER_NOISE_TYPE)]
    elif condition == "clean":
        noises = []
    else:
        low, high = settings.noises_per_clip
        count = low if low == high else int(rng.integers(low, high + 1))
        noises = [noise_at(i, k, rng) for k in range(count)]
    snr = math.nan if condition == "clean" else float(rng.uniform(*settings.snr_range(condition)))
    level = float(rng.uniform(*settings.level_dbfs))
    dry = crop_speech(speech.audio, settings.max_seconds, rng)
    rir_id, make_rir = rirs.draw(rng) if condition == "reverb" and rirs else (None, None)
    noise_id = "+".join(n.noise_id for n in noises) or None
    # Plain noise clips keep the id scheme of single-condition runs, so old runs resume.
    extra = () if condition == "noise" else (condition, rir_id)
    clip_id = stable_id(id_prefix, seed, i, speech.source_id, noise_id, f"{snr:.6f}", *extra,
                        prefix=f"{id_prefix}-")
    if clip_id in existing:
        return dict(existing[clip_id])
    speech_in_mix = reference = at_level(dry, level)
    rt60 = math.nan
    if make_rir is not None:
        rir = make_rir()
        rt60 = rir.rt60_s
        speech_in_mix, reference = reverberate(reference, rir)
    bed, offset = noise_bed([n.audio for n in noises], dry.size, rng) if noises else (None, 0)
    mixture = combine(speech_in_mix, reference, bed, snr, offset)
    noisy_path, clean_path = write_mixture(run, clip_id, mixture)
    noise_type = "+".join(sorted({n.noise_type for n in noises})) or NO_NOISE_TYPE
    return dict(clip_id=clip_id, path=noisy_path, clean_path=clean_path, offset_s=0.0,
                duration_s=mixture.noisy.size / TARGET_SR, speaker_id=speech.speaker_id,
                source_id=speech.source_id, noise_id=noise_id, noise_type=noise_type,
                snr_db=mixture.snr_db, corpus=speech.corpus, condition=condition,
                rt60_s=rt60, rir_id=rir_id, interferer_speaker_id=interferer_speaker,
                n_noises=len(noises))


def noise_type_of(path: Path) -> str:
    """Noise category from a file name's corpus tag (``hu__n1`` -> ``hu``) or its folder."""
    stem = path.stem
    return stem.split("__", 1)[0] if "__" in stem else path.parent.name


def mix_files(run: RunDir, speech_dirs: Sequence[str], noise_dirs: Sequence[str], clips: int,
              snr_min: float, snr_max: float, seed: int, max_seconds: float = 10.0,
              settings: MixSettings | None = None) -> pd.DataFrame:
    """``serec data mix``: real clean speech files + real noise files -> noisy mixtures.

    ``settings`` chooses the conditions (default: additive noise only); ``snr_min``,
    ``snr_max`` and ``max_seconds`` override its noise SNR range and crop length.
    """
    settings = replace(settings or MixSettings(), snr_db=(snr_min, snr_max),
                       max_seconds=max_seconds)
    speech_files = find_audio(speech_dirs)
    if not speech_files:
        raise FileNotFoundError(f"no audio files under {list(speech_dirs)}")
    needs_noise = any(c in settings.conditions for c in ("noise", "reverb", "near_clean"))
    noise_files = find_audio(noise_dirs) if needs_noise or noise_dirs else []
    if needs_noise and not noise_files:
        raise FileNotFoundError(f"no noise audio files under {list(noise_dirs)} (--noise is "
                                "needed for the noise, reverb and near_clean conditions)")
    speakers = [parse_speaker(path) for path in speech_files]
    if "talker" in settings.conditions and len({s for s, _ in speakers}) < 2:
        raise ValueError("the talker condition needs speech from at least two speakers; "
                         f"found only {speakers[0][0]} under {list(speech_dirs)}")
    cache: dict[Path, np.ndarray] = {}

    def load(path: Path) -> np.ndarray:
        if path not in cache:
            cache[path] = read_audio(path)
        return cache[path]

    def speech_at(rng: np.random.Generator, avoid_speaker: str | None) -> SpeechItem:
        candidates = [k for k, (speaker, _) in enumerate(speakers) if speaker != avoid_speaker]
        k = candidates[int(rng.integers(len(candidates)))]
        path, (speaker, corpus) = speech_files[k], speakers[k]
        return SpeechItem(load(path), speaker, f"{corpus}:{strip_corpus_tag(path.stem)}", corpus)

    def noise_at(_: int, __: int, rng: np.random.Generator) -> NoiseItem:
        path = noise_files[int(rng.integers(len(noise_files)))]
        audio = load(path)
        return NoiseItem(audio / max(float(np.max(np.abs(audio))), EPS), path.stem,
                         noise_type_of(path))

    return mix_corpus(run, clips, seed, speech_at, noise_at, id_prefix="mix", settings=settings)
