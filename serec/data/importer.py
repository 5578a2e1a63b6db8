"""Register pre-mixed recordings (``serec data import``) without copying them."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import soundfile as sf

from serec.audio import MAX_SEGMENT_SECONDS, MIN_SECONDS
from serec.data.manifest import (
    find_audio,
    parse_speaker,
    stable_id,
    utterance_key,
    write_manifest,
)
from serec.runs import RunDir


def segment_windows(duration_s: float, max_seconds: float = MAX_SEGMENT_SECONDS,
                    min_seconds: float = MIN_SECONDS) -> list[tuple[float, float]]:
    """``(offset_s, duration_s)`` windows covering a recording; a short tail joins the last."""
    if duration_s <= max_seconds:
        return [(0.0, duration_s)]
    starts = [i * max_seconds for i in range(int(-(-duration_s // max_seconds)))]
    if duration_s - starts[-1] < min_seconds:
        starts.pop()
    ends = starts[1:] + [duration_s]
    return [(s, e - s) for s, e in zip(starts, ends, strict=True)]


def import_recordings(run: RunDir, noisy_dirs: Sequence[str], clean_dirs: Sequence[str] = (),
                      corpus: str | None = None,
                      max_seconds: float = MAX_SEGMENT_SECONDS) -> pd.DataFrame:
    """Add every audio file under ``noisy_dirs`` to the manifest.

    Clean references are paired by utterance name (``p287_001_noisy`` <-> ``p287_001``).
    Files that cannot even be opened are still registered (one row, unknown duration) so
    that the label stage records them in ``rejects/`` with the reason.
    """
    noisy_files = find_audio(noisy_dirs)
    if not noisy_files:
        raise FileNotFoundError(f"no audio files under {list(noisy_dirs)}")
    clean_by_key = {utterance_key(p): p for p in find_audio(clean_dirs)} if clean_dirs else {}
    rows = []
    for path in noisy_files:
        key = utterance_key(path)
        speaker, parsed_corpus = parse_speaker(path)
        clean = clean_by_key.get(key)
        try:
            duration = sf.info(str(path)).duration
            windows = segment_windows(duration, max_seconds)
        except Exception:  # unreadable: the label stage rejects it with the decoder's reason
            windows = [(0.0, None)]
        for index, (offset, dur) in enumerate(windows):
            rows.append(dict(
                clip_id=stable_id("import", str(path), index, prefix="imp-"),
                path=str(path), clean_path=str(clean) if clean else None, offset_s=offset,
                duration_s=dur, speaker_id=speaker, source_id=f"{parsed_corpus}:{key}",
                noise_id=None, noise_type=None, snr_db=None, corpus=corpus or parsed_corpus))
    frame = pd.DataFrame(rows)
    write_manifest(run, frame)
    return frame
