"""DNSMOS throughput: speechmos (reference, one clip at a time) vs serec's batched Dnsmos, with
and without sharing the work of overlapping windows.

Usage: python benchmarks/dnsmos_throughput.py [--clips N] [--max-windows W] [--repeats R]

Both scorers are built and warmed up before timing. The same real clips (noisy VoiceBank-DEMAND
pairs plus clean speech of mixed lengths from ../shared/corpus) go through all three; the script
checks that every score agrees to 1e-4 and prints clips/s for each and the speedups, by wall time
and by process CPU time (the latter is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serec.audio import TARGET_SR, clip_to_range, read_audio  # noqa: E402
from serec.quality.dnsmos import Dnsmos, tile_to_window, window_bounds  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
REFERENCE_KEYS = {"sig": "sig_mos", "bak": "bak_mos", "ovr": "ovrl_mos", "p808": "p808_mos"}
TOLERANCE = 1e-4


def load_clips(n_clips: int) -> list[np.ndarray]:
    """All noisy pairs first, then speech files spread evenly over the (mixed-length) corpus."""
    pairs = sorted((CORPUS / "pairs").glob("*.wav"))
    speech = sorted((CORPUS / "speech").glob("*.wav"))
    if not speech:
        raise SystemExit(f"corpus not found at {CORPUS}")
    chosen = pairs[:n_clips]
    remaining = n_clips - len(chosen)
    if remaining > 0:
        picks = np.linspace(0, len(speech) - 1, remaining).round().astype(int)
        chosen += [speech[i] for i in picks]
    return [clip_to_range(read_audio(path)) for path in chosen]


def timed(work: Callable[[], list]) -> tuple[float, float, list]:
    """Wall seconds, CPU seconds of this process (all threads) and the result of ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--max-windows", type=int, default=16,
                        help="serec windows per ONNX run (CPU activations ~0.12 GB per window)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds; best is reported")
    parser.add_argument("--threads", type=int, default=None, help="serec intra-op threads")
    args = parser.parse_args()

    import speechmos.dnsmos as speechmos_dnsmos

    clips = load_clips(args.clips)
    n_windows = sum(len(window_bounds(tile_to_window(c).size)) for c in clips)
    seconds = [c.size / TARGET_SR for c in clips]
    print(f"{len(clips)} clips, {sum(seconds):.1f} s audio "
          f"({min(seconds):.1f}-{max(seconds):.1f} s), {n_windows} DNSMOS windows")

    speechmos_dnsmos.run(clips[0], TARGET_SR)  # builds its sessions and warms librosa/numba
    scorer = Dnsmos(max_windows_per_run=args.max_windows, intra_op_num_threads=args.threads)
    whole = Dnsmos(max_windows_per_run=args.max_windows, intra_op_num_threads=args.threads,
                   share_windows=False)
    print(f"serec providers: {scorer.providers}, max_windows_per_run={args.max_windows}")

    runners = {
        "speechmos (per clip)": lambda: [speechmos_dnsmos.run(a, TARGET_SR) for a in clips],
        "serec, whole windows": lambda: whole.score_batch(clips),
        "serec, shared windows": lambda: scorer.score_batch(clips),
    }
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    results = {}
    for round_index in range(args.repeats):
        # alternate the order so that neither side always runs first
        names = list(runners)[:: 1 if round_index % 2 == 0 else -1]
        for name in names:
            wall_s, cpu_s, results[name] = timed(runners[name])
            wall[name].append(wall_s)
            cpu[name].append(cpu_s)

    reference, *serec_results = results.values()
    max_diff = max(abs(getattr(o, key) - float(r[ref_key]))
                   for ours in serec_results for o, r in zip(ours, reference, strict=True)
                   for key, ref_key in REFERENCE_KEYS.items())
    print(f"max |serec - speechmos| over sig/bak/ovr/p808: {max_diff:.2e}")
    print(f"best of {args.repeats} round(s); CPU s = process CPU time, all threads")
    print(f"{'scorer':<24}{'wall s':>8}{'clips/s':>9}{'windows/s':>11}{'CPU s':>8}"
          f"{'clips/CPU-s':>13}")
    for name in runners:
        best_wall, best_cpu = min(wall[name]), min(cpu[name])
        print(f"{name:<24}{best_wall:>8.2f}{len(clips) / best_wall:>9.2f}"
              f"{n_windows / best_wall:>11.2f}{best_cpu:>8.2f}{len(clips) / best_cpu:>13.3f}")
    ref_name, whole_name, shared_name = runners
    for faster, slower in ((whole_name, ref_name), (shared_name, ref_name),
                           (shared_name, whole_name)):
        print(f"speedup {faster} / {slower}: wall {min(wall[slower]) / min(wall[faster]):.2f}x, "
              f"CPU {min(cpu[slower]) / min(cpu[faster]):.2f}x")
    assert max_diff < TOLERANCE, f"scores differ by {max_diff:.2e} >= {TOLERANCE}"


if __name__ == "__main__":
    main()
