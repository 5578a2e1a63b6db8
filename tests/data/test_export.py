"""``serec export --decisions``: a router's decisions as NeMo and lhotse manifests."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from serec.audio import TARGET_SR, write_wav
from serec.cli import main

pytestmark = pytest.mark.timeout(120)


def test_decisions_export_as_whole_file_clips(tmp_path, rng):
    paths = []
    for name, seconds in (("a", 0.5), ("b", 0.75)):
        paths.append(tmp_path / f"{name}.wav")
        write_wav(paths[-1], 0.1 * rng.standard_normal(int(seconds * TARGET_SR)))
    decisions = tmp_path / "decisions.parquet"
    pd.DataFrame({"path": [str(p) for p in paths], "name": ["a", "b"], "clip_id": [None, None],
                  "label": ["dfn", "all_failed"], "system": ["dfn", "passthrough"],
                  "confidence": [0.9, 0.6]}).to_parquet(decisions)
    nemo = tmp_path / "out" / "routed.json"
    assert main(["export", "--run", str(tmp_path / "unused"), "--decisions", str(decisions),
                 "--nemo", str(nemo)]) == 0
    records = [json.loads(line) for line in nemo.read_text().splitlines()]
    assert [(r["audio_filepath"], r["duration"], r["system"]) for r in records] == [
        (str(paths[0]), 0.5, "dfn"), (str(paths[1]), 0.75, "passthrough")]
    assert "speaker" not in records[0] and records[1]["confidence"] == 0.6

    lhotse = pytest.importorskip("lhotse")
    cuts_path = tmp_path / "out" / "routed.jsonl.gz"
    assert main(["export", "--run", str(tmp_path / "unused"), "--decisions", str(decisions),
                 "--lhotse", str(cuts_path)]) == 0
    cuts = lhotse.load_manifest(cuts_path)
    assert sorted(c.custom["system"] for c in cuts) == ["dfn", "passthrough"]
    assert sorted(c.duration for c in cuts) == [0.5, 0.75]


def test_export_without_labels_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path / "run"), "--nemo", str(tmp_path / "x")]) == 2
    assert "run `serec label` first" in capsys.readouterr().err
