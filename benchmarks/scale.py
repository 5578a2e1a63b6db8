"""Benchmark: how labeling's and training's memory and data movement grow from N to 4N clips.

* labeling: ``run_label`` with passthrough (the noisy clip) + ``spectral_gate`` and real DNSMOS
  on synthetic noisy clips (tones and harmonics in noise, ``--seconds`` long);
* training: ``train_stage("full")`` on a tone run from :mod:`serec.train.synthetic`, tiny AST,
  ``max_length`` 1024 (so every clip's AST input is 0.5 MiB), 2 folds as parallel trials.

Each (part, size) runs in a fresh Python process with its own local Ray session, so one run's
caches and allocator state do not flatter the next. Per run it prints wall time, peak driver
RSS (psutil, sampled by a thread) and its growth over the RSS just before the stage, peak
object-store use and the bytes created in the object store per clip (Ray's
``cumulative_created_bytes``: the blocks that moved between stages; small objects kept in
process memory are not counted), then the 4N/N ratios. Goal: peaks grow by < 20% from N to 4N
and bytes per clip do not depend on N.

Below Ray Data's object-store budget (a share of the node's store) the label plan's peak follows
the backlog in front of the DNSMOS pool, so it grows with N until that budget;
``--label-store-mib`` sets ``label.object_store_mib`` so that the bound shows at small N.
Training streams folds larger than ``train.object_store_mib`` (64 MiB) and materializes
smaller ones; a stream's peak is that cap plus what its consumer holds (the local shuffle
buffer and a prefetched batch), so it follows the data until every fold outgrows that ceiling
and is flat after: ``--train-store-mib 4`` lowers the cap, and ``--n 128`` starts past it.

    PYTHONPATH=. python benchmarks/scale.py [--n 16] [--factor 4] [--parts label train]
                                            [--label-store-mib 8] [--train-store-mib 4]
    PYTHONPATH=. python benchmarks/scale.py --n 128 --parts train --train-store-mib 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

MIB = 2**20


def store_stats() -> Any:
    """The cluster's aggregate object-store statistics (a ``ObjectStoreStats`` message)."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    address = ray.get_runtime_context().gcs_address
    return get_memory_info_reply(get_state_from_address(address)).store_stats


class Peaks:
    """Samples this process's RSS and the object store's use while the block runs."""

    def __init__(self, interval_s: float = 0.5) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval_s = interval_s
        self.peak_rss = self.start_rss = self.process.memory_info().rss
        self.peak_store = 0
        self.created_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._read()
            self._stop.wait(self.interval_s)

    def _read(self) -> None:
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
        self.peak_store = max(self.peak_store, store_stats().object_store_bytes_used)

    def __enter__(self) -> Peaks:
        self._created_before = store_stats().cumulative_created_bytes
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()
        self.created_bytes = store_stats().cumulative_created_bytes - self._created_before


def noisy_clips(folder: Path, n: int, seconds: float, seed: int = 0) -> None:
    """``n`` WAVs of a harmonic tone in white noise at a random SNR (0-20 dB)."""
    from serec.audio import TARGET_SR, write_wav

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    for i in range(n):
        f0 = rng.uniform(100, 300)
        voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
        voiced *= 0.1 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)) ** 2
        noise = rng.standard_normal(t.size)
        noise *= np.std(voiced) / np.std(noise) / 10 ** (rng.uniform(0, 20) / 20)
        write_wav(folder / f"clip{i:05d}.wav", (voiced + noise).astype(np.float32))


def label_config(object_store_mib: float | None) -> Any:
    from serec.config import load_config

    pool = {"num_cpus": 0.25, "batch_size": 4, "min_actors": 1, "max_actors": 1}
    return load_config(None, overrides={
        "enhancers": {"passthrough": {"kind": "passthrough", "resources": pool},
                      "spectral_gate": {"kind": "spectral_gate", "stationary": False,
                                        "resources": pool}},
        "label": {"decode": {"num_cpus": 0.25, "batch_size": 8},
                  "object_store_mib": object_store_mib},
        "dnsmos": {"num_cpus": 0.5, "batch_size": 8, "min_actors": 1, "max_actors": 1}})


