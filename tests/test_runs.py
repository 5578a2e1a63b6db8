"""Run directories on a local folder and on an S3 server on loopback (moto)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from serec.runs import RunDir, is_uri


def _table(ids: list[str], value: float) -> pa.Table:
    return pa.table({"clip_id": ids, "value": [value] * len(ids)})


def _exercise(run: RunDir) -> None:
    run.write_table("manifest.parquet", _table(["a", "b"], 0.0))
    run.append_part("labels", _table(["a", "b"], 1.0))
    run.append_part("labels", _table(["b", "c"], 2.0))
    run.write_json("report/metrics.json", {"f1": 0.5})
    run.write_bytes("audio/enhanced/gate/a.wav", b"RIFF....")
    assert run.read_table("manifest.parquet").num_rows == 2
    labels = run.read_pandas("labels").sort_values("clip_id")
    assert labels["clip_id"].tolist() == ["a", "b", "c"] and len(run.list_parts("labels")) == 2
    assert run.has_table("labels") and not run.has_table("scores")
    assert run.read_json("report/metrics.json") == {"f1": 0.5}
    assert run.read_bytes("audio/enhanced/gate/a.wav") == b"RIFF...."
    assert run.exists("report", "metrics.json") and not run.exists("report", "missing.md")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run.read_table("scores")


def test_local_run_dir_leaves_no_temporary_files(tmp_path):
    run = RunDir.of(tmp_path / "run")
    _exercise(run)
    names = sorted(p.relative_to(tmp_path / "run").as_posix()
                   for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert [n for n in names if ".tmp-" in n] == []
    assert "manifest.parquet" in names and "audio/enhanced/gate/a.wav" in names


def test_file_uri_is_the_same_folder(tmp_path):
    run = RunDir.of(f"file://{tmp_path}/run")
    assert run.is_local and run.local_root == f"{tmp_path}/run"
    run.write_json("x.json", [1])
    assert (tmp_path / "run" / "x.json").is_file()


def test_s3_run_dir_from_the_standard_aws_variables(tmp_path, s3_server, s3_bucket,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = RunDir.of(f"s3://{s3_bucket}/some/prefix/")
    assert run.root == f"s3://{s3_bucket}/some/prefix" and not run.is_local and is_uri(run.root)
    with pytest.raises(ValueError, match="not on a local filesystem"):
        _ = run.local_root
    _exercise(run)
    keys = s3_server.keys(s3_bucket)
    objects = [k for k in keys if not k.endswith("/")]
    assert sorted(objects) == sorted(
        f"some/prefix/{rel}" for rel in ("manifest.parquet", "report/metrics.json",
                                         "audio/enhanced/gate/a.wav",
                                         *(p.split("/some/prefix/")[1]
                                           for p in run.list_parts("labels"))))
    assert not list(tmp_path.iterdir()), "an S3 run wrote into the working folder"
