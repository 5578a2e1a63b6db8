"""Labeling throughput: ``serec label`` (Ray Data) vs a plain single-process loop, or vs
``serec label`` of another commit.

Default: both paths use the same enhancer classes, config and DNSMOS model on the same clips.
Prints clips/s, audio-seconds/s, the speedup, and the Ray run's wall time over its busiest
stage's pure compute (how close the pipeline gets to the bottleneck).

``--against REF``: ``serec label`` of this checkout and of git ref ``REF`` (checked out as a
temporary worktree) label the same manifest, alternating, ``--repeats`` times each, every run
in its own process and Ray session; prints each run's wall time and clips/s, the medians and
their ratio. The config defaults to REF's ``configs/local.yaml`` (both versions must read it);
``--config-here`` gives this checkout another one, e.g. the same zoo with settings REF lacks.
``--manifest`` labels that manifest (e.g. a demo corpus's) instead of ``--clips`` mixed clips.

    python benchmarks/label_throughput.py [--clips 48] [--config configs/local.yaml]
    python benchmarks/label_throughput.py --against 7fd0b43 --clips 24 --repeats 3
    python benchmarks/label_throughput.py --against 7fd0b43 --manifest RUN/manifest.parquet
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from serec.config import load_config
from serec.data.manifest import read_manifest
from serec.data.mix import mix_files
from serec.enhancers.registry import parse_enhancer_specs
from serec.label.pipeline import run_label
from serec.label.stages import decode_clip
from serec.quality.dnsmos import Dnsmos
from serec.runs import SCORES, RunDir

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".." / "shared" / "corpus"


def make_run(root: Path, clips: int) -> RunDir:
    run = RunDir.of(root)
    if (CORPUS / "speech").is_dir():
        mix_files(run, [str(CORPUS / "speech")], [str(CORPUS / "noise")], clips, -5, 20, seed=3)
    else:
        from serec.data.demo import make_demo_corpus

        make_demo_corpus(run, clips, seed=3)
    return run


def plain_loop(run: RunDir, config) -> tuple[float, dict[str, float], float]:
    """One process, one clip at a time; models built before the clock starts."""
    enhancers = {n: s.build() for n, s in parse_enhancer_specs(config.enhancers).items()}
    dnsmos = Dnsmos(personalized=config.dnsmos.personalized)
    manifest = read_manifest(run)
    stage_s = {name: 0.0 for name in [*enhancers, "dnsmos", "decode"]}
    audio_s = 0.0
    start = time.perf_counter()
    for row in manifest.itertuples():
        t = time.perf_counter()
        clip = decode_clip(row.path, row.offset_s, row.duration_s)
        stage_s["decode"] += time.perf_counter() - t
        audio_s += clip.size / 16_000
        outputs = [clip]
        for name, enhancer in enhancers.items():
            t = time.perf_counter()
            outputs.extend(enhancer.enhance_batch([clip]))
            stage_s[name] += time.perf_counter() - t
        t = time.perf_counter()
        dnsmos.score_batch(outputs)
        stage_s["dnsmos"] += time.perf_counter() - t
    return time.perf_counter() - start, stage_s, audio_s


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A detached checkout of ``ref`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkout"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(path), ref], check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                           check=False)


def timed_label(checkout: Path, manifest: Path, run_root: Path, config: Path) -> float:
    """Wall seconds of ``serec label`` run from ``checkout`` in a fresh process on a copy of
    ``manifest``."""
    run_root.mkdir(parents=True)
    shutil.copy(manifest, run_root / manifest.name)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "serec", "label", "--run", str(run_root),
                    "--config", str(config)], cwd=checkout, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((run_root / "label_summary.json").read_text())
    if summary["labeled"] + summary["rejected"] != summary["manifest_clips"]:
        raise SystemExit(f"{run_root}: not every clip was labeled or rejected: {summary}")
    return wall


def versus_ref(ref: str, clips: int, repeats: int, config: str | None,
               config_here: str | None = None, manifest: Path | None = None) -> None:
    """Alternating runs of this checkout's and ``ref``'s ``serec label`` on one manifest
    (``manifest``, or ``clips`` clips mixed here)."""
    with worktree(ref) as other, tempfile.TemporaryDirectory() as tmp:
        run = RunDir.of(manifest.parent) if manifest else make_run(Path(tmp) / "source", clips)
        manifest = Path(run.root) / "manifest.parquet"
        config_path = Path(config) if config else other / "configs" / "local.yaml"
        here_path = Path(config_here) if config_here else config_path
        n = len(read_manifest(run))
        walls: dict[str, list[float]] = {ref: [], "this checkout": []}
        print(f"{n} clips, config {config_path} ({here_path} here); wall s (clips/s) per run:")
        for i in range(repeats):
            for name, checkout, tag, path in ((ref, other, "ref", config_path),
                                              ("this checkout", ROOT, "here", here_path)):
                wall = timed_label(checkout, manifest, Path(tmp) / f"{tag}-{i}", path)
                walls[name].append(wall)
                print(f"  {name:<16} run {i + 1}: {wall:7.1f} s ({n / wall:.3f} clips/s)",
                      flush=True)
    medians = {name: statistics.median(w) for name, w in walls.items()}
    for name, wall in medians.items():
        print(f"median {name:<16} {wall:7.1f} s  {n / wall:.3f} clips/s")
    print(f"throughput ratio (this checkout / {ref}): "
          f"{medians[ref] / medians['this checkout']:.2f}  (goal >= 1.0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--config", default=None)
    parser.add_argument("--config-here", default=None,
                        help="with --against: this checkout's config (default: --config)")
    parser.add_argument("--against", metavar="REF", default=None,
                        help="compare with serec label of this git ref instead of a plain loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--manifest", type=Path, default=None,
                        help="with --against: a run's manifest.parquet to label instead of "
                             "--clips mixed clips")
    args = parser.parse_args()
    if args.against:
        versus_ref(args.against, args.clips, args.repeats, args.config, args.config_here,
                   args.manifest)
        return
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run", args.clips)
        loop_wall, loop_stages, audio_s = plain_loop(run, config)

        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter()
        summary = run_label(run, config)
        ray_wall = time.perf_counter() - start
        ray.shutdown()
        scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    n = summary["labeled"] + summary["rejected"]
    ray_stages = {s: float(g["seconds"].sum()) for s, g in scores.groupby("system")
                  if s != "noisy"}
    ray_stages["dnsmos"] = float(np.nansum(scores["dnsmos_seconds"]))
    busiest = max(ray_stages, key=ray_stages.get)

    print(f"{n} clips, {audio_s:.1f} s of audio; enhancers: {', '.join(config.enhancers)}")
    print(f"{'path':<22}{'wall s':>9}{'clips/s':>9}{'audio s/s':>11}")
    print(f"{'plain loop':<22}{loop_wall:>9.1f}{n / loop_wall:>9.2f}{audio_s / loop_wall:>11.2f}")
    print(f"{'serec label (Ray)':<22}{ray_wall:>9.1f}{n / ray_wall:>9.2f}"
          f"{audio_s / ray_wall:>11.2f}")
    print(f"speedup (loop wall / Ray wall): {loop_wall / ray_wall:.2f}x  (goal >= 1.8x)")
    print("pure compute per stage, s (loop | Ray): " + ", ".join(
        f"{k} {loop_stages.get(k, 0):.1f} | {ray_stages.get(k, float('nan')):.1f}"
        for k in ray_stages))
    print(f"Ray wall / busiest stage ({busiest}, {ray_stages[busiest]:.1f} s): "
          f"{ray_wall / ray_stages[busiest]:.2f}x  (goal <= 1.15x)")


if __name__ == "__main__":
    main()
