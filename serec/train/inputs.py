"""AST inputs of a run, computed once per extractor setting and streamed to training.

``inputs/<key>/`` in the run dir holds Parquet parts of ``clip_id, n_frames, values`` (the
``(max_length, mel)`` float32 spectrogram as raw bytes); ``key`` is a short hash of the extractor
settings, so every fold, stage and Tune trial of a run with the same backbone extractor and
``max_length`` reads the same parts. Missing clips are computed by Ray Data (``map_batches``
over the clip rows; each batch is written by its worker as one atomic part) or, for a few
clips, in this process; clips already stored are never computed again, so a rerun after a crash
only does what is left. Training reads the parts as a Ray dataset filtered to a fold's clips,
so no process ever holds the whole pool.

Tune trial processes unpickle :class:`StoredInputs`, so this module imports torch and
transformers only inside the functions that featurise or decode.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from serec.progress import Progress
from serec.ray_utils import capped_execution_options, dataset_from_frame
from serec.runs import RunDir

INPUTS = "inputs"
EXTRACTOR_FILE = "extractor.json"
CHUNK_CLIPS = 32  # clips per stored part (~16 MiB at 1024 frames)
# Below this many missing clips the driver computes the spectrograms itself: a Ray Data run
# costs seconds of start-up, the driver about 5 ms per clip.
LOCAL_MAX_CLIPS = 256
CLIP_COLUMNS = ["clip_id", "path", "offset_s", "duration_s"]
# A streamed dataset's blocks are at most 1/BLOCKS_PER_BUFFER of its read-ahead cap, so that
# the cap holds a few of them even when one stored part is larger than the cap.
BLOCKS_PER_BUFFER = 4


def stage_extractor_params(backbone: str, max_length: int) -> dict[str, Any]:
    """Extractor settings: the backbone's own (hub id / directory) or the defaults (tiny)."""
    from serec.models.backbone import (
        TINY,
        extractor_params,
        make_extractor,
        pretrained_extractor,
    )

    if backbone == TINY:
        return extractor_params(make_extractor(max_length))
    return extractor_params(pretrained_extractor(backbone, max_length))


def extractor_key(params: dict[str, Any]) -> str:
    """Short stable hash of extractor settings: the ``inputs/<key>/`` folder name."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_input_part(rows: pd.DataFrame, run_root: str, folder: str,
                     params: dict[str, Any]) -> pd.DataFrame:
    """Featurise ``rows`` (clip_id, path, offset_s, duration_s) and store them as one part.

    Returns the clip_ids (for counting).
    """
    from serec.models.backbone import extractor_from_params
    from serec.models.inputs import read_clip, spectrograms, values_to_bytes

    audios = [read_clip(r.path, r.offset_s, r.duration_s) for r in rows.itertuples(index=False)]
    values, n_frames = spectrograms(audios, extractor_from_params(params))
    table = pa.table({"clip_id": pa.array(rows["clip_id"].astype(str).tolist(), pa.string()),
                      "n_frames": pa.array(n_frames, pa.int32()),
                      "values": pa.array(values_to_bytes(values), pa.binary())})
    RunDir.of(run_root).append_part(folder, table)
    return pd.DataFrame({"clip_id": rows["clip_id"].astype(str).to_numpy()})


def keep_clips(batch: pa.Table, clip_ids: pa.Array) -> pa.Table:
    """Rows of ``batch`` whose clip_id is in ``clip_ids``."""
    return batch.filter(pc.is_in(batch["clip_id"], value_set=clip_ids))


def read_parts(batch: dict[str, np.ndarray], run_root: str) -> Iterator[pa.Table]:
    """For each ``(part, clip_ids)`` row of ``batch``: those clips' rows of that stored part."""
    fs, _ = RunDir.of(run_root).filesystem
    for part, clip_ids in zip(batch["part"], batch["clip_ids"], strict=True):
        yield keep_clips(pq.read_table(str(part), filesystem=fs),
                         pa.array(list(clip_ids), pa.string()))


