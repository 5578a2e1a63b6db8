"""Subcommands after labeling (split, train, tune, evaluate, recommend) and the chains
``serec pipeline`` (every stage on an existing manifest) and ``serec demo`` (the same on the
embedded demo corpus)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from serec.runs import FEATURES, LABELS, MANIFEST, MODELS, REPORT, SPLITS, RunDir

DEMO_CLIPS = 60
AST_STAGES = ("gatekeeper", "expert", "full")
STAGES = (*AST_STAGES, "features")


def _run_and_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run directory (local path, NFS or s3://, gs://)")
    p.add_argument("--config", default=None,
                   help="YAML config (path, or a name in configs/; default local.yaml)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def _train_config(config_path: str | None, params: str | None = None):
    """The config file's ``train:`` section, with a tuned ``best.yaml`` merged over it."""
    from serec.config import load_config
    from serec.train.config import TrainConfig

    train = TrainConfig.from_dict(load_config(config_path).train)
    if params:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(params) if "://" in params else (
            pafs.LocalFileSystem(), str(Path(params).resolve()))
        with fs.open_input_stream(path) as f:
            train = train.merged(yaml.safe_load(f.read()) or {})
    return train


def _parse_folds(text: str) -> list[int] | None:
    if text == "all":
        return None
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--folds takes 'all' or e.g. '0,2', not {text!r}") from None


