"""``serec label``: every (clip, system) pair scored by DNSMOS, then labels derived from scores.

The Ray Data plan has one branch per system: an ``Enhance[e]`` actor pool for each enhancer
``e``, which decodes the manifest rows it is given and enhances them, and for ``noisy`` a
decode task stage. An identity system (``passthrough``) has no branch: its output is the noisy
clip, so the noisy branch's DNSMOS scores are written for it too (one pass per clip). The
branches are united into one shared ``DNSMOS`` actor pool, then a writer task that puts
``scores/`` (and decode ``rejects/``) parts into the run dir and hands the driver only a
count. No system's audio passes through another system's pool. Labels are then derived from
``scores/`` by Ray tasks (:mod:`serec.label.aggregate`).

Resume is per pair: only pairs without a score row (of clips not rejected at decode) are
computed, so a rerun after a crash, or after adding an enhancer to the config, does only the
missing work. A batch whose worker dies (a native crash, an out-of-memory kill) is not retried
in place: its pairs are run again in halved batches until the pair that kills its worker is
alone (one task per actor at a time), and that pair gets an error row (``worker_died: ...``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import ray

from serec.config import SerecConfig
from serec.data.manifest import read_manifest
from serec.enhancers.registry import EnhancerSpec, parse_enhancer_specs, resolved_entries
from serec.label.aggregate import derive_labels
from serec.label.pairs import AS_SYSTEMS, EnhancePairs, ScorePairs, noisy_pairs, write_pairs
from serec.label.stages import NOISY, SCORE_FIELDS, add_decode
from serec.label.tables import (
    WORKER_DIED,
    decode_rejected,
    read_labels,
    read_rejects,
    read_scores,
    score_table,
)
from serec.progress import Progress
from serec.ray_utils import capped_execution_options, dataset_from_frame, init_ray
from serec.resources import Resources
from serec.runs import LABEL_SUMMARY, LABELS, SCORES, RunDir

TASK_RETRIES = 1  # a task stage whose worker died runs once more, then its batch is isolated
WORKER_DIED_REASON = (f"{WORKER_DIED}: its Ray worker died (or its batch failed) in every "
                      "attempt, down to a batch of this pair alone")


def pending_pairs(run: RunDir, manifest: pd.DataFrame, systems: list[str]
                  ) -> dict[str, pd.DataFrame]:
    """Per system, the manifest rows without a score row (clips rejected at decode excluded)."""
    scores = read_scores(run)
    rejected = decode_rejected(run)
    clips = manifest[~manifest["clip_id"].isin(rejected)]
    todo = {}
    for system in systems:
        done = set(scores.loc[scores["system"] == system, "clip_id"])
        todo[system] = clips[~clips["clip_id"].isin(done)].reset_index(drop=True)
    return todo


def identity_systems(specs: Mapping[str, EnhancerSpec]) -> list[str]:
    """Systems whose output is the noisy clip itself (scored with it, see the module doc)."""
    return [name for name, spec in specs.items() if spec.identity]


def noisy_branch_clips(todo: dict[str, pd.DataFrame], identity: list[str]
                       ) -> pd.DataFrame | None:
    """Clips the noisy branch decodes and scores once: those pending for ``noisy`` or for an
    identity system, each with the systems its scores are written for (:data:`AS_SYSTEMS`,
    comma-joined, ``noisy`` first); None when there are none."""
    pending = [s for s in (NOISY, *identity) if s in todo]
    if not pending:
        return None
    rows = pd.concat([todo[s].assign(**{AS_SYSTEMS: s}) for s in pending], ignore_index=True)
    systems = rows.groupby("clip_id", sort=False)[AS_SYSTEMS].agg(",".join)
    clips = rows.drop_duplicates("clip_id").drop(columns=AS_SYSTEMS)
    return clips.assign(**{AS_SYSTEMS: clips["clip_id"].map(systems)}).reset_index(drop=True)


def _shrunk(resources: Resources, halvings: int) -> Resources:
    return dataclasses.replace(resources, batch_size=max(1, resources.batch_size >> halvings))


def _actor_pool(resources: Resources, isolating: bool) -> dict[str, Any]:
    """Actor-pool keywords; a task that kills its actor is not retried (the actor restarts).

    While isolating a deadly pair, an actor runs one task at a time, so that a dying actor
    takes no other batch down with it.
    """
    args = dict(resources.actor_pool_args(), max_task_retries=0)
    if isolating:
        args["compute"] = ray.data.ActorPoolStrategy(
            min_size=resources.min_actors, max_size=resources.max_actors,
            max_tasks_in_flight_per_actor=1)
    return args


def build_dataset(run: RunDir, todo: dict[str, pd.DataFrame], config: SerecConfig,
                  save_audio: bool, halvings: int = 0) -> ray.data.Dataset:
    """The plan for the pending pairs; every batch size is halved ``halvings`` times."""
    decode = _shrunk(config.label.decode, halvings)
    specs = parse_enhancer_specs(config.enhancers)
    entries = resolved_entries(config.enhancers)
    branches = []
    seconds = dict(min_seconds=config.label.min_seconds, max_seconds=config.label.max_seconds)
    identity = identity_systems(specs)
    noisy = noisy_branch_clips(todo, identity)
    if noisy is not None:
        ds = add_decode(dataset_from_frame(noisy, decode.batch_size), decode,
                        max_retries=TASK_RETRIES, **seconds)
        branches.append(ds.map_batches(noisy_pairs, batch_format="pandas", batch_size=None,
                                       max_retries=TASK_RETRIES, **decode.task_args()))
    for system, clips in todo.items():
        if system == NOISY or system in identity:
            continue
        resources = _shrunk(specs[system].resources, halvings)
        branches.append(dataset_from_frame(clips, resources.batch_size).map_batches(
            EnhancePairs, fn_constructor_kwargs=dict(
                name=system, entry=entries[system], **seconds),
            **_actor_pool(resources, halvings > 0)))
    ds = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]
    dnsmos = config.dnsmos
    ds = ds.map_batches(ScorePairs, fn_constructor_kwargs=dict(
        run_root=run.root, personalized=dnsmos.personalized, use_gpu=dnsmos.num_gpus > 0,
        max_windows_per_run=dnsmos.max_windows_per_run, share_windows=dnsmos.share_windows,
        save_audio=save_audio,
        shifts_ms=tuple(config.label.framings.all_shifts_ms), score=config.label.framings.score),
        **_actor_pool(_shrunk(dnsmos, halvings), halvings > 0))
    # Isolation rounds (halvings > 0) write pair by pair.
    ds = ds.map_batches(write_pairs, fn_kwargs=dict(run_root=run.root), batch_format="pandas",
                        batch_size=1 if halvings else config.label.rows_per_part,
                        max_retries=TASK_RETRIES, **decode.task_args())
    if config.label.object_store_mib is not None:
        ds.context.execution_options = capped_execution_options(
            config.label.object_store_mib * 2**20)
    if config.label.wait_for_actors_s is not None:
        ds.context.wait_for_min_actors_s = config.label.wait_for_actors_s
    return ds


def _largest_batch(config: SerecConfig) -> int:
    specs = parse_enhancer_specs(config.enhancers)
    return max([config.label.decode.batch_size, config.dnsmos.batch_size,
                *(s.resources.batch_size for s in specs.values())])


@contextlib.contextmanager
def _errored_blocks_skipped() -> Iterator[None]:
    """Let Ray Data finish past batches whose worker died (their pairs are isolated later)."""
    ctx = ray.data.DataContext.get_current()
    before = ctx.max_errored_blocks
    ctx.max_errored_blocks = -1
    try:
        yield
    finally:
        ctx.max_errored_blocks = before


def compute_pairs(run: RunDir, manifest: pd.DataFrame, config: SerecConfig, save_audio: bool,
                  progress: Progress) -> None:
    """Score every pending pair; pairs whose worker keeps dying end as error rows."""
    systems = [NOISY, *config.enhancers]
    largest = _largest_batch(config)
    halvings = 0
    while True:
        todo = {s: f for s, f in pending_pairs(run, manifest, systems).items() if len(f)}
        if not todo:
            return
        # The last round isolated (one task per actor) with batches of one pair: these died.
        if halvings > 1 and largest >> (halvings - 1) <= 1:
            _write_worker_died(run, todo)
            progress.update(sum(len(f) for f in todo.values()))
            return
        with _errored_blocks_skipped():
            ds = build_dataset(run, todo, config, save_audio, halvings)
            for batch in ds.iter_batches(batch_format="pandas", batch_size=None):
                progress.update(int(batch["pairs"].sum()))
        halvings += 1


def _write_worker_died(run: RunDir, todo: dict[str, pd.DataFrame]) -> None:
    rows = pd.concat([pd.DataFrame({"clip_id": f["clip_id"], "system": s})
                      for s, f in todo.items()], ignore_index=True)
    for column in (*SCORE_FIELDS, "seconds", "dnsmos_seconds", "audio_s"):
        rows[column] = np.nan
    rows["node_id"] = None
    rows["error"] = WORKER_DIED_REASON
    rows["scored_at"] = time.time()
    run.append_part(SCORES, score_table(rows))


def run_label(run: RunDir, config: SerecConfig, address: str | None = None,
              save_audio: bool | None = None) -> dict[str, Any]:
    """Score every pending (clip, system) pair, derive the labels; returns the summary."""
    save_audio = config.label.save_audio if save_audio is None else save_audio
    manifest = read_manifest(run)
    systems = [NOISY, *config.enhancers]
    started = time.perf_counter()
    todo = pending_pairs(run, manifest, systems)
    pairs = sum(len(f) for f in todo.values())
    clips = len(set().union(*(set(f["clip_id"]) for f in todo.values())))
    init_ray(address)
    if pairs:
        with Progress("label", pairs, unit="pairs") as progress:
            compute_pairs(run, manifest, config, save_audio, progress)
    derive_labels(run, config)
    summary = summarize(run, manifest, config, time.perf_counter() - started, clips, pairs)
    run.write_json(LABEL_SUMMARY, summary)
    return summary


def summarize(run: RunDir, manifest: pd.DataFrame, config: SerecConfig, wall_s: float,
              processed: int, pairs: int) -> dict:
    """Counts per label and reject reason, per-system compute, throughput of this invocation."""
    systems = [NOISY, *config.enhancers]
    labels = read_labels(run, include_incomplete=True) if run.has_table(LABELS) else \
        pd.DataFrame(columns=["clip_id", "label", "complete"])
    rejects = read_rejects(run)
    scores = read_scores(run)
    scores = scores[scores["system"].isin(systems)]
    reasons = Counter(str(r).split(":", 1)[0] for r in rejects["reason"])
    per_system = {}
    for system, group in scores.groupby("system", sort=False):
        errors = group["error"].dropna().astype(str)
        per_system[system] = dict(
            mean_ovr=float(group["ovr"].mean()), errors=int(len(errors)),
            worker_died=int(errors.str.startswith(WORKER_DIED).sum()),
            compute_s=float(group["seconds"].sum()),
            real_time_factor=float(group["seconds"].sum() / max(group["audio_s"].sum(), 1e-9)))
    complete = int(labels["complete"].astype(bool).sum()) if len(labels) else 0
    floors = pd.to_numeric(labels.get("noise_floor", pd.Series(dtype=float)), errors="coerce")
    tied = labels.get("tied_systems", pd.Series(dtype=object)).fillna("").astype(str)
    audio_s = float(scores.loc[scores["system"] == NOISY, "audio_s"].sum())
    return dict(
        manifest_clips=int(len(manifest)), labeled=int(len(labels)), rejected=int(len(rejects)),
        complete=complete, incomplete=int(len(labels)) - complete,
        include_incomplete=bool(config.label.include_incomplete),
        missing=int(len(set(manifest["clip_id"]) - set(labels["clip_id"])
                        - set(rejects["clip_id"]))),
        labels=dict(Counter(labels["label"])), reject_reasons=dict(reasons),
        framings=dict(shifts_ms=config.label.framings.all_shifts_ms,
                      score=config.label.framings.score),
        tie_margin=config.label.tie_margin,
        median_noise_floor=float(floors.median()) if floors.notna().any() else None,
        tied_clips=int((tied.str.count(",") > 0).sum()),
        systems=per_system, processed_this_run=processed, pairs_this_run=pairs, wall_s=wall_s,
        clips_per_s=processed / wall_s if processed and wall_s else None,
        audio_s_total=audio_s)


def format_summary(summary: dict) -> str:
    """The summary as the plain-text table printed at the end of ``serec label``."""
    lines = [f"clips in manifest {summary['manifest_clips']}: labeled {summary['labeled']} "
             f"({summary['complete']} complete, {summary['incomplete']} incomplete), "
             f"rejected {summary['rejected']}, missing {summary['missing']}"]
    if summary["incomplete"]:
        used = "included" if summary["include_incomplete"] else "left out"
        lines.append(f"incomplete clips (a system unscored) are {used} in training and "
                     "evaluation (label.include_incomplete)")
    lines += ["", f"{'label':<20}{'clips':>8}{'share':>9}"]
    total = max(summary["labeled"], 1)
    for label, count in sorted(summary["labels"].items(), key=lambda kv: -kv[1]):
        lines.append(f"{label:<20}{count:>8}{count / total:>9.1%}")
    if summary["reject_reasons"]:
        lines += ["", f"{'reject reason':<20}{'clips':>8}"]
        lines += [f"{r:<20}{n:>8}" for r, n in sorted(summary["reject_reasons"].items())]
    if summary["systems"]:
        lines += ["", f"{'system':<20}{'mean OVR':>9}{'errors':>8}{'died':>6}{'RTF':>8}"]
        for system, s in summary["systems"].items():
            lines.append(f"{system:<20}{s['mean_ovr']:>9.3f}{s['errors']:>8}"
                         f"{s['worker_died']:>6}{s['real_time_factor']:>8.3f}")
    if summary.get("tied_clips"):
        floor = summary.get("median_noise_floor")
        lines += ["", f"{summary['tied_clips']} clips have more than one system within the "
                      f"noise floor of the best (tied_systems); median noise floor "
                      f"{'n/a' if floor is None else f'{floor:.3f}'} OVR"]
    if summary["clips_per_s"]:
        lines += ["", f"this run: {summary['pairs_this_run']} (clip, system) pairs of "
                      f"{summary['processed_this_run']} clips in {summary['wall_s']:.1f} s "
                      f"({summary['clips_per_s']:.2f} clips/s)"]
    return "\n".join(lines)
