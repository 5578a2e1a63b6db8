"""``serec recommend``: any audio in, each clip enhanced by the one system it is routed to.

Ray Data plan::

    from_pandas(files) -> map_batches(decode_batch, CPU tasks)
      -> map_batches(Route, actor pool) -> materialize
      -> for each routed system S:  map_batches(keep_system S, tasks)
                                    -> map_batches(Enhance S, S's actor pool) -> name_output
      -> union -> [map_batches(Score, DNSMOS actor pool)] -> map_batches(write_outputs, tasks)

so an enhancer's actors only ever receive the clips routed to it, and the audio never travels
to the driver. Outputs land in ``OUT/rec_<system>/<name>.wav`` with ``decisions.parquet`` and
``rejects.parquet`` beside them; ``OUT`` may be a local or NFS folder or an object-store URI.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pandas as pd
import pyarrow as pa
import ray

from serec.config import ConfigError, SerecConfig
from serec.enhancers.registry import enhancer_class, parse_enhancer_spec, resolved_entries
from serec.label.rule import ALL_FAILED
from serec.label.stages import NOISY, Enhance, Score, add_decode, as_float
from serec.ray_utils import dataset_from_frame, init_ray
from serec.recommend.inputs import collect_inputs
from serec.recommend.router import (
    deployed_system,
    probability_column,
    resolve_threshold,
    router_classes,
)
from serec.recommend.stages import OUTPUT, Route, keep_system, name_output, write_outputs
from serec.runs import RunDir

DECISIONS_FILE = "decisions.parquet"
REJECTS_FILE = "rejects.parquet"
# Ray Data fuses a task stage into the actor stage after it only when both request the same
# resources; the per-system filter always asks for a different CPU share than its enhancer, so
# blocks holding other systems' clips are filtered in separate tasks and never shipped to that
# enhancer's actors (tests/recommend checks the executed plan).
FILTER_CPUS = 0.1
REJECT_SCHEMA = pa.schema([("path", pa.string()), ("stage", pa.string()),
                           ("reason", pa.string()), ("detail", pa.string())])


def system_entries(config: SerecConfig, systems: list[str]) -> dict[str, dict[str, Any]]:
    """The enhancer config entry of every system the router can choose (chain steps that name
    other entries resolved, as :func:`serec.enhancers.registry.resolved_entries`).

    A system that is not in ``enhancers:`` but is a registered kind (``passthrough``, the
    default fallback) is built from ``{kind: <name>}``.
    """
    configured = resolved_entries(config.enhancers)
    entries = {}
    for system in systems:
        if system in configured:
            entries[system] = dict(configured[system])
            continue
        try:
            enhancer_class(system)
        except ValueError as exc:
            raise ConfigError(f"the router can choose '{system}', which is neither a configured "
                              f"enhancer nor an enhancer kind ({exc})") from exc
        entries[system] = {"kind": system}
    for system, entry in entries.items():
        parse_enhancer_spec(system, entry)  # fails before any Ray work
    return entries


def _branch(routed: ray.data.Dataset, system: str, entry: dict[str, Any]) -> ray.data.Dataset:
    """The clips routed to ``system`` through that enhancer's own actor pool."""
    res = parse_enhancer_spec(system, entry).resources
    filter_cpus = FILTER_CPUS if not math.isclose(res.num_cpus, FILTER_CPUS) else FILTER_CPUS / 2
    subset = routed.map_batches(keep_system, fn_kwargs=dict(system=system), batch_format="pandas",
                                batch_size=None, num_cpus=filter_cpus)
    enhanced = subset.map_batches(
        Enhance, fn_constructor_kwargs=dict(name=system, entry=entry),
        **res.actor_pool_args())
    return enhanced.map_batches(name_output, fn_kwargs=dict(system=system),
                                batch_format="pandas", batch_size=None, num_cpus=FILTER_CPUS)


def _decision_row(row: pd.Series, classes: list[str], score: bool) -> dict:
    system = str(row["system"])
    error = row.get("enhancer_error")
    error = error if isinstance(error, str) and error else None
    output = row.get("output")
    decision = {
        "path": row["path"], "name": row["name"], "clip_id": row["clip_id"],
        "label": row["label"], "system": system, "confidence": as_float(row["confidence"]),
        "routed_to_expert": bool(row["routed_to_expert"]),
        # NaN for a label the deployed router has no class for (an OVR router: all_failed)
        **{probability_column(c): as_float(row.get(probability_column(c))) for c in classes},
        "router_s": as_float(row["router_s"]), "enhancer_s": as_float(row["enhancer_s"]),
        "audio_s": as_float(row["audio_s"]), "output": output if isinstance(output, str) else None,
        "enhancer_error": error,
    }
    if score:
        for prefix, system_name in (("noisy", NOISY), ("output", OUTPUT)):
            for field in ("sig", "bak", "ovr", "p808"):
                decision[f"{prefix}_{field}"] = as_float(row[f"{system_name}__{field}"])
        score_error = row.get(f"{OUTPUT}__score_error")
        decision["score_error"] = score_error if isinstance(score_error, str) else None
    return decision


