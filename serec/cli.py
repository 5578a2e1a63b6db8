"""The ``serec`` command line; subcommands are named like the pipeline stages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from serec.runs import RunDir


def _run_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run directory (local path, NFS or s3://, gs://)")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None,
                   help="YAML config (path, or a name in configs/; default local.yaml)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def _print_frame(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> None:
    with pd.option_context("display.max_rows", 200, "display.width", 160,
                           "display.max_colwidth", 60,
                           "display.float_format", floatfmt.format):
        print(frame.to_string(index=False))


# -- data -----------------------------------------------------------------------------------
def cmd_data_mix(args: argparse.Namespace) -> int:
    from serec.data.mix import mix_files

    frame = mix_files(RunDir.of(args.run), args.speech, args.noise, args.clips, args.snr_min,
                      args.snr_max, args.seed, args.max_seconds)
    print(f"mixed {len(frame)} clips from {frame['speaker_id'].nunique()} speakers into "
          f"{args.run} (manifest.parquet, audio/noisy, audio/clean)")
    return 0


def cmd_data_import(args: argparse.Namespace) -> int:
    from serec.data.importer import import_recordings

    frame = import_recordings(RunDir.of(args.run), args.noisy, args.clean or (), args.corpus)
    paired = int(frame["clean_path"].notna().sum())
    print(f"registered {len(frame)} clips from {frame['path'].nunique()} files "
          f"({paired} with a clean reference) in {args.run}/manifest.parquet")
    return 0


def cmd_data_demo(args: argparse.Namespace) -> int:
    from serec.data.demo import make_demo_corpus

    frame = make_demo_corpus(RunDir.of(args.run), args.clips, args.seed, args.snr_min,
                             args.snr_max)
    print(f"demo corpus: {len(frame)} clips, {frame['speaker_id'].nunique()} voices, "
          f"{frame['noise_type'].nunique()} noise kinds in {args.run}")
    return 0


# -- scoring, labeling, features --------------------------------------------------------------
def cmd_score(args: argparse.Namespace) -> int:
    from serec.quality.score_files import score_paths

    frame = score_paths(args.paths, personalized=args.personalized, address=args.address)
    if args.out:
        frame.to_parquet(args.out, index=False)
    _print_frame(frame[["file", "sig", "bak", "ovr", "p808", "error"]]
                 .dropna(axis=1, how="all"), "{:.4f}")
    if args.out:
        print(f"\nwrote {args.out}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from serec.config import load_config
    from serec.label.pipeline import format_summary, run_label

    config = load_config(args.config)
    summary = run_label(RunDir.of(args.run), config, address=args.address,
                        save_audio=True if args.save_audio else None)
    print(format_summary(summary))
    print(f"\nlabels, scores, rejects and label_summary.json in {args.run}")
    return 0 if summary["missing"] == 0 else 1


def cmd_features(args: argparse.Namespace) -> int:
    from serec.config import load_config
    from serec.features.stage import run_features

    table = run_features(RunDir.of(args.run), load_config(args.config), address=args.address)
    print(f"features for {len(table)} clips ({table.attrs.get('skipped', 0)} unreadable "
          f"skipped) in {args.run}/features")
    numeric = table.drop(columns=["clip_id"]).describe().T[["mean", "std", "min", "max"]]
    print(numeric.to_string(float_format="{:.4g}".format))
    return 0


def cmd_enhancers(args: argparse.Namespace) -> int:
    """List every enhancer kind: sample rate, whether it runs here, licence, parameters."""
    import dataclasses
    import json

    from serec.enhancers.registry import describe_kinds

    kinds = describe_kinds()
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in kinds], indent=2, default=str))
        return 0
    for info in kinds:
        here = "yes" if info.runs_here else "no"
        rate = f"{info.native_sr} Hz" if info.native_sr else "?"
        print(f"{info.kind:<15} {rate:>9}  runs here: {here:<3}  licence: {info.licence}")
        params = ", ".join(f"{key}={value!r}" for key, value in info.params.items())
        print(f"    params: {params or '(none)'}")
        if info.note:
            print(f"    note: {info.note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build a run's manifest").add_subparsers(
        dest="data_command", required=True)
    mix = data.add_parser("mix", help="mix clean speech with noise at given SNRs")
    _run_arg(mix)
    mix.add_argument("--speech", nargs="+", required=True, help="clean speech folders/files")
    mix.add_argument("--noise", nargs="+", required=True, help="noise folders/files")
    mix.add_argument("--clips", type=int, required=True)
    mix.add_argument("--snr-min", type=float, default=-5.0)
    mix.add_argument("--snr-max", type=float, default=20.0)
    mix.add_argument("--seed", type=int, default=0)
    mix.add_argument("--max-seconds", type=float, default=10.0,
                     help="longer utterances are cropped to a random window of this length")
    mix.set_defaults(func=cmd_data_mix)

    imp = data.add_parser("import", help="register pre-mixed recordings")
    _run_arg(imp)
    imp.add_argument("--noisy", nargs="+", required=True)
    imp.add_argument("--clean", nargs="+", default=None)
    imp.add_argument("--corpus", default=None, help="corpus name (default: parsed)")
    imp.set_defaults(func=cmd_data_import)

    demo = data.add_parser("demo", help="synthesise the embedded demo corpus (no downloads)")
    _run_arg(demo)
    demo.add_argument("--clips", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--snr-min", type=float, default=-5.0)
    demo.add_argument("--snr-max", type=float, default=20.0)
    demo.set_defaults(func=cmd_data_demo)

    score = sub.add_parser("score", help="DNSMOS P.835/P.808 of audio files or folders")
    score.add_argument("paths", nargs="+")
    score.add_argument("--out", default=None, help="write the table to this Parquet file")
    score.add_argument("--personalized", action="store_true",
                       help="personalised DNSMOS (interfering talkers count as noise)")
    score.add_argument("--address", default=None)
    score.set_defaults(func=cmd_score)

    label = sub.add_parser("label", help="run every enhancer + DNSMOS and label each clip")
    _run_arg(label)
    _config_arg(label)
    label.add_argument("--save-audio", action="store_true",
                       help="also write audio/enhanced/<system>/<clip>.wav")
    label.set_defaults(func=cmd_label)

    feats = sub.add_parser("features", help="CE/KL spectral features for every clip")
    _run_arg(feats)
    _config_arg(feats)
    feats.set_defaults(func=cmd_features)

    enhancers = sub.add_parser("enhancers", help="list every enhancer kind: sample rate, "
                               "whether it runs here, licence and parameters")
    enhancers.add_argument("--json", action="store_true",
                           help="print the list as JSON instead of a table")
    enhancers.set_defaults(func=cmd_enhancers)

    from serec import cli_stages

    cli_stages.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from serec.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"serec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
