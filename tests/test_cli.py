"""The command line: every stage is a subcommand, and data mix works end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from serec.cli import build_parser, main

SUBCOMMANDS = ("data", "score", "label", "features", "split", "train", "tune", "evaluate",
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
