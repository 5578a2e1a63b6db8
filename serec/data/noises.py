"""Noise of many kinds, synthesised in code from a ``np.random.Generator``.

Every kind is a pure function of ``(seconds, rng state, sr)``: the same seed gives the same
samples. ``babble`` is a sum of 4-8 espeak-ng talkers (see :mod:`serec.data.tts`) speaking the
built-in sentences with random voices; it needs the ``espeakng-loader`` library.
``speech_shaped`` is the TTS-free alternative: noise with a long-term speech spectrum and
syllable-rate modulation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal
from scipy.interpolate import CubicSpline

from serec.audio import TARGET_SR

NOISE_RMS = 0.1
MIN_SAMPLES = 64

_Generator = Callable[[int, int, np.random.Generator], np.ndarray]


# ----------------------------------------------------------------------------- building blocks

def _colored(n: int, sr: int, rng: np.random.Generator, exponent: float,
             corner_hz: float) -> np.ndarray:
    """Gaussian noise with power ~ 1/f**exponent above ``corner_hz`` (flat below, no DC)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    gain = np.maximum(freqs, corner_hz) ** (-exponent / 2.0)
    gain[0] = 0.0
    return np.fft.irfft(spectrum * gain, n)


def _band(x: np.ndarray, sr: int, low_hz: float | None, high_hz: float | None,
          order: int = 4) -> np.ndarray:
    """Butterworth band-/low-/high-pass; cut-offs are kept below 0.45 * sr."""
    nyquist_safe = 0.45 * sr
    high_hz = None if high_hz is None or high_hz >= nyquist_safe else high_hz
    if low_hz is not None and high_hz is not None:
        sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sr, output="sos")
    elif low_hz is not None:
        sos = signal.butter(order, low_hz, btype="highpass", fs=sr, output="sos")
    elif high_hz is not None:
        sos = signal.butter(order, high_hz, btype="lowpass", fs=sr, output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def _slow_random(n: int, sr: int, rng: np.random.Generator, rate_hz: float) -> np.ndarray:
    """Smooth random control signal (~unit variance) whose knots are ``1/rate_hz`` s apart."""
    knot_count = int(np.ceil(n / sr * rate_hz)) + 3
    knot_times = (np.arange(knot_count) - 1) / rate_hz
    spline = CubicSpline(knot_times, rng.standard_normal(knot_count))
    return spline(np.arange(n) / sr)


def _smooth_edges(level: np.ndarray, sr: int, ramp_s: float) -> np.ndarray:
    """Soften steps in a piecewise-constant envelope with a Hann kernel of ``ramp_s``."""
    width = max(int(round(ramp_s * sr)), 1)
    if width < 3:
        return level
    kernel = np.hanning(width)
    return signal.fftconvolve(level, kernel / kernel.sum(), mode="same")


def _gate(n: int, sr: int, rng: np.random.Generator, on_s: tuple[float, float],
          off_s: tuple[float, float], gain_range: tuple[float, float] = (1.0, 1.0),
          ramp_s: float = 0.005) -> np.ndarray:
    """Random on/off envelope: bursts of ``on_s`` length, gaps of ``off_s``, random gains."""
    cycles = int(np.ceil(n / (sr * (on_s[0] + off_s[0])))) + 1
    on = rng.uniform(*on_s, cycles)
    off = rng.uniform(*off_s, cycles)
    lead = rng.uniform(0.0, off_s[1])
    durations = np.concatenate([[lead], np.column_stack([on, off]).ravel()])
    gains = rng.uniform(*gain_range, cycles)
    values = np.concatenate([[0.0], np.column_stack([gains, np.zeros(cycles)]).ravel()])
    bounds = np.round(np.cumsum(durations) * sr).astype(np.int64)
    counts = np.diff(np.concatenate([[0], bounds]))
    level = np.repeat(values, counts)[:n]
    return _smooth_edges(level, sr, ramp_s)


def _impulses(n: int, rng: np.random.Generator, count: int,
              tail_index: float) -> np.ndarray:
    """Sparse train of ``count`` signed impulses with heavy-tailed (Pareto) magnitudes."""
    train = np.zeros(n)
    positions = rng.integers(0, n, count)
    magnitudes = (0.2 + rng.pareto(tail_index, count)) * rng.choice([-1.0, 1.0], count)
    np.add.at(train, positions, np.clip(magnitudes, -3.0, 3.0))
    return train


def _resonance(sr: int, freq_hz: float, decay_s: float) -> np.ndarray:
    """Exponentially decaying sinusoid: the impulse response of a small resonant body."""
    t = np.arange(int(np.ceil(6 * decay_s * sr)) + 1) / sr
    return np.exp(-t / decay_s) * np.sin(2 * np.pi * min(freq_hz, 0.45 * sr) * t)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _at_level(x: np.ndarray, relative_db: float, reference: np.ndarray) -> np.ndarray:
    """Scale ``x`` to ``relative_db`` re the RMS of ``reference`` (unscaled if either is silent,
    so that a background bed still sounds when a sparse foreground happens to be empty)."""
    rms, reference_rms = _rms(x), _rms(reference)
    if rms == 0 or reference_rms == 0:
        return x
    return x * (reference_rms * 10 ** (relative_db / 20) / rms)


# ----------------------------------------------------------------------------- noise kinds

def _white(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def _pink(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """1/f power (-3 dB/octave) above 10 Hz."""
    return _colored(n, sr, rng, exponent=1.0, corner_hz=10.0)


def _brown(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """1/f^2 power (-6 dB/octave) above 20 Hz (flat below, so no inaudible DC drift)."""
    return _colored(n, sr, rng, exponent=2.0, corner_hz=20.0)


def _hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz plus harmonics, slowly drifting by up to ~0.3 Hz."""
    mains_hz = float(rng.choice([50.0, 60.0]))
    drift = 0.15 * np.clip(_slow_random(n, sr, rng, rate_hz=0.3), -2.0, 2.0)
    phase = 2 * np.pi * np.cumsum(mains_hz + drift) / sr
    harmonics = np.arange(1, 9)
    harmonics = harmonics[harmonics * mains_hz < 0.45 * sr]
    amplitudes = rng.uniform(0.3, 1.0, harmonics.size) * harmonics ** -rng.uniform(0.5, 1.5)
    offsets = rng.uniform(0, 2 * np.pi, harmonics.size)
    hum = (amplitudes[:, None] * np.sin(harmonics[:, None] * phase + offsets[:, None])).sum(0)
    return hum + _at_level(_pink(n, sr, rng), -40.0, hum)


def _machinery(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Engine harmonics plus band-limited noise, amplitude-modulated at the rotation rate."""
    t = np.arange(n) / sr
    fundamental_hz = rng.uniform(20.0, 90.0)
    wobble = 1.0 + 0.01 * _slow_random(n, sr, rng, rate_hz=0.5)
    phase = 2 * np.pi * np.cumsum(fundamental_hz * wobble) / sr
    harmonics = np.arange(1, 13)
    amplitudes = rng.uniform(0.2, 1.0, harmonics.size) / harmonics
    offsets = rng.uniform(0, 2 * np.pi, harmonics.size)
    engine = (amplitudes[:, None] * np.sin(harmonics[:, None] * phase + offsets[:, None])).sum(0)
    low_hz = rng.uniform(100.0, 400.0)
    body = _band(rng.standard_normal(n), sr, low_hz, low_hz * rng.uniform(4.0, 12.0))
    rotation_hz = fundamental_hz / rng.integers(2, 8)
    depth = rng.uniform(0.3, 0.9)
    body *= 1.0 + depth * np.sin(2 * np.pi * rotation_hz * t + rng.uniform(0, 2 * np.pi))
    return engine + _at_level(body, rng.uniform(-6.0, 6.0), engine)


def _bursts(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise bursts of random length, level and spacing, separated by gaps."""
    low_hz = rng.uniform(80.0, 600.0)
    content = _band(rng.standard_normal(n), sr, low_hz, low_hz * rng.uniform(5.0, 30.0))
    gate = _gate(n, sr, rng, on_s=(0.05, 0.6), off_s=(0.15, 1.2), gain_range=(0.3, 1.0))
    bursts = content * gate
    return bursts + _at_level(rng.standard_normal(n), -50.0, bursts)


def _crackle(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Impulsive clicks and pops (10-60 per second) over a soft hiss, like worn vinyl."""
    count = rng.poisson(rng.uniform(10.0, 60.0) * n / sr)
    clicks = signal.fftconvolve(_impulses(n, rng, count, tail_index=2.5),
                                _resonance(sr, rng.uniform(1500.0, 5000.0), 4e-4))[:n]
    hiss = _band(rng.standard_normal(n), sr, 1000.0, None, order=2)
    return clicks + _at_level(hiss, -12.0, clicks)


def _rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Dense drops (300-3000 per second) of four sizes over a high-passed hiss bed."""
    drops = np.zeros(n)
    rate = rng.uniform(300.0, 3000.0)
    for freq_hz in rng.uniform(1200.0, 7000.0, 4):
        count = rng.poisson(rate / 4 * n / sr)
        drops += signal.fftconvolve(_impulses(n, rng, count, tail_index=3.0),
                                    _resonance(sr, freq_hz, rng.uniform(3e-4, 1.5e-3)))[:n]
    bed = _band(_pink(n, sr, rng), sr, 500.0, None, order=2)
    return drops + _at_level(bed, rng.uniform(-12.0, -4.0), drops)


def _wind(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Low-passed rumble with slow gusts; gusts also add brighter turbulence."""
    gust = np.exp(0.7 * _slow_random(n, sr, rng, rate_hz=rng.uniform(0.3, 1.0)))
    rumble = _band(rng.standard_normal(n), sr, 20.0, rng.uniform(150.0, 500.0), order=2)
    whistle = _band(rng.standard_normal(n), sr, 400.0, rng.uniform(1000.0, 2500.0), order=2)
    brightness = gust / gust.max()  # strong gusts whistle disproportionately
    return rumble * gust + _at_level(whistle, -15.0, rumble) * gust * brightness


def _beeps(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Repeating tonal beeps (one or two alternating pitches) such as alarms or phones."""
    t = np.arange(n) / sr
    period_s = rng.uniform(0.25, 1.5)
    duty = rng.uniform(0.2, 0.6)
    cycle_position = (t + rng.uniform(0, period_s)) / period_s
    beep_index = np.floor(cycle_position).astype(np.int64)
    gate = _smooth_edges((cycle_position % 1.0 < duty).astype(float), sr, 0.004)
    pitches_hz = rng.uniform(400.0, 3000.0, int(rng.integers(1, 3)))
    freq = pitches_hz[beep_index % pitches_hz.size]
    phase = 2 * np.pi * np.cumsum(freq) / sr
    tone = np.sin(phase) + rng.uniform(0.0, 0.5) * np.sin(3 * phase)
    beeps = tone * gate
    return beeps + _at_level(_pink(n, sr, rng), -40.0, beeps)


def _speech_shaped(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a long-term speech spectrum (peak ~300-500 Hz) and syllable-rate (~4 Hz) AM."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    highpass = (freqs / 120.0) ** 2 / (1.0 + (freqs / 120.0) ** 2)
    lowpass = 1.0 / np.sqrt(1.0 + (freqs / 500.0) ** 2)
    shaped = np.fft.irfft(spectrum * highpass * lowpass, n)
    syllables = np.exp(0.8 * _slow_random(n, sr, rng, rate_hz=rng.uniform(3.0, 6.0)))
    return shaped * syllables


_BABBLE_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
                   "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_BABBLE_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m6", "+f1", "+f2", "+f3", "+f4")


def _talker(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One random TTS talker speaking random sentences with short pauses, ``n`` samples."""
    from serec.data.sentences import SENTENCES
    from serec.data.tts import Voice, synthesize

    voice = Voice(f"{rng.choice(_BABBLE_ACCENTS)}{rng.choice(_BABBLE_VARIANTS)}",
                  rate_wpm=int(rng.integers(140, 211)), pitch=int(rng.integers(25, 76)),
                  pitch_range=int(rng.integers(30, 81)))
    pieces: list[np.ndarray] = []
    total = 0
    start = 0
    while total < start + n:
        utterance = synthesize(str(rng.choice(SENTENCES)), voice, sr)
        if not pieces:  # enter mid-sentence so that talkers are not aligned
            start = int(rng.integers(0, utterance.size))
        pause = np.zeros(int(rng.uniform(0.05, 0.5) * sr), dtype=np.float32)
        pieces += [utterance / max(_rms(utterance), 1e-9), pause]
        total += utterance.size + pause.size
    return np.concatenate(pieces)[start:start + n]


def _babble(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """4-8 overlapping espeak-ng talkers at random levels within 6 dB."""
    talker_count = int(rng.integers(4, 9))
    levels = 10 ** (rng.uniform(-6.0, 0.0, talker_count) / 20)
    return sum(level * _talker(n, sr, rng) for level in levels)


_GENERATORS: dict[str, _Generator] = {
    "white": _white,
    "pink": _pink,
    "brown": _brown,
    "babble": _babble,
    "hum": _hum,
    "machinery": _machinery,
    "bursts": _bursts,
    "crackle": _crackle,
    "rain": _rain,
    "wind": _wind,
    "beeps": _beeps,
    "speech_shaped": _speech_shaped,
}
NOISE_KINDS: tuple[str, ...] = tuple(_GENERATORS)


def make_noise(kind: str, seconds: float, rng: np.random.Generator,
               sr: int = TARGET_SR) -> np.ndarray:
    """``round(seconds * sr)`` samples of noise ``kind``: float32, finite, RMS ``NOISE_RMS``.

    Impulsive kinds (``crackle``, ``rain``) can peak above 1.0 at this RMS; scale before mixing.
    """
    generator = _GENERATORS.get(kind)
    if generator is None:
        raise ValueError(f"unknown noise kind {kind!r}; valid kinds: {', '.join(NOISE_KINDS)}")
    n = int(round(seconds * sr))
    if n < MIN_SAMPLES:
        raise ValueError(f"noise must be at least {MIN_SAMPLES} samples long, "
                         f"got {seconds} s at {sr} Hz")
    noise = np.asarray(generator(n, sr, rng), dtype=np.float64)
    rms = _rms(noise)
    if not np.isfinite(rms) or rms == 0.0:
        raise RuntimeError(f"noise kind {kind!r} produced a silent or non-finite signal")
    return (noise * (NOISE_RMS / rms)).astype(np.float32)