@dataclass(frozen=True)
class StoredInputs:
    """The ``inputs/<key>/`` parts of one run for one extractor setting (picklable handle)."""

    run_root: str
    params: dict[str, Any]

    @property
    def run(self) -> RunDir:
        return RunDir.of(self.run_root)

    @property
    def folder(self) -> str:
        return f"{INPUTS}/{extractor_key(self.params)}"

    @property
    def max_length(self) -> int:
        return int(self.params["max_length"])

    def parts(self) -> list[str]:
        """Paths (inside the run's filesystem) of the stored parts."""
        return self.run.list_parts(self.folder)

    def clip_parts(self) -> dict[str, str]:
        """Stored clip -> the part holding it (the first, should two writers have raced).

        Reads only the clip_id column of each part.
        """
        fs, _ = self.run.filesystem
        where: dict[str, str] = {}
        for part in self.parts():
            for clip_id in pq.read_table(part, columns=["clip_id"], filesystem=fs)["clip_id"] \
                    .to_pylist():
                where.setdefault(clip_id, part)
        return where

    def stored_clip_ids(self) -> set[str]:
        """Clips that already have stored inputs."""
        return set(self.clip_parts())

    def ensure(self, clips: pd.DataFrame, num_cpus: float = 0.5, chunk: int = CHUNK_CLIPS,
               local_max: int = LOCAL_MAX_CLIPS) -> int:
        """Compute and store the inputs of the ``clips`` rows not stored yet; returns how many.

        More than ``local_max`` missing clips (with a Ray session) are computed by Ray Data,
        ``chunk`` clips per task and part; fewer in this process, ``chunk`` at a time.
        """
        run = self.run
        if not run.exists(self.folder, EXTRACTOR_FILE):
            run.write_json(f"{self.folder}/{EXTRACTOR_FILE}", self.params)
        stored = self.stored_clip_ids()
        missing = clips.drop_duplicates("clip_id")
        missing = missing[~missing["clip_id"].astype(str).isin(stored)][CLIP_COLUMNS]
        if missing.empty:
            return 0
        with Progress(f"AST inputs {extractor_key(self.params)}", len(missing)) as progress:
            if len(missing) <= local_max or not ray.is_initialized():
                for begin in range(0, len(missing), chunk):
                    rows = missing.iloc[begin:begin + chunk]
                    write_input_part(rows, self.run_root, self.folder, self.params)
                    progress.update(len(rows))
            else:
                done = dataset_from_frame(missing, chunk).map_batches(
                    write_input_part, batch_size=None, batch_format="pandas",
                    fn_kwargs={"run_root": self.run_root, "folder": self.folder,
                               "params": self.params}, num_cpus=num_cpus)
                for batch in done.iter_batches(batch_size=None, batch_format="pandas"):
                    progress.update(len(batch))
        return len(missing)

    def row_bytes(self, part: str) -> int:
        """Bytes of one stored clip row (every row has the same shape), from ``part``'s
        footer."""
        fs, _ = self.run.filesystem
        meta = pq.ParquetFile(part, filesystem=fs).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        return int(np.ceil(size / max(meta.num_rows, 1)))

    def dataset(self, clip_ids: Iterable[str], buffer_bytes: float, num_cpus: float = 0.0,
                where: Mapping[str, str] | None = None) -> ray.data.Dataset:
        """A Ray dataset of the stored rows of ``clip_ids``, one row per clip.

        ``where`` is :meth:`clip_parts` when the caller already has it (several datasets of
        one run: each lookup reads a column of every part).

        One task reads one part (only parts holding wanted clips) and keeps at most
        ``buffer_bytes / BLOCKS_PER_BUFFER`` of its wanted rows (one row at least), one block
        per task, so that Ray Data's launch gating sees small steps (a part larger than that
        is read by several tasks, each keeping its own rows); reading stops while
        ``buffer_bytes`` of blocks wait for the consumer. At most ``buffer_bytes`` / (largest
        block) reads run at once (at least one): Ray Data sizes its budget from the blocks it
        has seen, so it would start every read of a pass at once. Reads run as
        zero-CPU tasks by default (``read_parquet`` would list files in a one-CPU task):
        training workers already hold the CPUs, and reading is I/O. A dataset no larger than
        that buffer is read once into the object store (``materialize``) instead of again for
        every epoch, since each streamed pass costs seconds of start-up.
        """
        where = self.clip_parts() if where is None else where
        by_part: dict[str, list[str]] = {}
        for clip_id in sorted(set(map(str, clip_ids))):
            if clip_id not in where:
                raise KeyError(f"no stored inputs for clip {clip_id} in {self.folder}")
            by_part.setdefault(where[clip_id], []).append(clip_id)
        row_bytes = self.row_bytes(next(iter(by_part))) if by_part else 0
        block_rows = max(1, int(buffer_bytes // (BLOCKS_PER_BUFFER * max(row_bytes, 1))))
        items = [{"part": part, "clip_ids": ids[i:i + block_rows]}
                 for part, ids in sorted(by_part.items()) for i in range(0, len(ids), block_rows)]
        largest_block = max((len(item["clip_ids"]) for item in items), default=0) * row_bytes
        reads = max(1, min(len(items), int(buffer_bytes // max(largest_block, 1))))
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            read_parts, batch_size=1, batch_format="numpy", num_cpus=num_cpus,
            compute=ray.data.TaskPoolStrategy(size=reads), fn_kwargs={"run_root": self.run_root})
        dataset.context.execution_options = capped_execution_options(buffer_bytes)
        # Read every epoch inside Train workers: a bar per pass would flood the job log, and
        # training progress is reported per epoch (serec.ray_utils.epoch_progress).
        dataset.context.enable_progress_bars = False
        if items and sum(map(len, by_part.values())) * row_bytes <= buffer_bytes:
            return dataset.materialize()
        return dataset

    def read(self, clip_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(values, n_frames)`` of ``clip_ids`` in that order, in this process (small sets)."""
        from serec.models.inputs import values_from_bytes

        fs, _ = self.run.filesystem
        where = self.clip_parts()
        missing = [c for c in clip_ids if c not in where]
        if missing:
            raise KeyError(f"no stored inputs for {len(missing)} clip(s), e.g. {missing[:3]}")
        rows: dict[str, tuple[int, bytes]] = {}
        for part in sorted({where[c] for c in clip_ids}):
            wanted = pa.array([c for c in clip_ids if where[c] == part], pa.string())
            table = keep_clips(pq.read_table(part, filesystem=fs), wanted)
            rows.update(zip(table["clip_id"].to_pylist(),
                            zip(table["n_frames"].to_pylist(), table["values"].to_pylist(),
                                strict=True), strict=True))
        return (values_from_bytes([rows[c][1] for c in clip_ids], self.max_length),
                np.asarray([rows[c][0] for c in clip_ids], np.int32))


def prepare_inputs(run: RunDir, clips: pd.DataFrame, backbone: str, max_length: int,
                   num_cpus: float = 0.5) -> StoredInputs:
    """The run's stored inputs for this backbone's extractor, with every clip of ``clips``."""
    stored = StoredInputs(run.root, stage_extractor_params(backbone, max_length))
    stored.ensure(clips, num_cpus)
    return stored
