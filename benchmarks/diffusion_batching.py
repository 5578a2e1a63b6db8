"""Diffusion batching: per-clip vs batched throughput of SGMSE+ (and CDiffuSE, StoRM where they
can run), and DNSMOS windows/s on CPU vs GPU.

Usage: python benchmarks/diffusion_batching.py [--clips 16] [--seconds 2] [--steps 5]
           [--nf 16] [--device cpu|cuda]

Random-weight networks of upstream's architectures (no download): SGMSE+ from the installed
package or ``SEREC_SGMSE_SRC``; CDiffuSE when ``SEREC_CDIFFUSE_SRC`` points at a checkout;
StoRM when ``SEREC_STORM_SRC`` does and CUDA is present. Every enhancer is built and warmed up
before timing; each batch size enhances the same clips (equal length, so one bucket), and the
script checks that batched outputs equal the batch-1 outputs. Goal on a GPU: >= 5x clips/s at
batch 16 over batch 1 for SGMSE+ and StoRM; on CPU the ratio is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serec.enhancers import build_enhancer  # noqa: E402
from serec.enhancers.random_models import save_random_cdiffuse, save_random_sgmse  # noqa: E402
from serec.enhancers.sgmse import load_sgmse  # noqa: E402
from serec.quality.dnsmos import CUDA_PROVIDER, WINDOW_SAMPLES, Dnsmos  # noqa: E402

BATCH_SIZES = (1, 4, 16)
SR = 16_000


def clips_of(n: int, seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    return [(0.3 * np.sin(2 * np.pi * (120 + 10 * i) * t) * (0.5 + 0.5 * np.sin(6 * t))
             + 0.05 * rng.standard_normal(t.size)).astype(np.float32) for i in range(n)]


def time_batches(name: str, entry: dict, clips: list[np.ndarray]) -> None:
    enhancer = build_enhancer(name, {**entry, "max_batch": max(BATCH_SIZES)})
    audio_s = sum(c.size for c in clips) / SR
    reference, base = None, None
    for size in BATCH_SIZES:
        enhancer.params["max_batch"] = size
        start = time.perf_counter()
        outputs = []
        for first in range(0, len(clips), size):
            outputs += enhancer.enhance_batch(clips[first:first + size])
        seconds = time.perf_counter() - start
        if reference is None:
            reference, base = outputs, seconds
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs, reference, strict=True))
        print(f"{name:10s} batch {size:2d}: {len(clips) / seconds:7.2f} clips/s  "
              f"{audio_s / seconds:7.2f} audio-s/s  {base / seconds:5.2f}x batch 1  "
              f"max |out - batch-1 out| {diff:.1e}", flush=True)


def dnsmos_windows_per_s(providers: list[str], windows: int = 32) -> float:
    scorer = Dnsmos(providers=providers, max_windows_per_run=windows)
    clip = 0.1 * np.random.default_rng(0).standard_normal(WINDOW_SAMPLES + SR * (windows - 1))
    clip = clip.astype(np.float32)
    start = time.perf_counter()
    scorer.score_batch([clip])
    return windows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=5, help="reverse steps (N)")
    parser.add_argument("--nf", type=int, default=16, help="NCSN++ base channels")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    gpus = {"resources": {"num_gpus": 1}} if args.device == "cuda" else {}
    clips = clips_of(args.clips, args.seconds)
    print(f"{args.clips} clips of {args.seconds} s, N={args.steps}, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        source = os.environ.get("SEREC_SGMSE_SRC")
        path = Path(tmp) / "sgmse.ckpt"
        save_random_sgmse(path, load_sgmse("benchmark", source), nf=args.nf, levels=4,
                          n_fft=510, hop_length=128)
        time_batches("sgmse", {"kind": "sgmse", "checkpoint": str(path), "source_dir": source,
                               "trust_checkpoint": True, "N": args.steps, "corrector": "ald",
                               **gpus}, clips)
        checkout = os.environ.get("SEREC_CDIFFUSE_SRC")
        if checkout:
            weights, _ = save_random_cdiffuse(checkout, Path(tmp) / "cdiffuse", layers=8,
                                              channels=32)
            time_batches("cdiffuse", {"kind": "cdiffuse", "source_dir": checkout,
                                      "checkpoint": str(weights), **gpus}, clips)
        else:
            print("cdiffuse: skipped (SEREC_CDIFFUSE_SRC not set)")
    if not (os.environ.get("SEREC_STORM_SRC") and args.device == "cuda"):
        print("storm: skipped (needs SEREC_STORM_SRC and --device cuda)")
    import onnxruntime as ort

    cpu = dnsmos_windows_per_s(["CPUExecutionProvider"])
    line = f"dnsmos: CPU {cpu:.1f} windows/s"
    if CUDA_PROVIDER in ort.get_available_providers():
        gpu = dnsmos_windows_per_s([CUDA_PROVIDER, "CPUExecutionProvider"])
        line += f", GPU {gpu:.1f} windows/s ({gpu / cpu:.1f}x)"
    else:
        line += ", GPU not measured (no CUDA execution provider here)"
    print(line)


if __name__ == "__main__":
    main()
