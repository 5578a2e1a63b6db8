"""DNSMOS: equality with speechmos (the DNS-Challenge reference), batching, features, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from serec.audio import TARGET_SR, read_audio
from serec.quality.dnsmos import (
    SCORE_COLUMNS,
    WINDOW_SAMPLES,
    Dnsmos,
    DnsmosScores,
    SharedWindowsP835,
    map_raw_scores,
    mel_filterbank,
    melspectrogram,
    model_paths,
    p808_features,
    tile_to_window,
    window_bounds,
)

TOLERANCE = 1e-4
REFERENCE_KEYS = {"sig": "sig_mos", "bak": "bak_mos", "ovr": "ovrl_mos", "p808": "p808_mos"}


def _clips(corpus: Path) -> dict[str, np.ndarray]:
    """Real clips: all noisy pairs, three VCTK, a 5 s clip (tiled) and a > 20 s clip."""
    speech = corpus / "speech"
    clips = {p.name: read_audio(p) for p in sorted((corpus / "pairs").glob("*.wav"))}
    for name in ("vctk__p287_004.wav", "vctk__p287_005.wav", "vctk__p287_006.wav"):
        clips[name] = read_audio(speech / name)
    clips["short_5s"] = read_audio(speech / "lsto__1688-142285-0000.wav")[: 5 * TARGET_SR]
    long_clip = np.concatenate([read_audio(speech / "lsto__1688-142285-0000.wav"),
                                read_audio(speech / "lsto__1688-142285-0001.wav")])
    assert long_clip.size > 20 * TARGET_SR
    clips["long"] = long_clip
    return clips


@pytest.fixture(scope="module")
def clips(corpus: Path) -> dict[str, np.ndarray]:
    return _clips(corpus)


@pytest.fixture(scope="module")
def scorer() -> Dnsmos:
    return Dnsmos(max_windows_per_run=8)


@pytest.fixture(scope="module")
def batched_scores(clips: dict[str, np.ndarray], scorer: Dnsmos) -> dict[str, DnsmosScores]:
    """All clips scored in one call: 8-window runs, so runs straddle clip boundaries."""
    return dict(zip(clips, scorer.score_batch(list(clips.values())), strict=True))


def _assert_matches_reference(ours: DnsmosScores, reference: dict, name: str) -> None:
    for column, ref_key in REFERENCE_KEYS.items():
        assert getattr(ours, column) == pytest.approx(float(reference[ref_key]), abs=TOLERANCE), (
            f"{name}: {column}")


@pytest.mark.corpus
@pytest.mark.timeout(600)
def test_scores_equal_speechmos(clips: dict[str, np.ndarray],
                                batched_scores: dict[str, DnsmosScores]) -> None:
    speechmos_dnsmos = pytest.importorskip("speechmos.dnsmos")
    for name, audio in clips.items():
        reference = speechmos_dnsmos.run(audio, TARGET_SR)
        _assert_matches_reference(batched_scores[name], reference, name)


@pytest.mark.corpus
@pytest.mark.timeout(600)
def test_personalized_scores_equal_speechmos(clips: dict[str, np.ndarray]) -> None:
    speechmos_dnsmos = pytest.importorskip("speechmos.dnsmos")
    subset = {name: clips[name]
              for name in ("vbd__p287_004_noisy.wav", "vbd__p287_006_noisy.wav", "short_5s")}
    ours = Dnsmos(personalized=True).score_batch(list(subset.values()))
    for (name, audio), scores in zip(subset.items(), ours, strict=True):
        reference = speechmos_dnsmos.run(audio, TARGET_SR, model_type="dnsmos_personalized")
        _assert_matches_reference(scores, reference, name)


@pytest.mark.corpus
def test_raw_scores_map_to_mos_for_single_window_clip(clips: dict[str, np.ndarray],
                                                      scorer: Dnsmos) -> None:
    audio = clips["short_5s"]
    assert len(window_bounds(2 * audio.size)) == 1  # one doubling, one window
    scores = scorer.score(audio)
    mapped = map_raw_scores(np.array([[scores.sig_raw, scores.bak_raw, scores.ovr_raw]]))[0]
    np.testing.assert_allclose(mapped, [scores.sig, scores.bak, scores.ovr], atol=1e-9)
    assert list(scores.as_dict()) == list(SCORE_COLUMNS)


@pytest.mark.corpus
@pytest.mark.timeout(300)
def test_batched_equals_one_by_one(clips: dict[str, np.ndarray], scorer: Dnsmos,
                                   batched_scores: dict[str, DnsmosScores]) -> None:
    for name in ("vbd__p287_004_noisy.wav", "vbd__p287_006_noisy.wav", "short_5s", "long"):
        single = scorer.score(clips[name]).as_dict()
        np.testing.assert_allclose(list(batched_scores[name].as_dict().values()),
                                   list(single.values()), atol=1e-5, err_msg=name)


@pytest.mark.corpus
def test_clean_speech_beats_noisy_speech(clips: dict[str, np.ndarray], scorer: Dnsmos) -> None:
    clean = clips["short_5s"]
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))  # 0 dB SNR
    noisy = clean + noise
    noisy /= max(1.0, float(np.max(np.abs(noisy))))
    clean_scores, noisy_scores = scorer.score_batch([clean, noisy])
    assert clean_scores.ovr > noisy_scores.ovr + 0.5
    assert clean_scores.bak > noisy_scores.bak


def test_window_bounds_reproduce_reference_skips() -> None:
    # 25 s: hops 0..15; the reference's float bounds make hops 7..15 one sample short -> skipped
    starts = [start // TARGET_SR for start, _ in window_bounds(25 * TARGET_SR)]
    assert starts == list(range(7))
    assert all(stop - start == WINDOW_SAMPLES for start, stop in window_bounds(40 * TARGET_SR))
    assert window_bounds(WINDOW_SAMPLES) == [(0, WINDOW_SAMPLES)]


def test_mel_filterbank_equals_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=TARGET_SR, n_fft=321, n_mels=120)
    np.testing.assert_allclose(mel_filterbank(), expected, rtol=1e-6, atol=1e-12)


@pytest.mark.corpus
def test_mel_spectrogram_and_p808_features_equal_librosa(clips: dict[str, np.ndarray]) -> None:
    librosa = pytest.importorskip("librosa")
    window = clips["long"][:WINDOW_SAMPLES]
    expected = librosa.feature.melspectrogram(y=window[:-160], sr=TARGET_SR, n_fft=321,
                                              hop_length=160, n_mels=120)
    ours = melspectrogram(window[:-160])[0]
    assert ours.shape == expected.shape == (120, 900)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6 * expected.max())
    expected_features = ((librosa.power_to_db(expected, ref=np.max) + 40) / 40).T
    np.testing.assert_allclose(p808_features(window[None, :])[0], expected_features, atol=1e-5)


@pytest.mark.parametrize(("audio", "sr", "message"), [
    (np.zeros((2, 16000), dtype=np.float32), TARGET_SR, "1-D"),
    (np.zeros(16000, dtype=np.int16), TARGET_SR, "floating"),
    (np.full(16000, 1.5, dtype=np.float32), TARGET_SR, r"\[-1, 1\]"),
    (np.array([0.0, np.nan], dtype=np.float32), TARGET_SR, "NaN"),
    (np.zeros(0, dtype=np.float32), TARGET_SR, "empty"),
    (np.zeros(16000, dtype=np.float32), 8000, "16000 Hz"),
    ([0.0] * 16000, TARGET_SR, "numpy array"),
])
def test_invalid_input_raises(scorer: Dnsmos, audio, sr: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scorer.score(audio, sr=sr)


def test_constructor_and_empty_batch(scorer: Dnsmos) -> None:
    assert scorer.score_batch([]) == []
    assert "CPUExecutionProvider" in scorer.providers
    with pytest.raises(ValueError, match="max_windows_per_run"):
        Dnsmos(max_windows_per_run=0)


def test_sessions_do_not_spin(scorer: Dnsmos) -> None:
    for session in (scorer._primary, scorer._p808):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def _speech_like(seconds: float, seed: int) -> np.ndarray:
    """Seeded noise under a slow tone and a syllable-rate envelope: windows differ in level."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    audio = envelope * (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size))
    return np.clip(audio, -1, 1).astype(np.float32)


