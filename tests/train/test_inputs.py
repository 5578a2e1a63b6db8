"""Stored AST inputs: computed once per run and extractor, reused, streamed as fold filters."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from ray.data.dataset import MaterializedDataset

from serec.models.backbone import TINY, make_extractor
from serec.models.inputs import read_clip, spectrograms, values_from_bytes
from serec.train.config import TrainConfig
from serec.train.data import stage_task
from serec.train.inputs import (
    StoredInputs,
    extractor_key,
    prepare_inputs,
    stage_extractor_params,
    write_input_part,
)
from serec.train.splits import make_splits
from serec.train.stage import trial_shared
from serec.train.trials import fold_datasets, stream_buffer_bytes, train_name, val_name

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def split_run(tiny_run):
    make_splits(tiny_run, folds=2, test_fraction=0.15)
    return tiny_run


def direct_inputs(frame, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    audios = [read_clip(r.path, r.offset_s, r.duration_s) for r in frame.itertuples()]
    return spectrograms(audios, make_extractor(max_length))


def test_inputs_are_computed_once_and_reused_by_every_stage(split_run):
    config = TrainConfig(max_length=64)
    full = stage_task(split_run, "full", config)
    stored = prepare_inputs(split_run, full.frame, TINY, 64)
    parts = stored.parts()
    assert parts and stored.folder == f"inputs/{extractor_key(stored.params)}"
    assert stored.stored_clip_ids() == set(full.frame["clip_id"])
    for stage in ("gatekeeper", "expert"):  # their clips are all stored: nothing new is written
        task = stage_task(split_run, stage, config)
        assert prepare_inputs(split_run, task.frame, TINY, 64).parts() == parts
    assert stored.ensure(full.frame) == 0
    values, n_frames = stored.read(list(full.frame["clip_id"][::-1]))
    expected = direct_inputs(full.frame.iloc[::-1], 64)
    np.testing.assert_array_equal(values, expected[0])
    np.testing.assert_array_equal(n_frames, expected[1])
    other = StoredInputs(split_run.root, stage_extractor_params(TINY, 128))
    assert other.folder != stored.folder and not other.parts()  # another setting, another key


def test_a_rerun_computes_only_the_missing_clips(split_run):
    frame = stage_task(split_run, "full", TrainConfig()).frame
    stored = StoredInputs(split_run.root, stage_extractor_params(TINY, 64))
    assert stored.ensure(frame.iloc[:10], chunk=4) == 10
    assert len(stored.parts()) == 3
    assert stored.ensure(frame, chunk=4) == len(frame) - 10
    ids = [cid for part in stored.parts() for cid in pq.read_table(part)["clip_id"].to_pylist()]
    assert sorted(ids) == sorted(frame["clip_id"])  # every clip stored exactly once


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_data_stores_the_same_inputs_and_folds_are_filters(ray_session, split_run):
    task = stage_task(split_run, "full", TrainConfig())
    stored = StoredInputs(split_run.root, stage_extractor_params(TINY, 64))
    assert stored.ensure(task.frame, num_cpus=0.5, chunk=8, local_max=0) == len(task.frame)
    assert len(stored.parts()) == -(-len(task.frame) // 8)
    values, n_frames = stored.read(list(task.frame["clip_id"]))
    expected = direct_inputs(task.frame, 64)
    np.testing.assert_array_equal(values, expected[0])
    np.testing.assert_array_equal(n_frames, expected[1])

    shared = trial_shared(split_run, task, task.folds, TINY, TrainConfig(max_length=64))
    assert len(stored.parts()) == -(-len(task.frame) // 8)  # reused, nothing recomputed
    # the trial config carries small per-clip columns only: no spectrogram, no object ref
    blob = pickle.dumps(shared)
    assert len(blob) < values.nbytes / 10 and b"ObjectRef" not in blob
    # a second writer that raced the first: its copies are never read twice
    write_input_part(task.frame.iloc[:3], split_run.root, stored.folder, stored.params)
    datasets = fold_datasets(shared, task.folds)
    clip_ids = shared["pool"]["clip_id"]
    for fold in task.folds:
        spec = shared["specs"][fold]
        train = datasets[train_name(fold)].select_columns(["clip_id"]).take_all()
        val = datasets[val_name(fold)].select_columns(["clip_id"]).take_all()
        assert sorted(r["clip_id"] for r in train) == sorted(clip_ids[spec.train_idx])
        assert sorted(r["clip_id"] for r in val) == sorted(clip_ids[spec.val_idx])
        limits = datasets[train_name(fold)].context.execution_options.resource_limits
        assert limits.object_store_memory == 64 * 2**20  # reads stop this far ahead
        # folds smaller than the buffer are read once; larger ones stream every epoch
        assert isinstance(datasets[train_name(fold)], MaterializedDataset)
    tight = {**shared, "train": TrainConfig(max_length=64, object_store_mib=0.125).to_dict()}
    assert stream_buffer_bytes(TrainConfig.from_dict(tight["train"])) == 0.125 * 2**20
    streamed = fold_datasets(tight, task.folds[:1])[train_name(task.folds[0])]
    assert not isinstance(streamed, MaterializedDataset)
    assert streamed.context.execution_options.resource_limits.object_store_memory == 0.125 * 2**20
    assert streamed.count() == len(shared["specs"][task.folds[0]].train_idx)
    # blocks of at most a quarter of the cap (one 32 KiB row here), though a part holds 8 rows
    assert stored.row_bytes(stored.parts()[0]) * 4 > 0.125 * 2**20
    assert streamed.materialize().num_blocks() == streamed.count()
    rows = stored.dataset(clip_ids[:5], 64 * 2**20).take_all()
    assert sorted(r["clip_id"] for r in rows) == sorted(clip_ids[:5])
    position = list(task.frame["clip_id"]).index(rows[0]["clip_id"])
    np.testing.assert_array_equal(values_from_bytes([rows[0]["values"]], 64)[0],
                                  expected[0][position])
    assert ray.is_initialized()
