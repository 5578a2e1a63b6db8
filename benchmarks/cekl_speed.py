"""Vectorised CE/KL features against loop baselines, side by side.

Run from the repo root: ``PYTHONPATH=. python benchmarks/cekl_speed.py``.

Each method is timed twice: end to end (16 kHz audio -> 9 statistics, the same STFT included in
every method) and from the frame distributions P (the pairwise part alone). Baselines:

* ``row loop``  - one vector-matrix product per frame i gives CE row i (BLAS level 2), then the
  statistics from the full T x T matrices: the natural non-vectorised implementation.
* ``pair loop`` - a Python loop over every (i, j) pair with one ``np.dot`` each.

Times are the best of several runs (wall clock, ``time.perf_counter``), with BLAS limited to
``--blas-threads`` threads (default 1: stable numbers on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from serec.audio import TARGET_SR, read_audio
from serec.features.cekl import (
    EPS,
    HOP,
    cekl_features,
    cekl_from_distributions,
    frame_distributions,
    power_spectrogram,
)

CORPUS_SPEECH = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "speech"


def _statistics(ce: np.ndarray) -> np.ndarray:
    """The 9 statistics from a full CE matrix (diagonal = entropies)."""
    entropy = np.diag(ce).copy()
    kl = np.maximum(ce - entropy[:, None], 0.0)
    n = ce.shape[0]
    off = ~np.eye(n, dtype=bool)
    adjacent = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) == 1
    return np.array([entropy.var(),
                     ce[off].mean(), ce[off].var(), ce[adjacent].mean(), ce[adjacent].var(),
                     kl[off].mean(), kl[off].var(), kl[adjacent].mean(), kl[adjacent].var()])


def row_loop_from_distributions(dist: np.ndarray) -> np.ndarray:
    """Baseline: CE row i = -(log P) @ p_i, one frame at a time."""
    log_dist = np.log2(dist + EPS)
    ce = np.empty((dist.shape[0], dist.shape[0]))
    for i in range(dist.shape[0]):
        ce[i] = -(log_dist @ dist[i])
    return _statistics(ce)


def pair_loop_from_distributions(dist: np.ndarray) -> np.ndarray:
    """Baseline: one ``np.dot`` per (i, j) pair in a Python double loop."""
    log_dist = np.log2(dist + EPS)
    n = dist.shape[0]
    ce = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            ce[i, j] = -np.dot(dist[i], log_dist[j])
    return _statistics(ce)


def _end_to_end(from_distributions: Callable[[np.ndarray], np.ndarray]
                ) -> Callable[[np.ndarray], np.ndarray]:
    return lambda audio: from_distributions(frame_distributions(power_spectrogram(audio)))


METHODS = {
    "vectorised": (cekl_from_distributions, cekl_features),
    "row loop": (row_loop_from_distributions, _end_to_end(row_loop_from_distributions)),
    "pair loop": (pair_loop_from_distributions, _end_to_end(pair_loop_from_distributions)),
}


def best_times(calls: dict[str, tuple[Callable[[np.ndarray], object], np.ndarray, int]]
               ) -> dict[str, float]:
    """Fastest wall time (s) of each ``fn(arg)`` over its number of runs.

    Runs are interleaved round by round, so that load from other processes on a shared machine
    hits every method alike.
    """
    best = dict.fromkeys(calls, float("inf"))
    for round_index in range(max(runs for _, _, runs in calls.values())):
        for key, (fn, arg, runs) in calls.items():
            if round_index < runs:
                start = time.perf_counter()
                fn(arg)
                best[key] = min(best[key], time.perf_counter() - start)
    return best


def benchmark_audio(n_samples: int) -> tuple[np.ndarray, str]:
    """Real speech from the shared corpus, concatenated to length; seeded noise without it."""
    files = sorted(CORPUS_SPEECH.glob("*.wav")) if CORPUS_SPEECH.is_dir() else []
    if not files:
        rng = np.random.default_rng(0)
        return (0.1 * rng.standard_normal(n_samples)).astype(np.float32), "seeded noise"
    pieces, total = [], 0
    for path in files:
        pieces.append(read_audio(path))
        total += pieces[-1].size
        if total >= n_samples:
            break
    return np.concatenate(pieces)[:n_samples], f"corpus speech ({len(pieces)} files)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 900])
    parser.add_argument("--repeats", type=int, default=20, help="runs of the fast methods")
    parser.add_argument("--pair-repeats", type=int, default=3, help="runs of the pair loop")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()

    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        print(f"numpy {np.__version__}, {os.cpu_count()} CPUs visible, "
              f"BLAS threads {args.blas_threads}, load average {os.getloadavg()[0]:.2f}; "
              "best-of-N wall times in ms")
        print(f"{'frames':>6} {'audio s':>7} {'scope':>11} {'vectorised':>10} {'row loop':>9} "
              f"{'row/vec':>8} {'pair loop':>10} {'pair/vec':>9}")
        for n_frames in args.frames:
            audio, source = benchmark_audio((n_frames - 1) * HOP + HOP // 2)
            dist = frame_distributions(power_spectrogram(audio))
            max_diff = _check_agreement(audio, dist)
            calls = {"stft": (power_spectrogram, audio, args.repeats)}
            for name, (from_dist, from_audio) in METHODS.items():
                runs = args.pair_repeats if name == "pair loop" else args.repeats
                calls[f"{name} | end to end"] = (from_audio, audio, runs)
                calls[f"{name} | from P"] = (from_dist, dist, runs)
            times = best_times(calls)
            for scope in ("end to end", "from P"):
                vec, row, pair = (times[f"{name} | {scope}"] for name in METHODS)
                print(f"{dist.shape[0]:>6} {audio.size / TARGET_SR:>7.2f} {scope:>11} "
                      f"{vec * 1e3:>10.2f} {row * 1e3:>9.2f} {row / vec:>7.1f}x "
                      f"{pair * 1e3:>10.1f} {pair / vec:>8.1f}x")
            print(f"{'':>15} STFT alone {times['stft'] * 1e3:.2f} ms; "
                  f"max |baseline - vectorised| {max_diff:.1e}; audio: {source}")
    print("row/vec: speed-up over the row-by-row vector-matrix loop; "
          "pair/vec: over the Python (i, j) loop with one np.dot per pair.")


def _check_agreement(audio: np.ndarray, dist: np.ndarray) -> float:
    """Every method, both entry points, must give the vectorised values (rtol 1e-9).

    Returns the largest absolute difference seen.
    """
    expected = cekl_features(audio)
    max_diff = 0.0
    for name, (from_dist, from_audio) in METHODS.items():
        for result in (from_dist(dist), from_audio(audio)):
            if not np.allclose(result, expected, rtol=1e-9, atol=1e-12):
                raise SystemExit(f"{name} disagrees with the vectorised result:\n"
                                 f"{expected}\n{result}")
            max_diff = max(max_diff, float(np.abs(result - expected).max()))
    return max_diff


if __name__ == "__main__":
    main()
