"""One-time preparation of a cluster node, run by ``cluster.yaml``'s setup commands.

Work that would otherwise happen in every actor happens once per node here: the CUDA kernels
that SGMSE+ and StoRM compile when their backbones are imported are built into the node's
torch extension cache (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), so
actors only load them; the DNSMOS ONNX files are found and, on a GPU node, DNSMOS is started
on CUDA, so a node without a working onnxruntime-gpu fails at ``ray up`` rather than in a job.

``python -m jobs.node_setup --sgmse-src DIR`` in serec's interpreter; ``--storm-src DIR`` in
StoRM's own interpreter (its code is a second top-level package named ``sgmse``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


def cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def check_dnsmos(gpu: bool) -> str:
    """Start DNSMOS (on CUDA when ``gpu``) and score one second of noise."""
    import numpy as np

    from serec.quality.dnsmos import worker_dnsmos

    scorer = worker_dnsmos(gpu)
    scorer.score(0.01 * np.random.default_rng(0).standard_normal(16_000).astype(np.float32))
    return f"DNSMOS runs on {scorer.providers[0]}"


def build_sgmse_kernels(source_dir: str) -> str:
    """Import SGMSE+ from its checkout: with CUDA visible this compiles its NCSN++ kernels."""
    from serec.enhancers.sgmse import load_sgmse

    load_sgmse("node setup (sgmse)", source_dir)
    return f"SGMSE+ imported from {source_dir}"


def build_storm_kernels(source_dir: str) -> str:
    """Import StoRM's model module from its checkout (compiles its CUDA kernels)."""
    from serec.enhancers.checkpoints import (
        import_from_checkout,
        source_checkout,
        training_only_modules,
    )
    from serec.enhancers.storm import CHECKOUT_MARKERS, TRAINING_ONLY_MODULES

    owner = "node setup (storm)"
    source = source_checkout(source_dir, owner, "source_dir", CHECKOUT_MARKERS)
    with training_only_modules(TRAINING_ONLY_MODULES):
        import_from_checkout(source, "sgmse.model", ["sgmse"], owner)
    return f"StoRM imported from {source_dir}"


def setup_node(sgmse_src: str | None = None, storm_src: str | None = None,
               dnsmos: bool = True) -> list[str]:
    """Run every requested step; returns one line per step. Kernel builds need CUDA and nvcc."""
    gpu = cuda_visible()
    steps: list[tuple[str, Callable[[], str]]] = []
    if dnsmos:
        steps.append(("dnsmos", lambda: check_dnsmos(gpu)))
    for name, source, build in (("sgmse", sgmse_src, build_sgmse_kernels),
                                ("storm", storm_src, build_storm_kernels)):
        if source is None:
            continue
        if not gpu:
            steps.append((name, lambda: "no CUDA on this node, no kernels to build"))
            continue
        if shutil.which("nvcc") is None or shutil.which("ninja") is None:
            raise RuntimeError(f"{name}: building its CUDA kernels needs nvcc and ninja on PATH "
                               f"(CUDA toolkit; pip install ninja)")
        steps.append((name, lambda b=build, s=source: b(s)))
    lines = []
    for name, step in steps:
        start = time.perf_counter()
        lines.append(f"{name}: {step()} ({time.perf_counter() - start:.1f} s)")
        print(lines[-1], flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.node_setup", description=__doc__)
    parser.add_argument("--sgmse-src", help="SGMSE+ checkout whose CUDA kernels to build")
    parser.add_argument("--storm-src", help="StoRM checkout (run in StoRM's interpreter)")
    parser.add_argument("--no-dnsmos", action="store_true",
                        help="skip the DNSMOS check (e.g. in StoRM's interpreter)")
    args = parser.parse_args(argv)
    setup_node(args.sgmse_src, args.storm_src, dnsmos=not args.no_dnsmos)
    return 0
