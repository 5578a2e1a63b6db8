"""serec: label noisy speech with the best enhancer, train a router, route new clips.

Subcommands are named like the pipeline stages; every one takes -v/--verbose and -q/--quiet.
Expected failures (bad arguments, missing tables, infeasible splits, bad configs) exit with
status 2 and one line saying what to fix."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from serec.audio import MAX_SEGMENT_SECONDS
from serec.cli_args import (
    Parser,
    add_command,
    config_args,
    int_at_least,
    positive,
    real,
    run_arg,
)
from serec.data.manifests import MANIFEST_FORMATS
from serec.errors import UsageError
from serec.runs import RunDir

if TYPE_CHECKING:
    from serec.data.mix import MixSettings


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
    p.add_argument("--snr-min", type=real, default=None,
                   help="lowest SNR in dB of the noise and reverb conditions (default: -5)")
    p.add_argument("--snr-max", type=real, default=None,
                   help="highest SNR in dB of the noise and reverb conditions (default: 20)")
    p.add_argument("--talker-snr-min", type=real, default=None,
                   help="lowest target-to-competing-talker ratio in dB (default: 0)")
    p.add_argument("--talker-snr-max", type=real, default=None,
                   help="highest target-to-competing-talker ratio in dB (default: 15)")
    p.add_argument("--clean-snr-min", type=real, default=None,
                   help="lowest SNR in dB of the near_clean condition (default: 30)")
    p.add_argument("--clean-snr-max", type=real, default=None,
                   help="highest SNR in dB of the near_clean condition (default: 40)")
    p.add_argument("--rt60-min", type=real, default=None,
                   help="shortest reverberation time in s of simulated rooms (default: 0.4)")
    p.add_argument("--rt60-max", type=real, default=None,
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
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    frame = mix_files(RunDir.of(args.run), args.speech, args.noise, args.clips,
                      *settings.snr_db, args.seed, settings.max_seconds, settings)
    print(f"mixed {len(frame)} clips ({_condition_counts(frame)}) from "
          f"{frame['speaker_id'].nunique()} speakers into "
          f"{args.run} (manifest.parquet, audio/noisy, audio/clean)")
    return 0


def cmd_data_import(args: argparse.Namespace) -> int:
    if args.manifest:
        from serec.data.manifests import import_manifests

        frame = import_manifests(RunDir.of(args.run), args.manifest, args.format, args.corpus,
                                 args.max_seconds)
    else:
        from serec.data.importer import import_recordings

        frame = import_recordings(RunDir.of(args.run), args.noisy, args.clean or (),
                                  args.corpus, args.max_seconds)
    paired = int(frame["clean_path"].notna().sum())
    print(f"registered {len(frame)} clips from {frame['path'].nunique()} files, "
          f"{frame['speaker_id'].nunique()} speakers ({paired} with a clean reference) in "
          f"{args.run}/manifest.parquet")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from serec.data.export import decisions_frame, export_frame, write_lhotse, write_nemo

    if not (args.lhotse or args.nemo):
        raise UsageError("say where to write: --lhotse CUTS.jsonl.gz and/or --nemo "
                         "MANIFEST.json")
    if args.decisions:
        frame, what = decisions_frame(args.decisions), "routing decisions"
    else:
        frame, what = export_frame(RunDir.of(args.run)), "labels"
    for path, write, kind in ((args.lhotse, write_lhotse, "lhotse CutSet"),
                              (args.nemo, write_nemo, "NeMo manifest")):
        if path:
            print(f"wrote {write(frame, path)} clips' {what} as a {kind} to {path}")
    return 0


def cmd_data_demo(args: argparse.Namespace) -> int:
    from serec.data.demo import DEMO_SETTINGS, make_demo_corpus

    try:
        settings = _mix_settings(args, DEMO_SETTINGS)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    frame = make_demo_corpus(RunDir.of(args.run), args.clips, args.seed, settings)
    print(f"demo corpus: {len(frame)} clips ({_condition_counts(frame)}), "
          f"{frame['speaker_id'].nunique()} voices, "
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
    parser = Parser(prog="serec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="build a run's manifest", description="build a run's "
                          "manifest").add_subparsers(dest="data_command", required=True,
                                                     metavar="SOURCE")
    mix = add_command(data, "mix", "mix clean speech with noise, rooms and competing talkers "
                      "under several acoustic conditions", cmd_data_mix, "data mix")
    run_arg(mix)
    mix.add_argument("--speech", nargs="+", required=True,
                     help="clean speech folders/files (also the competing talkers)")
    mix.add_argument("--noise", nargs="*", default=[],
                     help="noise folders/files (needed by noise, reverb and near_clean)")
    mix.add_argument("--clips", type=int_at_least(1), required=True,
                     help="number of noisy clips to make")
    mix.add_argument("--seed", type=int, default=0,
                     help="seed of every random choice (same seed, same ids and bytes)")
    mix.add_argument("--max-seconds", type=positive, default=10.0,
                     help="longer utterances are cropped to a random window of this length")
    _mix_condition_args(mix, defaults="noise")
    mix.add_argument("--rir-dir", nargs="+", default=None,
                     help="folders of recorded room impulse responses for the reverb condition "
                          "(instead of simulated rooms)")

    imp = add_command(data, "import", "register pre-mixed recordings, or the clips of lhotse "
                      "or NeMo manifests, without copying audio", cmd_data_import, "data import")
    run_arg(imp)
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--noisy", nargs="+", help="folders/files of noisy recordings")
    source.add_argument("--manifest", nargs="+",
                        help="lhotse cuts, or recordings + supervisions (.jsonl/.jsonl.gz), "
                             "or NeMo JSON-lines manifests")
    imp.add_argument("--format", choices=MANIFEST_FORMATS, default="auto",
                     help="manifest format (auto: from the first line)")
    imp.add_argument("--clean", nargs="+", default=None,
                     help="folders/files of clean references, paired by utterance name")
    imp.add_argument("--corpus", default=None,
                     help="corpus name (default: parsed from file or manifest names)")
    imp.add_argument("--max-seconds", type=positive, default=MAX_SEGMENT_SECONDS,
                     help="longer recordings/segments are cut into windows of this length")

    demo = add_command(data, "demo", "synthesise the embedded demo corpus (no downloads)",
                       cmd_data_demo, "data demo")
    run_arg(demo)
    demo.add_argument("--clips", type=int_at_least(1), default=60, help="number of clips")
    demo.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    _mix_condition_args(demo, defaults="a quarter each of noise, reverb, talker, near_clean")

    export = add_command(sub, "export", "write labels with scores (or routing decisions) as a "
                         "lhotse CutSet and/or a NeMo manifest", cmd_export)
    run_arg(export)
    export.add_argument("--lhotse", default=None,
                        help="lhotse CutSet to write (.jsonl or .jsonl.gz); needs lhotse")
    export.add_argument("--nemo", default=None, help="NeMo JSON-lines manifest to write")
    export.add_argument("--decisions", default=None,
                        help="export this decisions.parquet of `serec recommend` instead of "
                             "the run's labels")

    score = add_command(sub, "score", "DNSMOS P.835/P.808 of audio files or folders", cmd_score)
    score.add_argument("paths", nargs="+", help="audio files or folders")
    score.add_argument("--out", default=None, help="write the table to this Parquet file")
    score.add_argument("--personalized", action="store_true",
                       help="personalised DNSMOS (interfering talkers count as noise)")
    score.add_argument("--address", default=None,
                       help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")

    label = add_command(sub, "label", "run every enhancer + DNSMOS and label each clip",
                        cmd_label)
    run_arg(label)
    config_args(label)
    label.add_argument("--save-audio", action="store_true",
                       help="also write audio/enhanced/<system>/<clip>.wav")

    feats = add_command(sub, "features", "CE/KL spectral features for every clip", cmd_features)
    run_arg(feats)
    config_args(feats)

    enhancers = add_command(sub, "enhancers", "list every enhancer kind: sample rate, whether "
                            "it runs here, licence and parameters", cmd_enhancers)
    enhancers.add_argument("--json", action="store_true",
                           help="print the list as JSON instead of a table")

    from serec import cli_stages

    cli_stages.add_parsers(sub)
    return parser


def configure_output(verbose: bool, quiet: bool) -> None:
    """Log level and progress reports for ``-v``/``-q``; noisy library warnings filtered."""
    from serec.progress import set_quiet
    from serec.ray_utils import quiet_library_warnings

    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    set_quiet(quiet)
    if not verbose:
        quiet_library_warnings()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[0].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; expected failures print one line and return 2."""
    from serec.enhancers.base import MissingDependencyError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a one-line argument error
        return exc.code if isinstance(exc.code, int) else 2
    configure_output(args.verbose, args.quiet)
    try:
        return args.func(args)
    except (UsageError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError, MissingDependencyError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"serec {args.command_name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"serec {args.command_name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