def _print(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(frame.to_string(index=False, float_format="{:.4g}".format))


# -- stage commands ---------------------------------------------------------------------------
def cmd_split(args: argparse.Namespace) -> int:
    from serec.train.splits import make_splits

    splits = make_splits(RunDir.of(args.run), args.folds, args.test_fraction, args.group,
                         args.seed)
    counts = splits.assign(part=splits["fold"].where(~splits["is_test"], -1)) \
        .groupby("part").size()
    print(f"wrote {args.run}/{SPLITS}: {len(splits)} clips, "
          f"{int(splits['is_test'].sum())} held out for test")
    print("clips per fold: " + ", ".join(
        f"{'test' if k == -1 else f'fold {k}'} {v}" for k, v in counts.items()))
    return 0


def train_one(run: RunDir, stage: str, folds: list[int] | None, backbone: str,
              config_path: str | None, params: str | None = None) -> pd.DataFrame:
    from serec.train.stage import train_stage

    return train_stage(run, stage, folds, backbone, _train_config(config_path, params))


def _metric_columns(table: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in table.columns if c in ("stage", "fold", "epochs", "best_epoch")
            or c.startswith("val_") or c.startswith("train_")]
    return table[keep]


def cmd_train(args: argparse.Namespace) -> int:
    from serec.ray_utils import init_ray

    init_ray(args.address)
    table = train_one(RunDir.of(args.run), args.stage, args.folds, args.backbone, args.config,
                      args.params)
    _print(_metric_columns(table))
    f1 = table["val_macro_f1"]
    print(f"\n{args.stage}: validation macro F1 {f1.mean():.3f} ± {f1.std(ddof=0):.3f} over "
          f"{len(table)} folds; models in {args.run}/{MODELS}/{args.stage}/")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from serec.ray_utils import init_ray
    from serec.train.tune import tune_stage

    init_ray(args.address)
    result = tune_stage(RunDir.of(args.run), args.stage, args.search,
                        _train_config(args.config), num_samples=args.num_samples,
                        backbone=args.backbone)
    _print(result["trials"])
    print(f"\nbest {result['metric']} {result['best_metric']:.3f}: {result['best_config']}")
    print(f"wrote {result['best_path']} (pass it to `serec train --params`)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from serec.config import load_config
    from serec.evaluate import evaluate_run, format_headline

    metrics = evaluate_run(RunDir.of(args.run), load_config(args.config), address=args.address)
    print(format_headline(metrics))
    print(f"\nreport: {RunDir.of(args.run).path(REPORT, 'report.md')}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from serec.config import load_config
    from serec.recommend import format_recommend_summary, recommend_files

    decisions = recommend_files(RunDir.of(args.run), load_config(args.config), args.inputs,
                                args.out, score=args.score, address=args.address)
    print(format_recommend_summary(decisions))
    print(f"\noutputs in {args.out}/rec_<system>/, decisions in {args.out}/decisions.parquet")
    return 0


# -- chains -----------------------------------------------------------------------------------
def _timed(name: str, timings: dict[str, float], fn: Callable[[], Any]) -> Any:
    print(f"\n== {name}", flush=True)
    start = time.perf_counter()
    result = fn()
    timings[name] = time.perf_counter() - start
    print(f"-- {name}: {timings[name]:.1f} s", flush=True)
    return result


def run_pipeline(run: RunDir, config_path: str | None, address: str | None, folds: int,
                 backbone: str, seed: int, timings: dict[str, float]) -> dict[str, Any]:
    """label → features → split → train gatekeeper, expert → evaluate; done stages skipped."""
    from serec.config import load_config
    from serec.evaluate import evaluate_run, format_headline
    from serec.features.stage import run_features
    from serec.label.pipeline import format_summary, run_label
    from serec.ray_utils import init_ray
    from serec.train.splits import make_splits

    config = load_config(config_path)
    init_ray(address)
    summary = _timed("label", timings, lambda: run_label(run, config))
    print(format_summary(summary))
    _timed("features", timings, lambda: run_features(run, config))
    if run.exists(SPLITS):
        print(f"\n{SPLITS} exists: kept")
    else:
        _timed("split", timings, lambda: make_splits(run, folds, 0.15, "speaker_id", seed))
    for stage in ("gatekeeper", "expert"):
        if run.exists(MODELS, stage, "folds.parquet"):
            print(f"\n{stage} models exist: kept")
            continue
        table = _timed(f"train {stage}", timings,
                       lambda s=stage: train_one(run, s, None, backbone, config_path))
        _print(_metric_columns(table))
    metrics = _timed("evaluate", timings, lambda: evaluate_run(run, config))
    print(format_headline(metrics))
    return metrics


def cmd_pipeline(args: argparse.Namespace) -> int:
    timings: dict[str, float] = {}
    run_pipeline(RunDir.of(args.run), args.config, args.address, args.folds, args.backbone,
                 args.seed, timings)
    _print_timings(timings)
    print(f"\nreport: {RunDir.of(args.run).path(REPORT, 'report.md')}")
    return 0


def _print_timings(timings: dict[str, float]) -> None:
    print("\nstage wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"; total {sum(timings.values()):.0f} s")


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole chain on the embedded demo corpus; stages already done are skipped."""
    from serec.config import load_config
    from serec.data.demo import make_demo_corpus
    from serec.recommend import format_recommend_summary, recommend_files
    from serec.train.splits import test_frame

    run = RunDir.of(args.run)
    timings: dict[str, float] = {}
    if run.exists(MANIFEST):
        print(f"demo corpus already in {run.root}: kept")
    else:
        _timed("demo corpus", timings, lambda: make_demo_corpus(run, args.clips, args.seed))
    run_pipeline(run, args.config, args.address, args.folds, args.backbone, args.seed, timings)
    held_out = test_frame(run)["path"].tolist()[: args.recommend_clips]
    out = run.path("recommended")
    decisions = _timed("recommend", timings, lambda: recommend_files(
        run, load_config(args.config), held_out, out, score=True))
    print(format_recommend_summary(decisions))
    _print_timings(timings)
    print(f"\nreport: {run.path(REPORT, 'report.md')}\nrecommended audio: {out}/rec_<system>/")
    print(f"tables: {MANIFEST}, {LABELS}/, {FEATURES}/, scores/, rejects/, {SPLITS}, {MODELS}/")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    split = sub.add_parser("split", help="leakage-free folds + held-out test set")
    split.add_argument("--run", required=True)
    split.add_argument("--folds", type=int, default=5)
    split.add_argument("--test-fraction", type=float, default=0.15)
    split.add_argument("--group", default="speaker_id",
                       help="group column; clips sharing it or a source_id never straddle parts")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=cmd_split)

    train = sub.add_parser("train", help="train one stage, folds in parallel (Ray Train/Tune)")
    _run_and_config(train)
    train.add_argument("--stage", required=True, choices=STAGES)
    train.add_argument("--folds", type=_parse_folds, default=None, help="'all' or e.g. '0,2'")
    train.add_argument("--backbone", default="tiny",
                       help="'tiny', a Hugging Face hub id or a local model directory")
    train.add_argument("--params", default=None,
                       help="YAML of hyper-parameters merged over the config (tune's best.yaml)")
    train.set_defaults(func=cmd_train)

    tune = sub.add_parser("tune", help="hyper-parameter search (Ray Tune, ASHA)")
    _run_and_config(tune)
    tune.add_argument("--stage", required=True, choices=AST_STAGES)
    tune.add_argument("--search", required=True, help="search space YAML (tune/<stage>.yaml)")
    tune.add_argument("--num-samples", type=int, default=4)
    tune.add_argument("--backbone", default="tiny")
    tune.set_defaults(func=cmd_tune)

    evaluate = sub.add_parser("evaluate", help="metrics, bottlenecks and routing value report")
    _run_and_config(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    rec = sub.add_parser("recommend", help="route audio files and run only the chosen enhancer")
    _run_and_config(rec)
    rec.add_argument("--in", dest="inputs", nargs="+", required=True, help="files or folders")
    rec.add_argument("--out", required=True,
                     help="output folder: a local or NFS path or an s3:// / gs:// URI")
    rec.add_argument("--score", action="store_true", help="also DNSMOS of every output")
    rec.set_defaults(func=cmd_recommend)

    for name, func, text in (("pipeline", cmd_pipeline, "every stage on an existing manifest"),
                             ("demo", cmd_demo, "the whole chain on the embedded demo corpus")):
        p = sub.add_parser(name, help=text)
        _run_and_config(p)
        p.add_argument("--folds", type=int, default=3)
        p.add_argument("--backbone", default="tiny")
        p.add_argument("--seed", type=int, default=0)
        if name == "demo":
            p.add_argument("--clips", type=int, default=DEMO_CLIPS)
            p.add_argument("--recommend-clips", type=int, default=8)
        p.set_defaults(func=func)