def recommend_files(run: RunDir, config: SerecConfig, inputs: list[str], out_dir: str,
                    score: bool = False, address: str | None = None) -> pd.DataFrame:
    """Route and enhance every audio file in ``inputs`` (files or folders) into ``out_dir``
    (a local or NFS folder or an object-store URI; Ray workers write the WAVs).

    Returns the decisions (also in ``OUT/decisions.parquet``); ``attrs`` holds ``rejects`` (also
    ``OUT/rejects.parquet``), ``threshold``, ``threshold_source``, ``folds`` and ``out_dir``.
    """
    collected = collect_inputs(inputs)
    two_stage, folds = router_classes(run)
    threshold, threshold_source = resolve_threshold(run, config)
    fallback = config.recommend.fallback
    systems = list(dict.fromkeys([*(fallback if c == ALL_FAILED else c for c in two_stage.classes),
                                  *filter(None, [deployed_system(run)])]))
    entries = system_entries(config, systems)
    out = RunDir.of(out_dir)
    rows: list[dict] = []
    rejects = list(collected.rejects)
    if len(collected.files):
        init_ray(address)
        routed = _routed_dataset(run, config, collected.files, threshold)
        index = routed.select_columns(["path", "system", "reject_reason"]).to_pandas()
        for path, reason in index.loc[index["reject_reason"].notna(),
                                      ["path", "reject_reason"]].itertuples(index=False):
            code, _, detail = str(reason).partition(":")
            rejects.append(dict(path=path, stage="decode", reason=code, detail=detail.strip()))
        branches = [_branch(routed, s, entries[s]) for s in systems
                    if (index["system"] == s).any()]
        if branches:
            enhanced = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]
            if score:
                enhanced = enhanced.map_batches(Score, fn_constructor_kwargs=dict(
                    systems=[OUTPUT], personalized=config.dnsmos.personalized, keep_audio=True,
                    use_gpu=config.dnsmos.num_gpus > 0,
                    share_windows=config.dnsmos.share_windows), **config.dnsmos.actor_pool_args())
            enhanced = enhanced.map_batches(write_outputs, fn_kwargs=dict(out_root=out.root),
                                            batch_format="pandas", batch_size=None,
                                            num_cpus=FILTER_CPUS)
            for batch in enhanced.iter_batches(batch_format="pandas", batch_size=None):
                for _, row in batch.iterrows():
                    rows.append(_decision_row(row, two_stage.classes, score))
                    if rows[-1]["enhancer_error"]:
                        rejects.append(dict(path=row["path"], stage="enhance",
                                            reason="enhancer_failed",
                                            detail=rows[-1]["enhancer_error"]))
    decisions = pd.DataFrame(rows, columns=_decision_columns(two_stage.classes, score))
    decisions = decisions.sort_values("path").reset_index(drop=True)
    out.write_table(DECISIONS_FILE, pa.Table.from_pandas(decisions, preserve_index=False))
    reject_frame = pd.DataFrame(rejects, columns=REJECT_SCHEMA.names)
    out.write_table(REJECTS_FILE, pa.Table.from_pandas(reject_frame, schema=REJECT_SCHEMA,
                                                       preserve_index=False))
    decisions.attrs.update(rejects=reject_frame, threshold=threshold, folds=folds,
                           threshold_source=threshold_source, out_dir=out.root)
    return decisions


def _routed_dataset(run: RunDir, config: SerecConfig, files: pd.DataFrame,
                    threshold: float) -> ray.data.Dataset:
    """Decode (whole files, validated, 16 kHz) and route every file; materialized, so that
    each system's branch reads the routed blocks without routing again."""
    decode = config.label.decode
    ds = dataset_from_frame(files, decode.batch_size)
    ds = add_decode(ds, decode, config.label.min_seconds, math.inf)
    router_pool = config.features  # the router computes features; it shares their resources
    ds = ds.map_batches(Route, fn_constructor_kwargs=dict(
        run_root=run.root, threshold=threshold, fallback=config.recommend.fallback,
        max_seconds=config.label.max_seconds,
        threads=max(1, int(round(router_pool.num_cpus)))), **router_pool.actor_pool_args())
    return ds.materialize()


def _decision_columns(classes: list[str], score: bool) -> list[str]:
    columns = ["path", "name", "clip_id", "label", "system", "confidence", "routed_to_expert",
               *(probability_column(c) for c in classes), "router_s", "enhancer_s", "audio_s",
               "output", "enhancer_error"]
    if score:
        columns += [f"{p}_{f}" for p in ("noisy", "output") for f in ("sig", "bak", "ovr", "p808")]
        columns.append("score_error")
    return columns


def format_recommend_summary(decisions: pd.DataFrame) -> str:
    """Clips per system, router and enhancer compute, quality when scored, rejects."""
    attrs = decisions.attrs
    rejects = attrs.get("rejects", pd.DataFrame(columns=REJECT_SCHEMA.names))
    lines = [f"{len(decisions)} clips enhanced, {len(rejects)} rejected"
             + (f" -> {attrs['out_dir']}" if attrs.get("out_dir") else "")]
    if "threshold" in attrs:
        lines.append(f"gatekeeper threshold {attrs['threshold']:.2f} "
                     f"({attrs.get('threshold_source', '?')}), folds {attrs.get('folds')}")
    if len(decisions):
        scored = "output_ovr" in decisions
        header = f"{'system':<20}{'clips':>7}{'router s':>10}{'enhancer s':>12}"
        header += f"{'OVR in':>8}{'OVR out':>9}" if scored else ""
        lines += ["", header]
        for system, group in decisions.groupby("system", sort=True):
            line = (f"{system:<20}{len(group):>7}{group['router_s'].mean():>10.3f}"
                    f"{group['enhancer_s'].mean():>12.3f}")
            if scored:
                line += f"{group['noisy_ovr'].mean():>8.2f}{group['output_ovr'].mean():>9.2f}"
            lines.append(line)
        router, enhancer = decisions["router_s"].sum(), decisions["enhancer_s"].sum()
        lines += ["", f"router compute {router:.2f} s = {router / max(enhancer, 1e-12):.1%} of "
                      f"the enhancers' {enhancer:.2f} s"]
    if len(rejects):
        lines += ["", "rejected: " + ", ".join(
            f"{reason} {count}" for reason, count in sorted(Counter(rejects["reason"]).items()))]
    return "\n".join(lines)

