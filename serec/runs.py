"""The run directory: every table and model of one run lives under one root.

The root may be a local path, an NFS path, or an object-store URI (``s3://``, ``gs://``);
file access goes through ``pyarrow.fs`` so that every node of a cluster sees the same run.

Object stores take their endpoint and credentials the standard way: ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (or an AWS profile)
for S3 and S3-compatible servers, application default credentials for GCS.

Tables are folders of Parquet parts (``labels/part-*.parquet``). No crashed writer leaves half
a file behind: on a local or NFS filesystem a file is written to a temporary name and renamed;
on an object store it is written in place, because an object only appears once its upload is
complete (and a rename there would be a second full copy). Readers deduplicate by ``clip_id``
so that a resumed stage never yields duplicate rows.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST = "manifest.parquet"
SPLITS = "splits.parquet"
SCORES = "scores"
LABELS = "labels"
REJECTS = "rejects"
FEATURES = "features"
MODELS = "models"
TUNE = "tune"
REPORT = "report"
LABEL_SUMMARY = "label_summary.json"


def is_uri(path: str) -> bool:
    """Whether ``path`` names a filesystem by scheme (``s3://``, ``gs://``, ``file://``)."""
    return "://" in path


@dataclass(frozen=True)
class RunDir:
    """Paths and table I/O for one run directory."""

    root: str

    @classmethod
    def of(cls, root: str | os.PathLike) -> RunDir:
        root = os.fspath(root)
        if not is_uri(root):
            root = os.path.abspath(root)
        return cls(root.rstrip("/"))

    # -- paths ---------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def is_local(self) -> bool:
        return not is_uri(self.root) or self.root.startswith("file://")

    @property
    def local_root(self) -> str:
        """Root as a local filesystem path (only for local runs)."""
        if not self.is_local:
            raise ValueError(f"run {self.root} is not on a local filesystem")
        return self.root.removeprefix("file://")

    def model_dir(self, stage: str, fold: int) -> str:
        return self.path(MODELS, stage, f"fold_{fold}")

    @property
    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """``(filesystem, path inside it)`` for the root."""
        if is_uri(self.root):
            return pafs.FileSystem.from_uri(self.root)
        return pafs.LocalFileSystem(), self.root

    def _fs_path(self, *parts: str) -> tuple[pafs.FileSystem, str]:
        fs, base = self.filesystem
        return fs, "/".join([base, *parts])

    def exists(self, *parts: str) -> bool:
        fs, p = self._fs_path(*parts)
        return fs.get_file_info(p).type != pafs.FileType.NotFound

    def makedirs(self, *parts: str) -> None:
        fs, p = self._fs_path(*parts)
        fs.create_dir(p, recursive=True)

    # -- single files ----------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes | pa.Buffer) -> None:
        """Write one file that appears whole or not at all (see the module docstring)."""
        fs, p = self._fs_path(rel)
        target = p
        if isinstance(fs, pafs.LocalFileSystem):
            fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
            target = f"{p}.tmp-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(target) as out:
            out.write(data)
        if target != p:
            fs.move(target, p)

    def read_bytes(self, rel: str) -> bytes:
        fs, p = self._fs_path(rel)
        with fs.open_input_stream(p) as f:
            return f.read()

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=2, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    # -- tables ----------------------------------------------------------------
    def write_table(self, rel: str, table: pa.Table) -> None:
        """Write one Parquet file that appears whole or not at all.

        The file is serialised in memory first, so that a failure while encoding never
        reaches the filesystem (closing an object-store stream would publish what it holds).
        """
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write_bytes(rel, sink.getvalue())

    def append_part(self, folder: str, table: pa.Table, prefix: str = "part") -> str:
        """Add one Parquet part to a table folder; returns its relative path."""
        rel = f"{folder}/{prefix}-{uuid.uuid4().hex}.parquet"
        self.write_table(rel, table)
        return rel

    def list_parts(self, folder: str) -> list[str]:
        fs, p = self._fs_path(folder)
        if fs.get_file_info(p).type != pafs.FileType.Directory:
            return []
        infos = fs.get_file_info(pafs.FileSelector(p, recursive=True))
        return sorted(i.path for i in infos
                      if i.type == pafs.FileType.File and i.path.endswith(".parquet"))

    def read_table(self, rel: str, dedup_key: str | None = "clip_id",
                   dedup_keys: Iterable[str] | None = None) -> pa.Table:
        """Read a Parquet file or a folder of parts; keep the last row per key.

        ``dedup_keys`` overrides ``dedup_key`` for tables keyed by several columns
        (``scores`` is keyed by clip_id and system).
        """
        fs, p = self._fs_path(rel)
        info = fs.get_file_info(p)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{self.path(rel)} does not exist")
        if info.type == pafs.FileType.File:
            table = pq.read_table(p, filesystem=fs)
        else:
            parts = self.list_parts(rel)
            if not parts:
                raise FileNotFoundError(f"{self.path(rel)} holds no Parquet parts")
            table = pa.concat_tables(
                [pq.read_table(part, filesystem=fs) for part in parts], promote_options="default")
        keys = list(dedup_keys) if dedup_keys is not None else ([dedup_key] if dedup_key else [])
        return dedup(table, keys) if keys else table

    def read_pandas(self, rel: str, **kwargs: Any):
        return self.read_table(rel, **kwargs).to_pandas()

    def has_table(self, rel: str) -> bool:
        fs, p = self._fs_path(rel)
        info = fs.get_file_info(p)
        if info.type == pafs.FileType.File:
            return True
        return info.type == pafs.FileType.Directory and bool(self.list_parts(rel))


def dedup(table: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the last row for each key (parts are read in name order)."""
    if table.num_rows == 0:
        return table
    df = table.to_pandas()
    df = df.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)
    return pa.Table.from_pandas(df, preserve_index=False)


def generation_prefix() -> str:
    """A part-name prefix that sorts after every earlier one and after plain ``part-<hex>``
    names (``part-gen<nanoseconds>``).

    Folders rewritten as a whole (``labels/``) write a new generation of parts, then remove
    the older ones with :meth:`RunDir.remove_parts`; until then, readers that keep the last
    row per key already see the new generation.
    """
    import time

    return f"part-gen{time.time_ns():020d}"


def remove_parts(run: RunDir, folder: str, keep_prefix: str) -> int:
    """Delete the Parquet parts directly in ``folder`` whose name does not start with
    ``keep_prefix``; returns how many were deleted."""
    fs, path = run._fs_path(folder)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return 0
    stale = [info.path for info in fs.get_file_info(pafs.FileSelector(path))
             if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
             and not info.base_name.startswith(keep_prefix)]
    for part in stale:
        fs.delete_file(part)
    return len(stale)
