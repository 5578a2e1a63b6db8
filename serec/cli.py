"""The ``serec`` command line; subcommands are named like the pipeline stages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from serec.runs import RunDir

if TYPE_CHECKING:
    from serec.data.mix import MixSettings


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
def _mix_condition_args(p: argparse.ArgumentParser, defaults: str) -> None:
    """Flags shared by ``data mix`` and ``data demo``: conditions, their shares and ranges.

    Unset flags keep the command's defaults (``MixSettings`` or the demo's ``DEMO_SETTINGS``).
    """
    p.add_argument("--conditions", default=None,
                   help="acoustic conditions and their shares, e.g. 'noise,reverb' (equal) or "
                        "'noise=0.25,reverb=0.25,talker=0.25,near_clean=0.25'; known: noise, "
                        "reverb (room + noise), talker (competing speaker), near_clean "
                        f"(+30..40 dB noise), clean (no noise) (default: {defaults})")
    p.add_argument("--snr-min", type=float, default=None,
                   help="lowest SNR in dB of the noise and reverb conditions (default: -5)")
    p.add_argument("--snr-max", type=float, default=None,
                   help="highest SNR in dB of the noise and reverb conditions (default: 20)")
    p.add_argument("--talker-snr-min", type=float, default=None,
                   help="lowest target-to-competing-talker ratio in dB (default: 0)")
    p.add_argument("--talker-snr-max", type=float, default=None,
                   help="highest target-to-competing-talker ratio in dB (default: 15)")
    p.add_argument("--clean-snr-min", type=float, default=None,
                   help="lowest SNR in dB of the near_clean condition (default: 30)")
    p.add_argument("--clean-snr-max", type=float, default=None,
                   help="highest SNR in dB of the near_clean condition (default: 40)")
    p.add_argument("--rt60-min", type=float, default=None,
                   help="shortest reverberation time in s of simulated rooms (default: 0.4)")
    p.add_argument("--rt60-max", type=float, default=None,
                   help="longest reverberation time in s of simulated rooms (default: 1.0)")
    p.add_argument("--noises-per-clip", default=None,
                   help="noises mixed into each noise/reverb/near_clean clip: N or MIN-MAX "
                        "(default: 1; demo 1-2)")


def _mix_settings(args: argparse.Namespace, base: MixSettings) -> MixSettings:
    """``base`` with the given ``data mix``/``data demo`` flags; ValueError names a bad flag."""
    from dataclasses import replace

    from serec.data.mix import parse_conditions, parse_count_range

    def pair(low: float | None, high: float | None,
             default: tuple[float, float]) -> tuple[float, float]:
        return (default[0] if low is None else low, default[1] if high is None else high)

    changes: dict[str, object] = dict(
        snr_db=pair(args.snr_min, args.snr_max, base.snr_db),
        talker_snr_db=pair(args.talker_snr_min, args.talker_snr_max, base.talker_snr_db),
        near_clean_snr_db=pair(args.clean_snr_min, args.clean_snr_max, base.near_clean_snr_db),
        rt60_s=pair(args.rt60_min, args.rt60_max, base.rt60_s))
    if args.conditions is not None:
        changes["conditions"] = parse_conditions(args.conditions)
    if args.noises_per_clip is not None:
        changes["noises_per_clip"] = parse_count_range(args.noises_per_clip)
    if getattr(args, "rir_dir", None):
        changes["rir_dirs"] = tuple(args.rir_dir)
    if getattr(args, "max_seconds", None) is not None:
        changes["max_seconds"] = args.max_seconds
    return replace(base, **changes)


def _condition_counts(frame: pd.DataFrame) -> str:
    counts = frame["condition"].value_counts()
    return ", ".join(f"{n} {name}" for name, n in counts.items())


def cmd_data_mix(args: argparse.Namespace) -> int:
    from serec.data.mix import MixSettings, mix_files

    try:
        settings = _mix_settings(args, MixSettings())
        frame = mix_files(RunDir.of(args.run), args.speech, args.noise, args.clips,
                          *settings.snr_db, args.seed, settings.max_seconds, settings)
    except ValueError as exc:
        print(f"serec: error: {exc}", file=sys.stderr)
        return 2
    print(f"mixed {len(frame)} clips ({_condition_counts(frame)}) from "
          f"{frame['speaker_id'].nunique()} speakers into "
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
    from serec.data.demo import DEMO_SETTINGS, make_demo_corpus

    try:
        frame = make_demo_corpus(RunDir.of(args.run), args.clips, args.seed,
                                 _mix_settings(args, DEMO_SETTINGS))
    except ValueError as exc:
        print(f"serec: error: {exc}", file=sys.stderr)
        return 2
    print(f"demo corpus: {len(frame)} clips ({_condition_counts(frame)}), "
          f"{frame['speaker_id'].nunique()} voices, "
          f"{frame['noise_type'].nunique()} noise kinds in {args.run}")
    return 0


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
    mix = data.add_parser("mix", help="mix clean speech with noise, rooms and competing "
                                      "talkers under several acoustic conditions")
    _run_arg(mix)
    mix.add_argument("--speech", nargs="+", required=True,
                     help="clean speech folders/files (also the competing talkers)")
    mix.add_argument("--noise", nargs="*", default=[],
                     help="noise folders/files (needed by noise, reverb and near_clean)")
    mix.add_argument("--clips", type=int, required=True, help="number of clips to mix")
    mix.add_argument("--seed", type=int, default=0, help="same seed, same clips (ids and bytes)")
    mix.add_argument("--max-seconds", type=float, default=10.0,
                     help="longer utterances are cropped to a random window of this length")
    _mix_condition_args(mix, defaults="noise")
    mix.add_argument("--rir-dir", nargs="+", default=None,
                     help="folders of recorded room impulse responses for the reverb condition "
                          "(instead of simulated rooms)")
    mix.set_defaults(func=cmd_data_mix)

    imp = data.add_parser("import", help="register pre-mixed recordings")
    _run_arg(imp)
    imp.add_argument("--noisy", nargs="+", required=True)
    imp.add_argument("--clean", nargs="+", default=None)
    imp.add_argument("--corpus", default=None, help="corpus name (default: parsed)")
    imp.set_defaults(func=cmd_data_import)

    demo = data.add_parser("demo", help="synthesise the embedded demo corpus (no downloads)")
    _run_arg(demo)
    demo.add_argument("--clips", type=int, default=60, help="number of clips")
    demo.add_argument("--seed", type=int, default=0, help="same seed, same clips")
    _mix_condition_args(demo, defaults="a quarter each of noise, reverb, talker, near_clean")
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
