"""``serec features``: CE/KL statistics and routing descriptors for every manifest clip, with
Ray Data."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

from serec.audio import TARGET_SR, AudioRejected
from serec.config import SerecConfig
from serec.data.manifest import read_manifest
from serec.features.descriptors import AUDIO_FEATURE_COLUMNS
from serec.label.stages import NOISY, decode_clip
from serec.ray_utils import dataset_from_frame, init_ray
from serec.runs import FEATURES, SCORES, RunDir

NOISY_SCORE_COLUMNS = ("sig", "bak", "ovr", "p808")


def features_batch(batch: pd.DataFrame, min_seconds: float, max_seconds: float) -> pd.DataFrame:
    """CPU task: manifest rows -> clip_id + CE/KL and routing-descriptor columns
    (+ ``reject_reason``)."""
    from serec.features.descriptors import AUDIO_FEATURE_COLUMNS, audio_features

    rows = []
    for row in batch.itertuples(index=False):
        values = [math.nan] * len(AUDIO_FEATURE_COLUMNS)
        reason = None
        try:
            duration = None if pd.isna(row.duration_s) else float(row.duration_s)
            audio = decode_clip(row.path, row.offset_s, duration, min_seconds, max_seconds)
            values = list(audio_features(audio, TARGET_SR))
        except AudioRejected as exc:
            reason = str(exc)
        rows.append(dict(clip_id=row.clip_id,
                         **dict(zip(AUDIO_FEATURE_COLUMNS, values, strict=True)),
                         reject_reason=reason))
    return pd.DataFrame(rows)


def noisy_scores(run: RunDir) -> pd.DataFrame | None:
    """The noisy input's DNSMOS scores as ``noisy_<field>`` columns, when labeling has run."""
    if not run.has_table(SCORES):
        return None
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    noisy = scores.loc[scores["system"] == NOISY, ["clip_id", *NOISY_SCORE_COLUMNS]]
    return noisy.rename(columns={c: f"noisy_{c}" for c in NOISY_SCORE_COLUMNS})


def run_features(run: RunDir, config: SerecConfig, address: str | None = None) -> pd.DataFrame:
    """Compute features for clips that have none yet; returns the whole features table."""
    manifest = read_manifest(run)
    done = set(run.read_table(FEATURES).column("clip_id").to_pylist()) \
        if run.has_table(FEATURES) else set()
    todo = manifest[~manifest["clip_id"].isin(done)].reset_index(drop=True)
    res = config.features
    skipped = 0
    if len(todo):
        init_ray(address)
        ds = dataset_from_frame(todo, res.batch_size)
        ds = ds.map_batches(features_batch, batch_format="pandas", batch_size=res.batch_size,
                            num_cpus=res.num_cpus,
                            fn_kwargs=dict(min_seconds=config.label.min_seconds,
                                           max_seconds=config.label.max_seconds))
        for batch in ds.iter_batches(batch_format="pandas", batch_size=256):
            ok = batch["reject_reason"].isna()
            skipped += int((~ok).sum())
            if ok.any():
                part = batch.loc[ok].drop(columns=["reject_reason"])
                # a descriptor NaN in every row of a batch arrives as an all-null column
                part[list(AUDIO_FEATURE_COLUMNS)] = part[list(AUDIO_FEATURE_COLUMNS)].astype(
                    "float64")
                run.append_part(FEATURES, pa.Table.from_pandas(part, preserve_index=False))
    table = run.read_pandas(FEATURES) if run.has_table(FEATURES) else pd.DataFrame()
    scores = noisy_scores(run)
    if scores is not None and len(table):
        table = table.drop(columns=[c for c in table if c.startswith("noisy_")])
        table = table.merge(scores, on="clip_id", how="left")
    table.attrs["skipped"] = skipped
    return table