@pytest.mark.parametrize("max_windows_per_run", [8, 1])
def test_shared_windows_equal_whole_model_runs(max_windows_per_run: int) -> None:
    """One window (5 s tiled, 9.5 s), a few (6.4 s tiled, 12.3 s) and many (40 s); with one
    window per run the 40 s clip's shared frames take several runs, whose seams must not show."""
    clips = [_speech_like(s, seed) for seed, s in enumerate((5.0, 9.5, 6.4, 12.3, 40.0))]
    shared = Dnsmos(max_windows_per_run=max_windows_per_run)
    whole = Dnsmos(max_windows_per_run=max_windows_per_run, share_windows=False)
    assert shared._shared is not None and shared._shared.reach == 4
    assert whole._shared is None
    bounds = [window_bounds(tile_to_window(c).size) for c in clips]
    assert [len(b) for b in bounds[:2]] == [1, 1] and min(len(b) for b in bounds[2:]) > 1
    assert bounds[-1][-1][1] > 2 * WINDOW_SAMPLES  # the 40 s clip's windows span > 2 runs
    for ours, reference in zip(shared.score_batch(clips), whole.score_batch(clips), strict=True):
        np.testing.assert_allclose(list(ours.as_dict().values()),
                                   list(reference.as_dict().values()), atol=1e-5)


def test_shared_windows_need_the_p835_structure() -> None:
    """A graph without the P.835 frames and pre-pooling tensors (here P.808) is not cut."""
    _, p808_path = model_paths()
    assert SharedWindowsP835.from_model(p808_path, ort.SessionOptions(),
                                        ["CPUExecutionProvider"], 8) is None
