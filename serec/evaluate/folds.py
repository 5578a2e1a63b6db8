"""Ray tasks of ``serec evaluate``: each fold's models on its validation clips and on the test set.

The test clips are read once (by tasks that also time the CE/KL features of every clip, the
router's feature cost) and shared by every fold task through the object store. Each fold task
loads that fold's checkpoints of every requested stage once and predicts both clip sets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import ray

from serec.evaluate.ensemble import (
    SpectrogramCache,
    StageEnsemble,
    StagePrediction,
    align_probs,
    predict_stage,
)
from serec.models.inputs import read_clip
from serec.runs import RunDir

WINDOW_COLUMNS = ("path", "offset_s", "duration_s")
READ_CHUNK = 64  # test clips per reading task


def read_clips(frame: pd.DataFrame) -> list[np.ndarray]:
    """The 16 kHz audio of every row (``path``, ``offset_s``, ``duration_s``), in order."""
    return [read_clip(row.path, row.offset_s, row.duration_s)
            for row in frame[list(WINDOW_COLUMNS)].itertuples(index=False)]


def read_and_time_features(frame: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
    """``(audio per clip, tabular audio feature seconds per clip)``: CE/KL and routing
    descriptors, computed together as ``serec features`` and ``recommend`` do."""
    from serec.features.descriptors import audio_features

    audios = read_clips(frame)
    seconds = np.zeros(len(audios))
    for i, audio in enumerate(audios):
        began = time.perf_counter()
        audio_features(audio)
        seconds[i] = time.perf_counter() - began
    return audios, seconds


@dataclass
class FoldResult:
    """One fold's predictions: ``{stage: StagePrediction}`` for validation and test clips."""

    fold: int
    val_clip_ids: list[str]
    val: dict[str, StagePrediction]
    test: dict[str, StagePrediction]
    val_spectrogram_s: np.ndarray
    test_spectrogram_s: np.ndarray


def predict_fold(run_root: str, fold: int, stages: Sequence[str], val: pd.DataFrame,
                 test: pd.DataFrame, threads: int, device: str,
                 *test_audio_chunks: list[np.ndarray]) -> FoldResult:
    """Load fold ``fold`` of every stage and predict its validation clips and the test set
    (whose audio arrives in chunks, in test order)."""
    import torch

    torch.set_num_threads(max(1, threads))
    run = RunDir.of(run_root)
    models = {stage: StageEnsemble.load(run, stage, [fold]) for stage in stages}
    test_audio = [clip for chunk in test_audio_chunks for clip in chunk]
    outputs: dict[str, dict[str, StagePrediction]] = {"val": {}, "test": {}}
    seconds = {}
    for split, frame, audios in (("val", val, read_clips(val)), ("test", test, test_audio)):
        cache = SpectrogramCache(audios)
        for stage, ensemble in models.items():
            outputs[split][stage] = predict_stage(ensemble, cache, frame, device)
        seconds[split] = cache.seconds
    return FoldResult(fold, val["clip_id"].astype(str).tolist(), outputs["val"], outputs["test"],
                      seconds["val"], seconds["test"])


def run_fold_tasks(run: RunDir, stages_by_fold: dict[int, list[str]], pool: pd.DataFrame,
                   test: pd.DataFrame, num_cpus: float = 1.0, num_gpus: float = 0.0,
                   chunk: int = READ_CHUNK) -> tuple[list[FoldResult], np.ndarray]:
    """One Ray task per fold, in parallel; returns fold results and the test CE/KL seconds.

    The test clips are read (and their CE/KL timed) once, by tasks of ``chunk`` clips each,
    and every fold task gets the same object refs.
    """
    reader = ray.remote(num_cpus=min(num_cpus, 1.0), num_returns=2)(read_and_time_features)
    reads = [reader.remote(test.iloc[i:i + chunk]) for i in range(0, len(test), chunk)]
    task = ray.remote(predict_fold).options(num_cpus=num_cpus, num_gpus=num_gpus)
    device = "cuda" if num_gpus else "cpu"
    threads = max(1, int(round(num_cpus)))
    futures = [task.remote(run.root, fold, stages,
                           pool[pool["fold"] == fold].reset_index(drop=True), test, threads,
                           device, *[audio for audio, _ in reads])
               for fold, stages in sorted(stages_by_fold.items())]
    results = ray.get(futures)
    cekl = [np.asarray(s) for s in ray.get([seconds for _, seconds in reads])]
    return results, (np.concatenate(cekl) if cekl else np.zeros(0))


def stack_folds(predictions: Sequence[StagePrediction]) -> StagePrediction:
    """Predictions of the same clips by different folds -> one multi-fold prediction."""
    classes = list(dict.fromkeys(c for p in predictions for c in p.classes))
    probs = np.stack([align_probs(p.probs[0], p.classes, classes) for p in predictions])
    return StagePrediction(classes, [p.folds[0] for p in predictions], probs,
                           np.concatenate([p.seconds for p in predictions]))

