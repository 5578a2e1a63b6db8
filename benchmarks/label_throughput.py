"""Labeling throughput: ``serec label`` (Ray Data) vs a plain single-process loop.

Both paths use the same enhancer classes, config and DNSMOS model on the same clips. Prints
clips/s, audio-seconds/s, the speedup, and the Ray run's wall time over its busiest stage's
pure compute (how close the pipeline gets to the bottleneck).

    python benchmarks/label_throughput.py [--clips 48] [--config configs/local.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
import time
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

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
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
