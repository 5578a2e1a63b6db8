"""Audio reading, validation reasons and segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from serec.audio import (
    REASON_EMPTY,
    REASON_NON_FINITE,
    REASON_SILENT,
    REASON_TOO_SHORT,
    REASON_UNREADABLE,
    TARGET_SR,
    AudioRejected,
    load_clip,
    read_audio,
    resample,
    segment,
)


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_reads_stereo_48k_as_mono_16k(tmp_path):
    path = tmp_path / "st.flac"
    sf.write(path, tone(1.0, 48_000, channels=2), 48_000)
    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == TARGET_SR
    assert np.abs(audio).max() == pytest.approx(0.3, abs=0.01)


def test_resample_keeps_tone_frequency():
    x = tone(1.0, 44_100, freq=1000.0)
    y = resample(x, 44_100, TARGET_SR)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * TARGET_SR / y.size == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_text("not audio at all"), REASON_UNREADABLE),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), TARGET_SR), REASON_EMPTY),
        (lambda p: sf.write(p, tone(0.1, TARGET_SR), TARGET_SR), REASON_TOO_SHORT),
        (lambda p: sf.write(p, np.zeros(TARGET_SR, np.float32), TARGET_SR), REASON_SILENT),
        (lambda p: sf.write(p, np.full(TARGET_SR, np.nan, np.float32), TARGET_SR,
                            subtype="FLOAT"), REASON_NON_FINITE),
    ],
)
def test_each_reject_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioRejected) as info:
        load_clip(path)
    assert info.value.reason == reason


def test_truncated_wav_is_read_or_rejected_cleanly(tmp_path):
    path = tmp_path / "trunc.wav"
    sf.write(path, tone(2.0, TARGET_SR), TARGET_SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[:60])  # header and a few samples only
    with pytest.raises(AudioRejected) as info:
        load_clip(path)
    assert info.value.reason in (REASON_UNREADABLE, REASON_EMPTY, REASON_TOO_SHORT)


def test_long_clip_is_segmented_not_rejected(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(25.2, TARGET_SR), TARGET_SR)
    segments = load_clip(path, max_seconds=10.0)
    assert [round(s.audio.size / TARGET_SR, 1) for s in segments] == [10.0, 10.0, 5.2]
    assert [s.start_s for s in segments] == [0.0, 10.0, 20.0]


def test_short_tail_joins_previous_segment():
    audio = np.ones(int(20.3 * TARGET_SR), np.float32)
    sizes = [s.audio.size for s in segment(audio, max_seconds=10.0, min_seconds=0.5)]
    assert sizes == [10 * TARGET_SR, int(10.3 * TARGET_SR)]


def test_window_of_a_file(tmp_path):
    path = tmp_path / "w.wav"
    sf.write(path, np.arange(3 * TARGET_SR, dtype=np.float32) / (3 * TARGET_SR), TARGET_SR,
             subtype="FLOAT")
    audio = read_audio(path, offset_s=1.0, duration_s=0.5)
    assert audio.size == TARGET_SR // 2
    assert audio[0] == pytest.approx(1 / 3, abs=1e-4)
