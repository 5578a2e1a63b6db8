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

from serec.cli_args import add_command, config_args, int_at_least, run_arg, split_args
from serec.errors import UsageError
from serec.runs import FEATURES, LABELS, MANIFEST, MODELS, REPORT, SPLITS, RunDir

DEMO_CLIPS = 40
AST_STAGES = ("gatekeeper", "expert", "full")
STAGES = (*AST_STAGES, "features", "boosted")


def _train_config(config_path: str | None, params: str | None = None):
    """The config file's ``train:`` section, with a tuned ``best.yaml`` merged over it."""
    from serec.config import ConfigError, load_config
    from serec.train.config import TrainConfig

    train = TrainConfig.from_dict(load_config(config_path).train)
    if params:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(params) if "://" in params else (
            pafs.LocalFileSystem(), str(Path(params).resolve()))
        with fs.open_input_stream(path) as f:
            try:
                overrides = yaml.safe_load(f.read()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"--params {params} is not valid YAML: {exc}") from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"--params {params} must hold a mapping of train config keys")
        train = train.merged(overrides)
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
def split_run(run: RunDir, folds: int, test_fraction: float, group: str, seed: int) -> None:
    """Write the run's split and print clips and independent groups per part."""
    from serec.train.splits import make_splits, split_frame, split_summary

    splits = make_splits(run, folds, test_fraction, group, seed)
    summary = split_summary(split_frame(run), splits, group)
    print(f"wrote {run.path(SPLITS)}: {len(splits)} clips grouped by {group}, "
          f"{int(splits['is_test'].sum())} held out for test")
    print("clips (independent groups) per part: " + ", ".join(
        f"{r.part} {r.clips} ({r.groups})" for r in summary.itertuples()))


def cmd_split(args: argparse.Namespace) -> int:
    split_run(RunDir.of(args.run), args.folds, args.test_fraction, args.group, args.seed)
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

    test_run = RunDir.of(args.test_run) if args.test_run else None
    try:
        metrics = evaluate_run(RunDir.of(args.run), load_config(args.config),
                               address=args.address, test_run=test_run)
    except ValueError as exc:  # data that cannot be evaluated (no test clips, unscored systems)
        raise UsageError(str(exc)) from exc
    print(format_headline(metrics))  # ends with the report's path
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


def run_pipeline(run: RunDir, args: argparse.Namespace,
                 timings: dict[str, float]) -> dict[str, Any]:
    """label → features → split → train gatekeeper, expert, boosted → evaluate; done stages
    skipped.

    Whether the manifest can carry the requested split is checked before any labeling.
    """
    from serec.config import load_config
    from serec.evaluate import evaluate_run, format_headline
    from serec.features.stage import run_features
    from serec.label.pipeline import format_summary, run_label
    from serec.ray_utils import init_ray
    from serec.train.splits import check_manifest_can_split

    config_path, backbone = args.config, args.backbone
    config = load_config(config_path)
    if not run.exists(SPLITS):
        check_manifest_can_split(run, args.folds, args.test_fraction, args.group)
    init_ray(args.address)
    summary = _timed("label", timings, lambda: run_label(run, config))
    print(format_summary(summary))
    _timed("features", timings, lambda: run_features(run, config))
    if run.exists(SPLITS):
        print(f"\n{SPLITS} exists: kept")
    else:
        _timed("split", timings, lambda: split_run(run, args.folds, args.test_fraction,
                                                   args.group, args.seed))
    # The two-stage AST router and the features router; evaluate picks one on validation.
    for stage in ("gatekeeper", "expert", "boosted"):
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
    run_pipeline(RunDir.of(args.run), args, timings)
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
    run_pipeline(run, args, timings)
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
    split = add_command(sub, "split", "leakage-free folds + held-out test set", cmd_split)
    run_arg(split)
    split_args(split, folds_default=5)

    train = add_command(sub, "train", "train one stage, folds in parallel (Ray Train/Tune)",
                        cmd_train)
    run_arg(train)
    config_args(train)
    train.add_argument("--stage", required=True, choices=STAGES,
                       help="gatekeeper, expert, full (one-stage AST) or features (linear)")
    train.add_argument("--folds", type=_parse_folds, default=None,
                       help="folds to train: 'all' or e.g. '0,2' (default: all)")
    train.add_argument("--backbone", default="tiny",
                       help="'tiny', a Hugging Face hub id or a local model directory")
    train.add_argument("--params", default=None,
                       help="YAML of hyper-parameters merged over the config (tune's best.yaml)")

    tune = add_command(sub, "tune", "hyper-parameter search (Ray Tune, ASHA)", cmd_tune)
    run_arg(tune)
    config_args(tune)
    tune.add_argument("--stage", required=True, choices=AST_STAGES, help="stage to tune")
    tune.add_argument("--search", required=True, help="search space YAML (tune/<stage>.yaml)")
    tune.add_argument("--num-samples", type=int_at_least(1), default=4,
                      help="trials to sample")
    tune.add_argument("--backbone", default="tiny",
                      help="'tiny', a Hugging Face hub id or a local model directory")

    evaluate = add_command(sub, "evaluate", "metrics, bottlenecks and routing value report",
                           cmd_evaluate)
    run_arg(evaluate)
    config_args(evaluate)
    evaluate.add_argument("--test-run", default=None, help="test the models on every labeled "
                          "clip of this other run (cross-corpus); report under RUN/cross/")

    rec = add_command(sub, "recommend", "route audio files and run only the chosen enhancer",
                      cmd_recommend)
    run_arg(rec)
    config_args(rec)
    rec.add_argument("--in", dest="inputs", nargs="+", required=True, help="files or folders")
    rec.add_argument("--out", required=True, help="output folder (rec_<system>/, decisions): "
                     "a local or NFS path or an s3:// / gs:// URI")
    rec.add_argument("--score", action="store_true", help="also DNSMOS of every output")

    for name, func, text in (("pipeline", cmd_pipeline, "every stage on an existing manifest"),
                             ("demo", cmd_demo, "the whole chain on the embedded demo corpus")):
        p = add_command(sub, name, text, func)
        run_arg(p)
        config_args(p)
        split_args(p, folds_default=3)
        p.add_argument("--backbone", default="tiny",
                       help="'tiny', a Hugging Face hub id or a local model directory")
        if name == "demo":
            p.add_argument("--clips", type=int_at_least(1), default=DEMO_CLIPS,
                           help="clips in the demo corpus")
            p.add_argument("--recommend-clips", type=int_at_least(0), default=8,
                           help="held-out clips to route at the end")
