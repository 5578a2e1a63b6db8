"""Shared by the enhancer tests: built enhancers (each kind built once per session) and real
noisy speech with its DNSMOS scorer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from serec.audio import TARGET_SR, read_audio
from serec.data.mix import mix_at_snr
from serec.enhancers import Enhancer, build_enhancer

# (speech, noise, SNR dB): three speakers of three corpora, three real noise types.
# DNSMOS scores every clip as a 9 s window, so each extra clip costs seconds of CPU per system.
MIXES = (
    ("lsto__1688-142285-0000.wav", "sc__doing_the_dishes.wav", 0.0),
    ("arctic__arctic_a0010.wav", "dfn__noise_freesound_573577.wav", 5.0),
    ("vctk__p287_001.wav", "sc__exercise_bike.wav", 3.0),
)
CLIP_SECONDS = 4.0


@pytest.fixture(scope="session")
def built_enhancer() -> Iterator[Callable[[str], Enhancer]]:
    """``built_enhancer(kind)``: a default instance of ``kind``, built on first use."""
    cache: dict[str, Enhancer] = {}

    def get(kind: str) -> Enhancer:
        if kind not in cache:
            cache[kind] = build_enhancer(kind, {})
        return cache[kind]

    yield get
    for enhancer in cache.values():
        enhancer.close()


@pytest.fixture(scope="session")
def noisy_clips(corpus: Path) -> list[np.ndarray]:
    """:data:`MIXES` at -26 dBFS, :data:`CLIP_SECONDS` long (skips without the corpus)."""
    rng = np.random.default_rng(7)
    clips = []
    for speech_name, noise_name, snr_db in MIXES:
        speech = read_audio(corpus / "speech" / speech_name)[: int(CLIP_SECONDS * TARGET_SR)]
        noise = read_audio(corpus / "noise" / noise_name)
        clips.append(mix_at_snr(speech, noise, snr_db, rng, level_dbfs=-26.0).noisy)
    return clips


@pytest.fixture(scope="session")
def dnsmos():
    from serec.quality.dnsmos import Dnsmos

    return Dnsmos(intra_op_num_threads=1)


@pytest.fixture(scope="session")
def noisy_ovr(dnsmos, noisy_clips: list[np.ndarray]) -> float:
    """Mean DNSMOS OVR of :func:`noisy_clips`."""
    return float(np.mean([s.ovr for s in dnsmos.score_batch(noisy_clips)]))
