"""The command line: every stage is a subcommand, and data mix works end to end."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from serec.cli import build_parser, main
from serec.runs import LABELS, MANIFEST, SPLITS, RunDir

REPO = Path(__file__).resolve().parents[1]

SUBCOMMANDS = ("data", "export", "score", "label", "features", "split", "train", "tune", "evaluate",
               "recommend", "pipeline", "demo")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert "usage: serec " + command in capsys.readouterr().out


def test_data_mix_from_the_command_line(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    args = ["data", "mix", "--run", str(run), "--speech", str(corpus / "speech"), "--noise",
            str(corpus / "noise"), "--clips", "5", "--seed", "1"]
    assert main(args) == 0
    assert "mixed 5 clips" in capsys.readouterr().out
    first = pd.read_parquet(run / "manifest.parquet")
    assert main(args) == 0
    assert pd.read_parquet(run / "manifest.parquet").equals(first)


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["features", "--run", str(tmp_path / "empty")]) == 2
    assert "serec data mix|import|demo" in capsys.readouterr().err


def _all_parsers(parser: argparse.ArgumentParser, name: str = "serec"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_option_has_help_and_every_command_has_verbosity():
    for name, parser in _all_parsers(build_parser()):
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name}: {action.option_strings or action.dest} lacks help"
        if leaf and name != "serec":
            options = {o for a in parser._actions for o in a.option_strings}
            assert {"-v", "--verbose", "-q", "--quiet"} <= options, name


def _serec(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serec", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, **env})


@pytest.mark.parametrize(("args", "needle"), [
    (["split", "--run", "RUN", "--folds", "1"], "argument --folds: must be at least 2"),
    (["split", "--run", "RUN", "--test-fraction", "1.5"], "must lie in [0, 1)"),
    (["split", "--run", "RUN"], "labels does not exist; run `serec label` first"),
    (["features", "--run", "RUN"], "manifest.parquet not found"),
    (["data", "import", "--run", "RUN", "--manifest", "no/such.jsonl"],
     "manifest no/such.jsonl does not exist"),
    (["data", "mix", "--run", "RUN", "--speech", "x", "--noise", "y", "--clips", "many"],
     "argument --clips: expected an integer"),
    (["label", "--run", "RUN", "--config", "no/such.yaml"], "config file no/such.yaml not found"),
    (["export", "--run", "RUN"], "say where to write: --lhotse"),
    (["data", "demo", "--run", "RUN", "--snr-min", "30", "--snr-max", "0"],
     "--snr-min 30 is above --snr-max 0"),
])
def test_bad_invocations_exit_2_with_one_line(tmp_path, args, needle, capsys):
    args = [str(tmp_path / "run") if a == "RUN" else a for a in args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and needle in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("serec "), err


def test_python_m_serec_exits_2_and_verbose_shows_the_traceback(tmp_path):
    plain = _serec("split", "--run", str(tmp_path))
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (f"serec split: error: {tmp_path}/labels does not exist; "
                                    "run `serec label` first")
    verbose = _serec("split", "--run", str(tmp_path), "-v")
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_bad_config_value_names_its_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("enhancers: {passthrough: }\nlabel: {fail_treshold: 2}\n")
    assert main(["label", "--run", str(tmp_path / "run"), "--config", str(config)]) == 2
    assert ("unknown config key 'label.fail_treshold'; did you mean 'fail_threshold'?"
            in capsys.readouterr().err)


def test_voicebank_pairs_import_and_split_by_source(tmp_path, corpus, capsys):
    """One speaker: the default grouping cannot split, --group source_id can."""
    run = RunDir.of(tmp_path / "run")
    assert main(["data", "import", "--run", run.root, "--noisy", str(corpus / "pairs"),
                 "--clean", str(corpus / "speech")]) == 0
    manifest = run.read_pandas(MANIFEST)
    assert manifest["speaker_id"].unique().tolist() == ["vctk:p287"]
    assert manifest["clean_path"].notna().all()
    labels = ["dfn", "all_failed"] * (len(manifest) // 2) + ["dfn"] * (len(manifest) % 2)
    run.append_part(LABELS, pa.Table.from_pandas(
        pd.DataFrame({"clip_id": manifest["clip_id"], "label": labels}), preserve_index=False))
    capsys.readouterr()
    assert main(["split", "--run", run.root, "--folds", "2"]) == 2
    error = capsys.readouterr().err
    assert "only 1 independent groups" in error and "--group source_id" in error
    assert main(["split", "--run", run.root, "--folds", "2", "--test-fraction", "0.2",
                 "--group", "source_id"]) == 0
    out = capsys.readouterr().out
    assert "grouped by source_id" in out and "test 2 (2)" in out
    splits = run.read_pandas(SPLITS)
    assert len(splits) == len(manifest) and splits["is_test"].sum() == 2


def test_pipeline_checks_the_split_before_labeling(tmp_path, corpus):
    run = tmp_path / "run"
    assert main(["data", "import", "--run", str(run), "--noisy", str(corpus / "pairs")]) == 0
    result = _serec("pipeline", "--run", str(run), "--folds", "3")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "only 1 independent groups among 6 clips" in result.stderr
    assert not (run / LABELS).exists()


@pytest.mark.slow
def test_label_prints_progress_lines_with_an_eta_when_not_a_terminal(tmp_path, corpus):
    run = tmp_path / "run"
    assert main(["data", "import", "--run", str(run), "--noisy", str(corpus / "pairs")]) == 0
    config = tmp_path / "tiny.yaml"
    config.write_text("enhancers: {passthrough: {}, spectral_gate: {}}\n"
                      "dnsmos: {num_cpus: 0.5, batch_size: 2}\n")
    result = _serec("label", "--run", str(run), "--config", str(config),
                    SEREC_PROGRESS_INTERVAL="0", RAY_AUTH_MODE="disabled")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"label: \d+/\d+ \w+ \(\d+%\), .* ETA", result.stdout + result.stderr)
