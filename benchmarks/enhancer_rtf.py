"""CPU real-time factor of every offline enhancer of a config on one 10 s noisy clip.

Run from the repo root: ``PYTHONPATH=. python benchmarks/enhancer_rtf.py [--config zoo.yaml]``.

Each enhancer is built once (model loading and warm-up not timed), then the clip is enhanced
``--repeats`` times. Real-time factors are the best CPU time of this process (robust on a
shared machine) and the best wall-clock time, over the clip's duration. ONNX Runtime and BLAS
are limited to one thread (``--threads``), as in a Ray actor with a fractional CPU. Kinds
that cannot run here are listed with the reason and skipped.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from serec.audio import TARGET_SR
from serec.config import load_config
from serec.data.mix import mix_at_snr
from serec.enhancers import MissingDependencyError, parse_enhancer_specs
from serec.enhancers.registry import describe_kind
from tests.enhancers.signals import speech_like

CLIP_SECONDS = 10.0


def noisy_clip(seed: int = 0) -> np.ndarray:
    """A speech-like 10 s clip in white-ish noise at 5 dB SNR (seeded)."""
    rng = np.random.default_rng(seed)
    n = int(CLIP_SECONDS * TARGET_SR)
    speech = speech_like(n, seed=seed)
    noise = rng.standard_normal(n).astype(np.float32)
    return mix_at_snr(speech, noise, 5.0, rng, level_dbfs=-26.0).noisy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="zoo.yaml", help="config whose enhancers to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per enhancer")
    parser.add_argument("--threads", type=int, default=1, help="ONNX/BLAS threads")
    parser.add_argument("--only", nargs="+", default=None,
                        help="time only these enhancer names of the config")
    args = parser.parse_args()

    specs = parse_enhancer_specs(load_config(args.config).enhancers)
    if args.only:
        unknown = sorted(set(args.only) - set(specs))
        if unknown:
            parser.error(f"--only: not in {args.config}: {', '.join(unknown)}")
        specs = {name: spec for name, spec in specs.items() if name in args.only}
    clip = noisy_clip()
    print(f"{'enhancer':<16}{'kind':<16}{'CPU RTF':>9}{'wall RTF':>10}{'build s':>9}")
    with threadpool_limits(args.threads):
        for name, spec in specs.items():
            params = dict(spec.params)
            if "threads" in spec.enhancer_class.default_params:
                params["threads"] = args.threads
            info = describe_kind(spec.kind)
            if not info.runs_here:
                print(f"{name:<16}{spec.kind:<16}  skipped: {info.note}")
                continue
            start = time.perf_counter()
            try:
                enhancer = spec.enhancer_class(name, spec.resources, **params)
            except MissingDependencyError as exc:
                print(f"{name:<16}{spec.kind:<16}  skipped: {exc}")
                continue
            build_s = time.perf_counter() - start
            cpu, wall = np.inf, np.inf
            for _ in range(args.repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                enhancer.enhance(clip)
                cpu = min(cpu, time.process_time() - start_cpu)
                wall = min(wall, time.perf_counter() - start)
            enhancer.close()
            print(f"{name:<16}{spec.kind:<16}{cpu / CLIP_SECONDS:>9.3f}"
                  f"{wall / CLIP_SECONDS:>10.3f}{build_s:>9.2f}")


if __name__ == "__main__":
    main()
