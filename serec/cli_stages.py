"""Subcommands for the stages after labeling, and ``serec demo`` that chains them all."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from serec.runs import FEATURES, LABELS, MANIFEST, RunDir

DEMO_CLIPS = 120


def _timed(name: str, timings: dict[str, float], fn: Callable[[], object]) -> object:
    print(f"\n== {name}", flush=True)
    start = time.perf_counter()
    result = fn()
    timings[name] = time.perf_counter() - start
    print(f"-- {name}: {timings[name]:.1f} s", flush=True)
    return result


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole chain on the embedded demo corpus; stages already done are skipped."""
    from serec.config import load_config
    from serec.data.demo import make_demo_corpus
    from serec.features.stage import run_features
    from serec.label.pipeline import format_summary, run_label

    run = RunDir.of(args.run)
    config = load_config(args.config)
    timings: dict[str, float] = {}
    if run.exists(MANIFEST):
        print(f"demo corpus already in {run.root}: skipped")
    else:
        _timed("demo corpus", timings, lambda: make_demo_corpus(run, args.clips, args.seed))
    summary = _timed("label", timings, lambda: run_label(run, config, address=args.address))
    print(format_summary(summary))
    _timed("features", timings, lambda: run_features(run, config, address=args.address))
    print("\nstage wall times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f"\noutputs in {run.root}: {MANIFEST}, {LABELS}/, {FEATURES}/, scores/, rejects/")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the whole chain on the embedded demo corpus")
    demo.add_argument("--run", required=True)
    demo.add_argument("--clips", type=int, default=DEMO_CLIPS)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--config", default=None)
    demo.add_argument("--address", default=None)
    demo.set_defaults(func=cmd_demo)
