"""Benchmark: k-fold tiny-AST training as parallel Ray Tune trials vs one fold after the other.

Both runs are the same ``train_stage`` call on the same synthetic run (each fold one
TorchTrainer with one 1-CPU worker); the sequential run only caps Tune at one concurrent trial.
Prints both wall times, their ratio (goal on a 2-core machine: >= 1.6x), training throughput
and the machine's load average (other processes on the box slow the parallel run most).
With ``--repeats N`` the two variants alternate and the median wall times are compared.
Each TorchTrainer start costs tens of seconds of process start-up on a small machine, so the
default of 30 epochs keeps training, the part that parallelises, a fair share of the run.

    PYTHONPATH=. python benchmarks/train_folds.py [--epochs 30] [--speakers 24] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import pandas as pd
import ray

from serec.models.backbone import TINY
from serec.train.config import TrainConfig
from serec.train.splits import make_splits
from serec.train.stage import train_stage
from serec.train.synthetic import build_tone_run


def timed_train(run, config: TrainConfig, max_concurrent: int | None) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    table = train_stage(run, "full", backbone=TINY, config=config,
                        max_concurrent_trials=max_concurrent)
    return time.perf_counter() - start, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--clips-per-speaker", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray session")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    config = TrainConfig(max_length=args.max_length, epochs=args.epochs, patience=args.epochs,
                         batch_size=16, lr=1e-3, head_hidden=64, num_workers=1,
                         cpus_per_worker=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        run = build_tone_run(tmp, args.speakers, args.clips_per_speaker, seconds=args.seconds)
        make_splits(run, folds=args.folds, test_fraction=0.0)
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {"parallel": [], "sequential": []}
        for _ in range(args.repeats):
            # parallel first, so that any cold-start cost (page cache, worker pool) counts
            # against it
            seconds, parallel = timed_train(run, config, None)
            times["parallel"].append(seconds)
            seconds, sequential = timed_train(run, config, 1)
            times["sequential"].append(seconds)
        load_after = os.getloadavg()[0]
    ray.shutdown()
    parallel_s = statistics.median(times["parallel"])
    sequential_s = statistics.median(times["sequential"])

    samples = int(parallel["n_train"].sum()) * args.epochs
    print(f"{args.folds} folds x {args.epochs} epochs, tiny AST, max_length {args.max_length}, "
          f"{samples} training samples per run, {args.cpus} CPUs, {args.repeats} repeat(s); "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    for label, seconds, table in (("parallel trials", parallel_s, parallel),
                                  ("one after another", sequential_s, sequential)):
        print(f"{label:18s}: {seconds:7.1f} s wall, {samples / seconds:6.1f} samples/s end to "
              f"end, {table['samples_per_s'].mean():6.1f} samples/s per fold while training")
    print(f"speed-up          : {sequential_s / parallel_s:.2f}x (goal >= 1.6x)")
    print(parallel[["fold", "val_macro_f1", "train_seconds", "samples_per_s"]].to_string(
        index=False))


if __name__ == "__main__":
    main()
