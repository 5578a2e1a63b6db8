"""The embedded demo corpus: espeak-ng speech + synthetic noise, mixed like ``data mix``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serec.data.mix import NoiseItem, SpeechItem, mix_corpus
from serec.runs import RunDir

NOISE_SECONDS = 12.0


def make_demo_corpus(run: RunDir, clips: int, seed: int = 0, snr_min: float = -5.0,
                     snr_max: float = 20.0, max_seconds: float = 10.0) -> pd.DataFrame:
    """Synthesise ``clips`` noisy/clean pairs in ``run``; returns their manifest rows.

    Each clip gets a sentence and voice (speaker) and a freshly synthesised noise of a random
    kind; the same sentence in the same voice is the same source utterance.
    """
    from serec.data.noises import NOISE_KINDS, make_noise
    from serec.data.sentences import SENTENCES
    from serec.data.tts import DEMO_VOICES, synthesize

    cache: dict[tuple[int, int], np.ndarray] = {}

    def speech_at(_: int, rng: np.random.Generator) -> SpeechItem:
        sentence, voice = int(rng.integers(len(SENTENCES))), int(rng.integers(len(DEMO_VOICES)))
        if (sentence, voice) not in cache:
            cache[sentence, voice] = synthesize(SENTENCES[sentence], DEMO_VOICES[voice])
        speaker = DEMO_VOICES[voice].speaker_id
        return SpeechItem(cache[sentence, voice], speaker, f"{speaker}/s{sentence:03d}", "demo")

    def noise_at(i: int, rng: np.random.Generator) -> NoiseItem:
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        return NoiseItem(make_noise(kind, NOISE_SECONDS, rng), f"{kind}-{seed}-{i}", kind)

    return mix_corpus(run, clips, seed, speech_at, noise_at, snr_min, snr_max, max_seconds,
                      id_prefix="demo")
