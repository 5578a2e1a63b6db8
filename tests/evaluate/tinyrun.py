"""A tiny trained run for evaluate/recommend tests: synthetic clips, tables and fold models.

Three kinds of 1 s signals stand for three labels (speech-like -> ``rnnoise``, the majority;
steady tone -> ``gate``; white noise -> ``all_failed``), so their CE/KL statistics separate the
labels. Scores are synthetic but consistent with the labels (the label rule derives them).
Models are saved with the real checkpoint code: linear models fitted on the fold's training
clips (the ``features`` baseline code), or randomly initialised tiny ASTs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from serec.audio import TARGET_SR, write_wav
from serec.config import SerecConfig, load_config
from serec.data.manifest import manifest_frame
from serec.features.cekl import CEKL_COLUMNS
from serec.features.descriptors import AUDIO_FEATURE_COLUMNS, audio_features
from serec.label.rule import ALL_FAILED, decide_label, noise_floor
from serec.models.backbone import TINY, config_dict, extractor_params, load_backbone
from serec.models.card import KIND_LINEAR, ModelCard, save_model
from serec.models.heads import POOLING, ASTClassifier
from serec.models.tabular import fit_linear, fit_scaler
from serec.runs import FEATURES, LABELS, MANIFEST, SCORES, SPLITS, RunDir

MAJORITY = "rnnoise"
CANDIDATES = ("rnnoise", "gate")
KIND_OF_LABEL = {"rnnoise": "speech", "gate": "tone", ALL_FAILED: "noise"}
FOLDS = (0, 1, 2)
SPLIT_CYCLE = (0, 1, 2, -1)
MAX_LENGTH = 128
SECONDS_PER_AUDIO_S = {"rnnoise": 0.25, "gate": 0.05}
# OVR of each output at three DNSMOS framings, relative to its scored (unshifted) OVR: noise
# floor SD 0.064 (so clips whose margin is 0.05 are tied), shift-null gain 0.02
FRAMING_OFFSETS = (0.0, -0.1, 0.02)


def synth(kind: str, rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    """A 16 kHz test signal of one kind: ``speech`` (voiced bursts), ``tone`` or ``noise``."""
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    if kind == "tone":
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(400, 600) * t)
        audio += 0.003 * rng.standard_normal(t.size)
    elif kind == "noise":
        audio = 0.1 * rng.standard_normal(t.size)
    elif kind == "speech":
        f0 = rng.uniform(100, 160)
        voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
        audio = 0.1 * voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
        audio += 0.01 * rng.standard_normal(t.size)
    else:
        raise ValueError(kind)
    return audio.astype(np.float32)


def tiny_config(**recommend) -> SerecConfig:
    """Two real offline enhancers with fractional-CPU pools; fallback passthrough."""
    pool = {"num_cpus": 0.25, "batch_size": 4, "min_actors": 1, "max_actors": 1}
    return load_config(None, overrides={
        "enhancers": {"rnnoise": {"resources": pool},
                      "gate": {"kind": "spectral_gate", "stationary": True, "resources": pool}},
        "label": {"candidates": list(CANDIDATES), "decode": {"num_cpus": 0.25, "batch_size": 8}},
        "features": {"num_cpus": 0.25, "batch_size": 8},
        "dnsmos": {"num_cpus": 0.25, "batch_size": 8},
        "recommend": dict(recommend)})


def _ovr(label: str, rng: np.random.Generator) -> dict[str, float]:
    noisy = float(rng.uniform(1.4, 2.4))
    if label == ALL_FAILED:
        return {"noisy": noisy, "rnnoise": float(rng.uniform(1.4, 1.95)),
                "gate": float(rng.uniform(1.4, 1.95))}
    best = float(rng.uniform(2.9, 3.4))
    other = best - float(rng.choice([0.05, 0.3, 0.6]))
    return {"noisy": noisy, label: best,
            **{s: other for s in CANDIDATES if s != label}}


def build_tiny_run(root: Path, counts: dict[str, int] | None = None,
                   ast_stages: Iterable[str] = ("expert", "full"),
                   stages: Iterable[str] = ("gatekeeper", "expert", "full", "features"),
                   seed: int = 0) -> RunDir:
    """Write audio, manifest, scores, labels, features, splits and fold models under ``root``."""
    counts = counts or {"rnnoise": 12, "gate": 8, ALL_FAILED: 8}
    rng = np.random.default_rng(seed)
    run = RunDir.of(root / "run")
    rows, score_rows, label_rows = [], [], []
    i = 0
    for label, count in counts.items():
        for j in range(count):
            clip_id = f"clip{i:03d}"
            audio = synth(KIND_OF_LABEL[label], rng)
            path = root / "audio" / f"{clip_id}.wav"
            write_wav(path, audio)
            meta = {"speaker_id": f"spk{i:03d}", "source_id": f"src{i:03d}",
                    "noise_id": "n", "noise_type": ("white", "babble", "hum")[i % 3],
                    "snr_db": float((-5, 0, 5, 10, 20)[j % 5]), "corpus": "synthetic"}
            rows.append({"clip_id": clip_id, "path": str(path), "offset_s": 0.0,
                         "duration_s": 1.0, "label": label, "audio": audio,
                         "fold": SPLIT_CYCLE[j % len(SPLIT_CYCLE)], **meta})
            ovr = _ovr(label, rng)
            framings = {s: [v + d for d in FRAMING_OFFSETS] for s, v in ovr.items()}
            decision = decide_label(ovr, CANDIDATES, 2.0, noise_floor_by_system={
                s: noise_floor(f) for s, f in framings.items()})
            assert decision is not None and decision.label == label
            for system, value in ovr.items():
                seconds = SECONDS_PER_AUDIO_S.get(system, 0.0) * rng.uniform(0.8, 1.2)
                score_rows.append({"clip_id": clip_id, "system": system, "sig": value,
                                   "bak": value, "ovr": value, "p808": value, "sig_raw": value,
                                   "bak_raw": value, "ovr_raw": value,
                                   "ovr_framings": framings[system], "seconds": seconds,
                                   "dnsmos_seconds": 0.02, "audio_s": 1.0, "node_id": "local",
                                   "error": None})
            label_rows.append({"clip_id": clip_id, "path": str(path), **meta,
                               **{f"{s}_ovr": v for s, v in ovr.items()},
                               "best_system": decision.best_system, "best_ovr": decision.best_ovr,
                               "second_ovr": decision.second_ovr, "margin": decision.margin,
                               "label": decision.label, "noise_floor": decision.noise_floor,
                               "tied_systems": ",".join(decision.tied)})
            i += 1
    frame = pd.DataFrame(rows)
    run.write_table(MANIFEST, pa.Table.from_pandas(manifest_frame(
        frame.drop(columns=["audio", "label", "fold"]).to_dict("records")), preserve_index=False))
    run.append_part(SCORES, pa.Table.from_pylist(score_rows))
    run.append_part(LABELS, pa.Table.from_pandas(pd.DataFrame(label_rows), preserve_index=False))
    features = pd.DataFrame(np.stack([audio_features(a) for a in frame["audio"]]),
                            columns=list(AUDIO_FEATURE_COLUMNS))
    features.insert(0, "clip_id", frame["clip_id"])
    run.append_part(FEATURES, pa.Table.from_pandas(features, preserve_index=False))
    splits = pd.DataFrame({"clip_id": frame["clip_id"], "fold": frame["fold"].astype(np.int64),
                           "is_test": frame["fold"] == -1})
    run.write_table(SPLITS, pa.Table.from_pandas(splits, preserve_index=False))
    frame = frame.merge(features, on="clip_id")
    for fold in FOLDS:
        train = frame[(frame["fold"] != fold) & (frame["fold"] != -1)]
        for stage in stages:
            save_fold_model(run, stage, fold, train, stage in set(ast_stages), seed)
    return run


def stage_classes(stage: str, labels: Iterable[str]) -> list[str]:
    present = sorted(set(labels))
    if stage == "gatekeeper":
        return [MAJORITY, "other"]
    if stage == "expert":
        return [c for c in present if c != MAJORITY]
    return present


def save_fold_model(run: RunDir, stage: str, fold: int, train: pd.DataFrame, ast: bool,
                    seed: int = 0) -> None:
    """Fit (linear) or randomly initialise (tiny AST) one fold's model and save it."""
    classes = stage_classes(stage, train["label"])
    if stage == "expert":
        train = train[train["label"] != MAJORITY]
    if stage == "gatekeeper":
        targets = (train["label"] != MAJORITY).astype(int).to_numpy()
    else:
        targets = train["label"].map(classes.index).to_numpy()
    x = train[list(CEKL_COLUMNS)].to_numpy(np.float64)
    positive = MAJORITY if stage == "gatekeeper" else None
    if not ast:
        model = fit_linear(x, targets, len(classes))
        card = ModelCard(stage=stage, classes=classes, kind=KIND_LINEAR, fold=fold,
                         features=list(CEKL_COLUMNS), scaler_mean=model.mean.tolist(),
                         scaler_scale=model.scale.tolist(), positive_class=positive)
        save_model(model, card, run.model_dir(stage, fold))
        return
    hybrid = stage == "expert"
    torch.manual_seed(seed * 100 + fold)
    backbone, extractor = load_backbone(TINY, MAX_LENGTH)
    features = list(CEKL_COLUMNS) if hybrid else []
    model = ASTClassifier(backbone, len(classes), tabular_dim=len(features), head_hidden=32,
                          dropout=0.1)
    mean, scale = fit_scaler(x) if hybrid else (np.zeros(0), np.ones(0))
    card = ModelCard(stage=stage, classes=classes, fold=fold, features=features,
                     scaler_mean=mean.tolist(), scaler_scale=scale.tolist(),
                     positive_class=positive, backbone=TINY,
                     backbone_config=config_dict(backbone.config),
                     extractor=extractor_params(extractor), max_length=MAX_LENGTH,
                     pooling=POOLING, head_hidden=32, dropout=0.1)
    save_model(model, card, run.model_dir(stage, fold))
