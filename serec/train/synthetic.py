"""A tiny labeled run of synthetic clips, for tests, benchmarks and smoke runs of training.

Each clip is a tone in white noise whose frequency depends on its label, so a model can learn
the labels; speakers, shared source utterances (two clips per sentence, and one sentence read
by two speakers) and the CE/KL features make it a complete run for ``split``/``train``/``tune``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from serec.audio import TARGET_SR, write_wav
from serec.runs import FEATURES, LABELS, MANIFEST, RunDir

SYSTEMS = ("alpha", "beta", "gamma")
TONES_HZ = {"alpha": 300.0, "beta": 1500.0, "gamma": 4000.0}
SHARES = (0.5, 0.25, 0.25)  # alpha is the majority


def tone_clip(label: str, rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    """A tone near the label's frequency (random detune and phase) in light white noise."""
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    freq = TONES_HZ[label] * rng.uniform(0.9, 1.1)
    audio = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return (audio + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def build_tone_run(root: str | Path, n_speakers: int = 12, clips_per_speaker: int = 4,
                   seed: int = 0, seconds: float = 1.0) -> RunDir:
    """Write WAVs under ``root/audio`` and manifest, labels, features under ``root/run``."""
    from serec.features.cekl import CEKL_COLUMNS, cekl_features

    root = Path(root)
    rng = np.random.default_rng(seed)
    run = RunDir.of(root / "run")
    n = n_speakers * clips_per_speaker
    labels = rng.choice(SYSTEMS, size=n, p=SHARES)
    rows, features = [], []
    for i, label in enumerate(labels):
        # two clips share a sentence; the first clip of speaker 1 reads speaker 0's sentence
        source = "src000" if i == clips_per_speaker else f"src{i // 2:03d}"
        audio = tone_clip(str(label), rng, seconds)
        path = root / "audio" / f"clip{i:04d}.wav"
        write_wav(path, audio)
        rows.append({"clip_id": f"clip{i:04d}", "path": str(path),
                     "speaker_id": f"spk{i // clips_per_speaker:03d}", "source_id": source,
                     "label": str(label)})
        features.append(cekl_features(audio, TARGET_SR))
    frame = pd.DataFrame(rows)
    meta = {"noise_type": "white", "snr_db": 5.0, "corpus": "synthetic"}
    manifest = frame.drop(columns="label").assign(clean_path=None, offset_s=0.0,
                                                  duration_s=seconds, **meta,
                                                  noise_id=[f"white-{i}" for i in range(n)])
    run.write_table(MANIFEST, pa.Table.from_pandas(manifest, preserve_index=False))
    ovr = {s: np.where(frame["label"] == s, 3.5, 2.5) + rng.uniform(0, 0.2, n) for s in SYSTEMS}
    table = frame.assign(**meta, noisy_ovr=2.0, **{f"{s}_ovr": v for s, v in ovr.items()},
                         best_system=frame["label"], best_ovr=3.6, second_ovr=2.6, margin=1.0)
    run.append_part(LABELS, pa.Table.from_pandas(table, preserve_index=False))
    feats = pd.DataFrame(np.stack(features), columns=list(CEKL_COLUMNS))
    feats.insert(0, "clip_id", frame["clip_id"])
    for name in ("sig", "bak", "ovr", "p808"):
        feats[f"noisy_{name}"] = rng.uniform(1.5, 3.5, n)
    run.append_part(FEATURES, pa.Table.from_pandas(feats, preserve_index=False))
    return run
