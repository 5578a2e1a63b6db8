"""``serec label``: manifest -> decode -> every enhancer -> DNSMOS -> scores/labels/rejects.

The Ray Data plan is ``from_pandas(manifest) → map_batches(decode, CPU tasks) →
map_batches(Enhance[e], actor pool) per enhancer → map_batches(Score, actor pool)``; the
driver streams the result and writes Parquet parts atomically. Clips already in ``labels/`` or
``rejects/`` are skipped, so a rerun after a crash resumes where it stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import ray

from serec.audio import TARGET_SR, write_wav
from serec.config import SerecConfig
from serec.data.manifest import MANIFEST_SCHEMA, METADATA_COLUMNS, read_manifest
from serec.enhancers.registry import parse_enhancer_specs
from serec.label.rule import decide_label
from serec.label.stages import (
    NOISY,
    SCORE_FIELDS,
    Enhance,
    Score,
    add_decode,
    as_float,
    from_bytes,
    output_column,
)
from serec.ray_utils import dataset_from_frame, init_ray
from serec.runs import LABEL_SUMMARY, LABELS, REJECTS, SCORES, RunDir

REJECT_SCHEMA = pa.schema([("clip_id", pa.string()), ("path", pa.string()),
                           ("stage", pa.string()), ("reason", pa.string())])
NO_SCORE_REASON = "no_system_scored: every enhancer or DNSMOS call failed"


def finished_clips(run: RunDir) -> set[str]:
    """Clip ids that already have a label or a reject row."""
    done: set[str] = set()
    for folder in (LABELS, REJECTS):
        if run.has_table(folder):
            done |= set(run.read_table(folder).column("clip_id").to_pylist())
    return done


def build_dataset(todo: pd.DataFrame, config: SerecConfig, keep_audio: bool) -> ray.data.Dataset:
    """The streaming Ray Data plan for the clips in ``todo``."""
    decode = config.label.decode
    specs = parse_enhancer_specs(config.enhancers)
    ds = dataset_from_frame(todo, decode.batch_size)
    ds = add_decode(ds, decode, config.label.min_seconds, config.label.max_seconds)
    for name, spec in specs.items():
        ds = ds.map_batches(
            Enhance, fn_constructor_kwargs=dict(name=name, entry=config.enhancers[name]),
            **spec.resources.actor_pool_args())
    dnsmos = config.dnsmos
    return ds.map_batches(Score, fn_constructor_kwargs=dict(
        systems=list(specs), personalized=dnsmos.personalized, keep_audio=keep_audio,
        use_gpu=dnsmos.num_gpus > 0, max_windows_per_run=dnsmos.max_windows_per_run),
        **dnsmos.actor_pool_args())


@dataclass
class _Tables:
    """Rows waiting to be written as one atomic part per table."""

    scores: list[dict] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels) + len(self.rejects)


def score_rows(row: pd.Series, systems: list[str]) -> list[dict]:
    """Long-format rows (clip_id, system) for one clip."""
    rows = []
    for system in [NOISY, *systems]:
        enhancer = system != NOISY
        errors = [row.get(f"err__{system}") if enhancer else None,
                  row.get(f"{system}__score_error")]
        error = next((e for e in errors if isinstance(e, str) and e), None)
        rows.append(dict(
            clip_id=row["clip_id"], system=system,
            **{f: as_float(row[f"{system}__{f}"]) for f in SCORE_FIELDS},
            seconds=as_float(row[f"sec__{system}"]) if enhancer else 0.0,
            dnsmos_seconds=as_float(row[f"{system}__dnsmos_s"]),
            audio_s=as_float(row["audio_s"]),
            node_id=str(row[f"node__{system}"]) if enhancer else str(row["score_node"]),
            error=error))
    return rows


def label_row(row: pd.Series, config: SerecConfig) -> dict | None:
    systems = list(config.enhancers)
    ovr = {s: as_float(row[f"{s}__ovr"]) for s in [NOISY, *systems]}
    decision = decide_label(ovr, config.candidates, config.label.fail_threshold,
                            cheapest_within=config.label.cheapest_within,
                            cost_by_system={s: as_float(row[f"sec__{s}"]) for s in systems})
    if decision is None:
        return None
    meta = {c: row.get(c) for c in ("path", "clean_path", "duration_s", *METADATA_COLUMNS)}
    return dict(clip_id=row["clip_id"], **meta, **{f"{s}_ovr": v for s, v in ovr.items()},
                best_system=decision.best_system, best_ovr=decision.best_ovr,
                second_ovr=decision.second_ovr, margin=decision.margin, label=decision.label)


def save_outputs(run: RunDir, row: pd.Series, systems: list[str]) -> None:
    for system in systems:
        data = row.get(output_column(system))
        if data:
            write_wav(Path(run.local_root) / "audio" / "enhanced" / system /
                      f"{row['clip_id']}.wav", from_bytes(data), TARGET_SR)


def labels_table(labels: list[dict]) -> pa.Table:
    """Label rows as a table whose manifest columns keep the manifest's types: a part whose
    clips all lack a value (no ``rir_id`` among its clips) would otherwise hold a double column
    that no later part's strings can be concatenated with."""
    table = pa.Table.from_pandas(pd.DataFrame(labels), preserve_index=False)
    for index, name in enumerate(table.column_names):
        if name in MANIFEST_SCHEMA.names:
            table = table.set_column(index, name,
                                     table[name].cast(MANIFEST_SCHEMA.field(name).type))
    return table