def measure_label(tmp: Path, n: int, args: argparse.Namespace) -> tuple[Peaks, int]:
    from serec.data.importer import import_recordings
    from serec.label.pipeline import run_label
    from serec.runs import RunDir

    noisy_clips(tmp / "clips", n, args.seconds)
    run = RunDir.of(tmp / "run")
    import_recordings(run, [str(tmp / "clips")])
    config = label_config(args.label_store_mib)
    with Peaks() as peaks:
        run_label(run, config)
    return peaks, n


def measure_train(tmp: Path, n: int, args: argparse.Namespace) -> tuple[Peaks, int]:
    from serec.models.backbone import TINY
    from serec.train.config import TrainConfig
    from serec.train.splits import make_splits
    from serec.train.stage import train_stage
    from serec.train.synthetic import build_tone_run

    speakers = max(2, n // 4)
    run = build_tone_run(tmp, n_speakers=speakers, clips_per_speaker=4, seconds=args.seconds)
    make_splits(run, folds=2, test_fraction=0.0)
    config = TrainConfig(max_length=1024, epochs=args.epochs, patience=args.epochs,
                         batch_size=8, lr=1e-3, head_hidden=32, num_workers=1,
                         cpus_per_worker=0.5)
    if args.train_store_mib is not None:
        config.object_store_mib = args.train_store_mib
    with Peaks() as peaks:
        train_stage(run, "full", backbone=TINY, config=config)
    return peaks, speakers * 4


def one(part: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    """Measure one part at one size in this process; returns the numbers."""
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    measure = measure_label if part == "label" else measure_train
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        peaks, clips = measure(Path(tmp), n, args)
        wall = time.perf_counter() - start
    ray.shutdown()
    return {"clips": clips, "wall_s": wall, "peak_rss_mib": peaks.peak_rss / MIB,
            "rss_growth_mib": (peaks.peak_rss - peaks.start_rss) / MIB,
            "peak_store_mib": peaks.peak_store / MIB,
            "bytes_per_clip": peaks.created_bytes / clips}


def in_subprocess(part: str, n: int, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--one", part, "--n", str(n), "--cpus", str(args.cpus),
               "--seconds", str(args.seconds), "--epochs", str(args.epochs)]
    for flag, value in (("--label-store-mib", args.label_store_mib),
                        ("--train-store-mib", args.train_store_mib)):
        if value is not None:
            command += [flag, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode:
        sys.exit(f"{part} at N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="the smaller size (clips)")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--parts", nargs="+", default=["label", "train"],
                        choices=["label", "train"])
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of each local Ray session")
    parser.add_argument("--label-store-mib", type=float, default=None,
                        help="label.object_store_mib of the label runs (default: Ray Data's "
                             "share of the object store)")
    parser.add_argument("--train-store-mib", type=float, default=None,
                        help="train.object_store_mib of the train runs (default 64)")
    parser.add_argument("--one", choices=["label", "train"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.n, args)))
        return

    from serec.train.config import TrainConfig

    keys = ("wall_s", "peak_rss_mib", "rss_growth_mib", "peak_store_mib", "bytes_per_clip")
    print(f"sizes N={args.n} and {args.factor}N={args.factor * args.n}; clips of "
          f"{args.seconds:g} s; {args.cpus} CPUs per Ray session; label object-store cap "
          f"{args.label_store_mib or 'Ray default'} MiB; train cap "
          f"{args.train_store_mib or TrainConfig().object_store_mib:g} MiB; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'part':6s} {'clips':>6s} {'wall s':>8s} {'peak RSS MiB':>13s} "
          f"{'RSS growth MiB':>15s} {'peak store MiB':>15s} {'bytes/clip':>12s}")
    for part in args.parts:
        small = in_subprocess(part, args.n, args)
        large = in_subprocess(part, args.factor * args.n, args)
        for row in (small, large):
            print(f"{part:6s} {row['clips']:6d} {row['wall_s']:8.1f} {row['peak_rss_mib']:13.0f} "
                  f"{row['rss_growth_mib']:15.0f} {row['peak_store_mib']:15.1f} "
                  f"{row['bytes_per_clip']:12.0f}")
        ratios = ", ".join(f"{k} {large[k] / small[k]:.2f}" if small[k] else f"{k} n/a"
                           for k in keys)
        print(f"{part:6s} {args.factor}N/N: {ratios} (goal: peaks < 1.20, bytes/clip ~1.00)")


if __name__ == "__main__":
    main()
