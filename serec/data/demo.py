"""The embedded demo corpus: espeak-ng speech + synthetic noise, mixed like ``data mix``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serec.audio import TARGET_SR
from serec.data.mix import MixSettings, NoiseItem, SpeechItem, mix_corpus
from serec.runs import RunDir

NOISE_SECONDS = 12.0
UTTERANCE_SECONDS = 9.5
"""Demo utterances are consecutive sentences spoken until they last at least this long (mixing
crops them to 10 s): DNSMOS scores a clip shorter than its 9.01 s window by tiling it and
averaging 9.01 s windows at a 1 s hop, so a 4 s clip costs 7 windows and a 10 s clip one."""
DEMO_CONDITIONS = {"noise": 0.25, "reverb": 0.25, "talker": 0.25, "near_clean": 0.25}
"""A quarter each of the conditions where enhancers differ: noise at -5..20 dB, reverberation
(RT60 0.4..1.0 s) plus noise, a competing talker at 0..15 dB, near-clean speech (+30..40 dB)."""
DEMO_SETTINGS = MixSettings(conditions=DEMO_CONDITIONS, noises_per_clip=(1, 2))


def make_demo_corpus(run: RunDir, clips: int, seed: int = 0,
                     settings: MixSettings = DEMO_SETTINGS) -> pd.DataFrame:
    """Synthesise ``clips`` noisy/clean pairs in ``run``; returns their manifest rows.

    Each clip gets an utterance (sentences from a random first one, see UTTERANCE_SECONDS) and
    voice (speaker) and freshly synthesised noises of random
    kinds; the same first sentence in the same voice is the same source utterance. A
    competing talker is another voice saying other sentences.
    """
    from serec.data.noises import NOISE_KINDS, make_noise
    from serec.data.sentences import SENTENCES
    from serec.data.tts import DEMO_VOICES, synthesize

    cache: dict[tuple[int, int], np.ndarray] = {}

    def utterance(first: int, voice: int) -> np.ndarray:
        """Sentences ``first``, ``first + 1``, ... in one voice, at least UTTERANCE_SECONDS."""
        count = 1
        while True:
            text = " ".join(SENTENCES[(first + k) % len(SENTENCES)] for k in range(count))
            audio = synthesize(text, DEMO_VOICES[voice])
            if audio.size >= UTTERANCE_SECONDS * TARGET_SR or count >= len(SENTENCES):
                return audio
            count += 1

    def speech_at(rng: np.random.Generator, avoid_speaker: str | None) -> SpeechItem:
        voices = [v for v in range(len(DEMO_VOICES))
                  if DEMO_VOICES[v].speaker_id != avoid_speaker]
        sentence, voice = int(rng.integers(len(SENTENCES))), voices[int(rng.integers(len(voices)))]
        if (sentence, voice) not in cache:
            cache[sentence, voice] = utterance(sentence, voice)
        speaker = DEMO_VOICES[voice].speaker_id
        return SpeechItem(cache[sentence, voice], speaker, f"{speaker}/s{sentence:03d}", "demo")

    def noise_at(i: int, k: int, rng: np.random.Generator) -> NoiseItem:
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        noise_id = f"{kind}-{seed}-{i}" if k == 0 else f"{kind}-{seed}-{i}-{k}"
        return NoiseItem(make_noise(kind, NOISE_SECONDS, rng), noise_id, kind)

    return mix_corpus(run, clips, seed, speech_at, noise_at, id_prefix="demo", settings=settings)