def flush(run: RunDir, pending: _Tables) -> None:
    """Scores first, then labels/rejects: a clip counts as done only once all are on disk."""
    if pending.scores:
        run.append_part(SCORES, pa.Table.from_pylist(pending.scores))
    if pending.rejects:
        run.append_part(REJECTS, pa.Table.from_pylist(pending.rejects, schema=REJECT_SCHEMA))
    if pending.labels:
        run.append_part(LABELS, labels_table(pending.labels))
    pending.scores.clear()
    pending.labels.clear()
    pending.rejects.clear()


def run_label(run: RunDir, config: SerecConfig, address: str | None = None,
              save_audio: bool | None = None) -> dict[str, Any]:
    """Label every manifest clip not yet labeled or rejected; returns the summary."""
    save_audio = config.label.save_audio if save_audio is None else save_audio
    manifest = read_manifest(run)
    done = finished_clips(run)
    todo = manifest[~manifest["clip_id"].isin(done)].reset_index(drop=True)
    systems = list(config.enhancers)
    started = time.perf_counter()
    if len(todo):
        init_ray(address)
        ds = build_dataset(todo, config, keep_audio=save_audio)
        pending = _Tables()
        for batch in ds.iter_batches(batch_format="pandas", batch_size=None):
            for _, row in batch.iterrows():
                if isinstance(row["reject_reason"], str):
                    pending.rejects.append(dict(clip_id=row["clip_id"], path=row["path"],
                                                stage="decode", reason=row["reject_reason"]))
                    continue
                pending.scores.extend(score_rows(row, systems))
                labeled = label_row(row, config)
                if labeled is None:
                    pending.rejects.append(dict(clip_id=row["clip_id"], path=row["path"],
                                                stage="label", reason=NO_SCORE_REASON))
                else:
                    pending.labels.append(labeled)
                if save_audio:
                    save_outputs(run, row, systems)
            if len(pending) >= config.label.rows_per_part:
                flush(run, pending)
        flush(run, pending)
    summary = summarize(run, manifest, time.perf_counter() - started, len(todo))
    run.write_json(LABEL_SUMMARY, summary)
    return summary


def summarize(run: RunDir, manifest: pd.DataFrame, wall_s: float, processed: int) -> dict:
    """Counts per label and reject reason, per-system compute, throughput of this invocation."""
    labels = run.read_pandas(LABELS) if run.has_table(LABELS) else pd.DataFrame(
        columns=["clip_id", "label"])
    rejects = run.read_pandas(REJECTS) if run.has_table(REJECTS) else pd.DataFrame(
        columns=["clip_id", "reason"])
    scores = (run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
              if run.has_table(SCORES) else pd.DataFrame())
    reasons = Counter(str(r).split(":", 1)[0] for r in rejects["reason"])
    per_system = {}
    if len(scores):
        for system, group in scores.groupby("system"):
            per_system[system] = dict(
                mean_ovr=float(group["ovr"].mean()), errors=int(group["error"].notna().sum()),
                compute_s=float(group["seconds"].sum()),
                real_time_factor=float(group["seconds"].sum() / max(group["audio_s"].sum(),
                                                                    1e-9)))
    audio_s = float(scores.loc[scores["system"] == NOISY, "audio_s"].sum()) if len(scores) else 0.0
    return dict(
        manifest_clips=int(len(manifest)), labeled=int(len(labels)), rejected=int(len(rejects)),
        missing=int(len(set(manifest["clip_id"]) - set(labels["clip_id"])
                        - set(rejects["clip_id"]))),
        labels=dict(Counter(labels["label"])), reject_reasons=dict(reasons),
        systems=per_system, processed_this_run=processed, wall_s=wall_s,
        clips_per_s=processed / wall_s if processed and wall_s else None,
        audio_s_total=audio_s)


def format_summary(summary: dict) -> str:
    """The summary as the plain-text table printed at the end of ``serec label``."""
    lines = [f"clips in manifest {summary['manifest_clips']}: labeled {summary['labeled']}, "
             f"rejected {summary['rejected']}, missing {summary['missing']}", "",
             f"{'label':<20}{'clips':>8}{'share':>9}"]
    total = max(summary["labeled"], 1)
    for label, count in sorted(summary["labels"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{label:<20}{count:>8}{count / total:>9.1%}")
    if summary["reject_reasons"]:
        lines += ["", f"{'reject reason':<20}{'clips':>8}"]
        lines += [f"{r:<20}{n:>8}" for r, n in sorted(summary["reject_reasons"].items())]
    if summary["systems"]:
        lines += ["", f"{'system':<20}{'mean OVR':>9}{'errors':>8}{'RTF':>8}"]
        for system, s in summary["systems"].items():
            lines.append(f"{system:<20}{s['mean_ovr']:>9.3f}{s['errors']:>8}"
                         f"{s['real_time_factor']:>8.3f}")
    if summary["clips_per_s"]:
        lines += ["", f"this run: {summary['processed_this_run']} clips in "
                      f"{summary['wall_s']:.1f} s ({summary['clips_per_s']:.2f} clips/s)"]
    return "\n".join(lines)


