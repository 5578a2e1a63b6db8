"""AST inputs for a stage's training pool, computed once (Ray tasks) and shared by every fold.

The spectrograms of a clip do not depend on the fold, so they are computed once per
``train``/``tune`` call, stacked, and put into the object store once; fold trials and their
Train workers read the same arrays zero-copy through one object ref.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import ray

from serec.models.backbone import (
    TINY,
    extractor_from_params,
    extractor_params,
    make_extractor,
    pretrained_extractor,
)
from serec.models.inputs import read_clip, spectrograms
from serec.train.data import StageTask

CHUNK_CLIPS = 32
# Below this many clips the driver computes the spectrograms itself: a Ray task costs seconds
# of process start-up and imports, the driver about 5 ms per clip.
LOCAL_MAX_CLIPS = 256


def stage_extractor_params(backbone: str, max_length: int) -> dict[str, Any]:
    """Extractor settings: the backbone's own (hub id / directory) or the defaults (tiny)."""
    if backbone == TINY:
        return extractor_params(make_extractor(max_length))
    return extractor_params(pretrained_extractor(backbone, max_length))


def spectrogram_chunk(rows: pd.DataFrame, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Read and featurise a few clips (one Ray task)."""
    audios = [read_clip(r.path, r.offset_s, r.duration_s) for r in rows.itertuples(index=False)]
    return spectrograms(audios, extractor_from_params(params))


def compute_inputs(frame: pd.DataFrame, params: dict[str, Any], num_cpus: float = 1.0,
                   chunk: int = CHUNK_CLIPS,
                   local_max: int = LOCAL_MAX_CLIPS) -> tuple[np.ndarray, np.ndarray]:
    """``(input_values, n_frames)`` for every row of ``frame``, in order.

    Pools of more than ``local_max`` clips are cut into chunks computed by parallel Ray tasks;
    smaller ones (or any without a Ray session) are computed in this process.
    """
    columns = ["path", "offset_s", "duration_s"]
    if len(frame) <= local_max or not ray.is_initialized():
        return spectrogram_chunk(frame[columns], params)
    remote = ray.remote(num_cpus=num_cpus)(spectrogram_chunk)
    refs = [remote.remote(frame[columns].iloc[i:i + chunk], params)
            for i in range(0, len(frame), chunk)]
    parts = ray.get(refs)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def put_pool(task: StageTask, backbone: str, max_length: int,
             num_cpus: float = 1.0) -> tuple[ray.ObjectRef, dict[str, Any]]:
    """Compute the pool's inputs and put them into the object store once.

    Returns ``(ref, extractor params)``; the ref holds ``values``, ``n_frames``, ``targets``
    and raw ``tabular`` arrays in pool order.
    """
    params = stage_extractor_params(backbone, max_length)
    values, n_frames = compute_inputs(task.frame, params, num_cpus)
    data = {"values": values, "n_frames": n_frames, "targets": task.targets,
            "tabular": task.tabular}
    return ray.put(data), params
