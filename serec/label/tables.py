"""The label stage's tables: schemas, what is already scored, and reading the labels.

``scores/`` holds one row per (clip, system) pair, written by Ray Data workers; ``labels/`` is
derived from it (see :mod:`serec.label.aggregate`). Decode rejects live in ``rejects/``, the
derived "no system scored" rejects in ``rejects/label/`` (rewritten with the labels).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from serec.data.manifest import MANIFEST_SCHEMA
from serec.quality.dnsmos import SCORE_COLUMNS as SCORE_FIELDS
from serec.runs import LABEL_SUMMARY, LABELS, REJECTS, SCORES, RunDir

LABEL_REJECTS = f"{REJECTS}/label"
DECODE_STAGE = "decode"
WORKER_DIED = "worker_died"

SCORE_SCHEMA = pa.schema(
    [("clip_id", pa.string()), ("system", pa.string()),
     *[(f, pa.float64()) for f in SCORE_FIELDS],
     # OVR at every framing (label.framings), the unshifted one first; null in old runs
     ("ovr_framings", pa.list_(pa.float64())),
     ("seconds", pa.float64()), ("dnsmos_seconds", pa.float64()), ("audio_s", pa.float64()),
     ("node_id", pa.string()), ("error", pa.string()), ("scored_at", pa.float64()),
     # the node of the DNSMOS actor that scored the pair; null in old runs
     ("dnsmos_node_id", pa.string())])
# The label columns every labels part types the same way (beside the manifest's columns and
# one ``<system>_ovr`` float column per system).
LABEL_SCHEMA = pa.schema(
    [("clip_id", pa.string()), ("best_system", pa.string()), ("best_ovr", pa.float64()),
     ("second_ovr", pa.float64()), ("margin", pa.float64()), ("label", pa.string()),
     ("complete", pa.bool_()), ("missing_systems", pa.string()),
     ("noise_floor", pa.float64()), ("tied_systems", pa.string())])
REJECT_SCHEMA = pa.schema([("clip_id", pa.string()), ("path", pa.string()),
                           ("stage", pa.string()), ("reason", pa.string())])


def score_table(rows: pd.DataFrame) -> pa.Table:
    """``rows`` (with at least the :data:`SCORE_SCHEMA` columns) as a typed scores part.

    Columns become plain float64 / object first: batches from Ray Data may hold nullable
    dtypes, which the part's pandas metadata would hand back to every reader (``pd.NA``).
    """
    rows = rows.reindex(columns=SCORE_SCHEMA.names).copy()  # old callers: no ovr_framings
    for column in SCORE_SCHEMA:
        values = rows[column.name]
        if pa.types.is_list(column.type):
            rows[column.name] = [None if not isinstance(v, (list, tuple, np.ndarray))
                                 else [float(x) for x in v] for v in values]
        elif pa.types.is_floating(column.type):
            rows[column.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            rows[column.name] = values.astype(object).where(values.notna(), None)
    return pa.Table.from_pandas(rows, schema=SCORE_SCHEMA, preserve_index=False)


def reject_table(rows: pd.DataFrame) -> pa.Table:
    """``rows`` (clip_id, path, stage, reason) as a typed rejects part."""
    rows = rows[REJECT_SCHEMA.names].astype(object)
    return pa.Table.from_pandas(rows.where(rows.notna(), None), schema=REJECT_SCHEMA,
                                preserve_index=False)


def labels_table(labels: pd.DataFrame) -> pa.Table:
    """Label rows as a table whose manifest and label columns keep their types
    (:data:`MANIFEST_SCHEMA`, :data:`LABEL_SCHEMA`): a part whose clips all lack a value (no
    ``rir_id`` among its clips, every ``noise_floor`` NaN) would otherwise hold a column of
    another type that no later part can be concatenated with."""
    table = pa.Table.from_pandas(pd.DataFrame(labels), preserve_index=False)
    for index, name in enumerate(table.column_names):
        for schema in (LABEL_SCHEMA, MANIFEST_SCHEMA):
            if name in schema.names:
                table = table.set_column(index, name, table[name].cast(schema.field(name).type))
                break
    return table


def read_scores(run: RunDir) -> pd.DataFrame:
    """One row per (clip, system): the last one scored (resumed runs never duplicate)."""
    if not run.has_table(SCORES):
        return pd.DataFrame(columns=SCORE_SCHEMA.names)
    frame = run.read_pandas(SCORES, dedup_key=None)
    if "scored_at" in frame:
        frame = frame.sort_values("scored_at", kind="stable", na_position="first")
    return frame.drop_duplicates(["clip_id", "system"], keep="last").reset_index(drop=True)


def read_rejects(run: RunDir) -> pd.DataFrame:
    """Every reject row (decode and label stages), one per clip."""
    if not run.has_table(REJECTS):
        return pd.DataFrame(columns=REJECT_SCHEMA.names)
    return run.read_pandas(REJECTS)


def decode_rejected(run: RunDir) -> set[str]:
    """Clips whose audio could not be used; they get no score rows."""
    rejects = read_rejects(run)
    return set(rejects.loc[rejects["stage"] == DECODE_STAGE, "clip_id"])


def read_labels(run: RunDir, include_incomplete: bool | None = None) -> pd.DataFrame:
    """The labels training and evaluation use.

    Complete clips only (every configured system scored), unless ``include_incomplete``;
    ``None`` follows ``label.include_incomplete`` of the ``serec label`` run that wrote them.
    """
    labels = run.read_pandas(LABELS)
    if include_incomplete is None:
        include_incomplete = bool(run.exists(LABEL_SUMMARY) and run.read_json(
            LABEL_SUMMARY).get("include_incomplete", False))
    if include_incomplete or "complete" not in labels:
        return labels
    return labels[labels["complete"].astype(bool)].reset_index(drop=True)
