"""espeak-ng speech synthesis through ctypes: level, length, voices, pitch, determinism."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serec.data.sentences import SENTENCES
from serec.data.tts import DEMO_VOICES, Voice, get_synth, synthesize

SR = 16_000
SHORT = "Good morning."
LONG = ("The lighthouse keeper counted every ship that passed during the long winter storm, "
        "and wrote each name carefully in a leather notebook.")


def median_f0(audio: np.ndarray, sr: int = SR, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Crude F0: autocorrelation peak of loud 40 ms frames, median over voiced ones.

    The autocorrelation is divided by the window's own (Boersma 1993), otherwise the Hann
    taper penalises long lags and low voices are read an octave or more too high.
    """
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    window = np.hanning(frame)
    starts = np.arange(0, audio.size - frame, hop)
    frames = np.stack([audio[s:s + frame] for s in starts]) * window
    energy = (frames ** 2).sum(axis=1)
    frames = frames[energy > 0.1 * energy.max()]

    def autocorrelation(x: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft(x, 2 * frame, axis=-1)
        result = np.fft.irfft(np.abs(spectrum) ** 2, axis=-1)[..., :frame]
        return result / result[..., :1]

    autocorr = autocorrelation(frames) / autocorrelation(window)
    low_lag, high_lag = int(sr / fmax), int(sr / fmin)
    lags = low_lag + np.argmax(autocorr[:, low_lag:high_lag], axis=1)
    voiced = autocorr[np.arange(lags.size), lags] > 0.5
    assert voiced.sum() >= 10, "too few voiced frames to estimate F0"
    return float(np.median(sr / lags[voiced]))


def test_synthesize_returns_normalised_16k_speech():
    audio = synthesize(SENTENCES[0], DEMO_VOICES[0])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all()
    assert 1.5 < audio.size / SR < 10.0
    assert np.max(np.abs(audio)) == pytest.approx(0.5, abs=1e-3)
    assert np.sqrt(np.mean(audio ** 2)) > 0.03


def test_silence_is_trimmed_to_about_50_ms():
    audio = synthesize(SENTENCES[3], DEMO_VOICES[5])
    threshold = 0.5 * 10 ** (-40 / 20)
    loud = np.flatnonzero(np.abs(audio) >= threshold)
    assert loud[0] == pytest.approx(0.05 * SR, abs=2)
    assert audio.size - 1 - loud[-1] == pytest.approx(0.05 * SR, abs=2)


def test_duration_grows_with_text_length():
    voice = DEMO_VOICES[1]
    short, long = synthesize(SHORT, voice), synthesize(LONG, voice)
    assert long.size > 4 * short.size


def test_sample_rate_argument_is_honoured():
    voice = DEMO_VOICES[2]
    at_16k, at_8k = synthesize(SHORT, voice), synthesize(SHORT, voice, sr=8000)
    assert at_8k.size == pytest.approx(at_16k.size / 2, abs=4)


def test_different_voices_give_different_audio():
    first, second = (synthesize(SENTENCES[7], voice) for voice in DEMO_VOICES[:2])
    length = min(first.size, second.size)
    assert first.size != second.size or not np.allclose(first[:length], second[:length])
    assert abs(np.corrcoef(first[:length], second[:length])[0, 1]) < 0.5


def test_pitch_parameter_moves_median_f0_upwards():
    low = median_f0(synthesize(LONG, Voice("en-us", 170, pitch=15, pitch_range=20)))
    high = median_f0(synthesize(LONG, Voice("en-us", 170, pitch=85, pitch_range=20)))
    assert 60 < low < high < 400
    assert high > 1.3 * low


def test_female_variant_is_higher_pitched_than_male():
    male = median_f0(synthesize(LONG, Voice("en-us+m3", 170, 50, 30)))
    female = median_f0(synthesize(LONG, Voice("en-us+f3", 170, 50, 30)))
    assert female > 1.4 * male


def test_same_input_gives_identical_output_despite_intervening_calls_and_time():
    voice = DEMO_VOICES[6]  # breathy variant: uses espeak-ng's noise source, clock-seeded
    first = synthesize(SENTENCES[10], voice)
    synthesize(SENTENCES[11], DEMO_VOICES[3])
    time.sleep(1.02 - time.time() % 1.0)  # cross a wall-clock second
    assert np.array_equal(first, synthesize(SENTENCES[10], voice))


def test_concurrent_threads_get_the_same_audio_as_serial_calls():
    jobs = [(SENTENCES[i], DEMO_VOICES[i % len(DEMO_VOICES)]) for i in range(6)]
    serial = [synthesize(text, voice) for text, voice in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda job: synthesize(*job), jobs))
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_demo_voices_are_distinct_and_all_speak():
    assert len(DEMO_VOICES) >= 8
    assert len({voice.speaker_id for voice in DEMO_VOICES}) == len(DEMO_VOICES)
    variants = {voice.name.partition("+")[2][:1] for voice in DEMO_VOICES}
    assert {"m", "f"} <= variants
    for voice in DEMO_VOICES:
        assert synthesize(SHORT, voice).size > 0.3 * SR


def test_demo_voice_languages_and_variants_are_bundled():
    synth = get_synth()
    languages = {identifier.split("/")[-1].lower() for identifier in synth.list_voices()}
    variants = {identifier.split("/")[-1] for identifier in synth.list_voices(variants=True)}
    for voice in DEMO_VOICES:
        language, _, variant = voice.name.partition("+")
        assert language in languages
        assert not variant or variant in variants


def test_speaker_id_is_stable():
    assert Voice("en-us+f3", 160, 60, 50).speaker_id == "tts-en-us-f3-p60-pr50-r160"


@pytest.mark.parametrize("name", ["no-such-language", "en-us+no-such-variant"])
def test_unknown_voice_is_rejected(name: str):
    with pytest.raises(ValueError, match="no voice"):
        synthesize(SHORT, Voice(name, 170, 50, 50))


@pytest.mark.parametrize("kwargs", [{"rate_wpm": 20}, {"pitch": 101}, {"pitch_range": -1},
                                    {"name": "en us"}])
def test_voice_settings_are_validated(kwargs: dict):
    settings = {"name": "en-us", "rate_wpm": 170, "pitch": 50, "pitch_range": 50} | kwargs
    with pytest.raises(ValueError):
        Voice(**settings)


def test_empty_text_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        synthesize("   ", DEMO_VOICES[0])


def test_builtin_sentences_are_varied():
    assert len(SENTENCES) >= 60
    assert len(set(SENTENCES)) == len(SENTENCES)
    assert any(sentence.endswith("?") for sentence in SENTENCES)
