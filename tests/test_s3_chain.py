"""The whole chain with ``--run s3://bucket/prefix`` against an S3 server on loopback (moto).

One driver process runs every stage's command line in turn (one Ray session), from an empty
working folder with its own HOME and TMPDIR, and with the endpoint and credentials in the
standard AWS variables only. Afterwards every table, model, report and output must be in the
bucket, and no file of the run anywhere on local disk (Ray's own session folder excepted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from serec.audio import TARGET_SR
from serec.runs import FEATURES, LABELS, MANIFEST, REJECTS, SCORES, SPLITS, RunDir
from tests.evaluate.tinyrun import synth

REPO = Path(__file__).resolve().parents[1]
# Speech-like clips come out labeled rnnoise or gate, noise clips all_failed (the majority);
# 8 speakers leave a test set plus 2 folds with clips of every label.
SPEAKERS = 8
KINDS = ("speech", "noise")
FOLDS = 2
SYSTEMS = ("rnnoise", "gate")
# Suffixes and names of the files a run writes; none may appear on local disk.
RUN_SUFFIXES = {".parquet", ".wav", ".safetensors", ".png"}
RUN_NAMES = {"card.json", "report.md", "metrics.json", "label_summary.json", "threshold.json",
             "best.yaml"}

CHAIN_CONFIG = {
    "enhancers": {
        "rnnoise": {"kind": "rnnoise", "resources": {
            "num_cpus": 0.25, "batch_size": 4, "min_actors": 1, "max_actors": 1}},
        "gate": {"kind": "spectral_gate", "stationary": True, "resources": {
            "num_cpus": 0.25, "batch_size": 4, "min_actors": 1, "max_actors": 1}},
    },
    "label": {"candidates": list(SYSTEMS), "rows_per_part": 8,
              "decode": {"num_cpus": 0.25, "batch_size": 6}},
    "dnsmos": {"num_cpus": 0.25, "batch_size": 6, "min_actors": 1, "max_actors": 1},
    "features": {"num_cpus": 0.25, "batch_size": 6},
    "recommend": {"fallback": "passthrough"},
    "train": {"lr": 3.0e-4, "batch_size": 4, "epochs": 2, "patience": 2, "max_length": 128,
              "head_hidden": 16, "num_workers": 1, "cpus_per_worker": 0.5,
              "max_concurrent_trials": FOLDS},
}


def make_speakers(root: Path) -> Path:
    """``SPEAKERS`` folders (one speaker each) of one clip of each kind."""
    rng = np.random.default_rng(7)
    for s in range(SPEAKERS):
        folder = root / f"speaker{s}"
        folder.mkdir(parents=True)
        for kind in KINDS:
            sf.write(folder / f"{kind}.wav", synth(kind, rng, 1.2 + 0.1 * s), TARGET_SR)
    return root


def drive(run: str, clips: str, config: str) -> int:
    """Every stage's command line in one process; returns the first non-zero exit status."""
    from serec.cli import main

    common = ["--run", run, "--config", config]
    code = main(["label", *common, "--save-audio"])
    steps = [["features", *common],
             ["split", "--run", run, "--folds", str(FOLDS), "--test-fraction", "0.2"],
             ["train", *common, "--stage", "gatekeeper"],
             ["train", *common, "--stage", "expert"],
             ["evaluate", *common],
             ["recommend", *common, "--in", clips, "--out", f"{run}/recommended"]]
    for argv in steps:
        if code != 0:
            return code
        print(f"\n== serec {argv[0]}", flush=True)
        began = time.perf_counter()
        code = main(argv)
        print(f"-- serec {argv[0]}: {time.perf_counter() - began:.0f} s", flush=True)
    return code


def run_files(root: Path, skip: Path | None = None) -> list[Path]:
    """Files under ``root`` that look like a run's tables, models, audio or report."""
    found = []
    for path in root.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file() and (path.suffix in RUN_SUFFIXES or path.name in RUN_NAMES):
            found.append(path)
    return found


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_whole_chain_on_s3_writes_nothing_locally(tmp_path, s3_server, s3_bucket):
    clips = make_speakers(tmp_path / "clips")
    config = tmp_path / "chain.yaml"
    config.write_text(yaml.safe_dump(CHAIN_CONFIG))
    run_uri = f"s3://{s3_bucket}/runs/chain"
    # Short folders: Ray's unix socket paths under TMPDIR must stay below 108 characters.
    scratch = Path(f"/tmp/s3chain_{os.getpid()}")
    work, home, tmp = scratch / "work", scratch / "home", scratch / "tmp"
    for folder in (work, home, tmp):
        folder.mkdir(parents=True)
    env = {**os.environ, **s3_server.env, "HOME": str(home), "TMPDIR": str(tmp),
           "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    try:
        imported = subprocess.run(
            [sys.executable, "-m", "serec.cli", "data", "import", "--run", run_uri,
             "--noisy", str(clips)], cwd=work, env=env, capture_output=True, text=True,
            timeout=300)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        chain = subprocess.run(
            [sys.executable, "-c", "import sys; from tests.test_s3_chain import drive; "
             "sys.exit(drive(*sys.argv[1:]))", run_uri, str(clips), str(config)],
            cwd=work, env=env, capture_output=True, text=True, timeout=2700)
        log = chain.stdout + chain.stderr
        (tmp_path / "chain.log").write_text(log)
        assert chain.returncode == 0, log[-6000:]

        local = run_files(work) + run_files(home) + run_files(tmp, skip=tmp / "ray")
        assert not local, f"run files written to local disk: {local}"
        for folder in (work, REPO, Path.cwd()):
            assert not (folder / "s3:").exists(), f"a local folder {folder / 's3:'} appeared"
        assert not any(work.iterdir()), sorted(work.iterdir())
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)

    keys = s3_server.keys(s3_bucket, "runs/chain/")
    rel = [k.removeprefix("runs/chain/") for k in keys]
    assert not [k for k in rel if ".tmp-" in k], "temporary names left behind"
    run = RunDir.of(run_uri)
    n_clips = SPEAKERS * len(KINDS)
    manifest = run.read_pandas(MANIFEST)
    labels = run.read_pandas(LABELS)
    assert len(manifest) == n_clips
    rejected = len(run.read_pandas(REJECTS)) if run.has_table(REJECTS) else 0
    assert len(labels) + rejected == n_clips
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    assert set(scores["system"]) >= set(SYSTEMS)
    assert set(run.read_pandas(FEATURES)["clip_id"]) == set(manifest["clip_id"])
    assert run.exists(SPLITS) and run.exists("label_summary.json")
    for stage in ("gatekeeper", "expert"):
        for fold in range(FOLDS):
            for name in ("model.safetensors", "card.json"):
                assert f"models/{stage}/fold_{fold}/{name}" in rel, (stage, fold, name)
    assert any(k.startswith("ray_results/") for k in rel), "Train/Tune results not on S3"
    for name in ("report.md", "metrics.json", "quality_vs_compute.png"):
        assert f"report/{name}" in rel, name
    decisions = RunDir.of(f"{run_uri}/recommended").read_pandas("decisions.parquet",
                                                                dedup_key=None)
    assert len(decisions) == n_clips
    outputs = decisions["output"].dropna()
    assert len(outputs) == len(decisions) - decisions["enhancer_error"].notna().sum() > 0
    for output in outputs:
        assert output.startswith(f"{run_uri}/recommended/rec_")
        assert output.removeprefix(f"{run_uri}/") in rel
    written = RunDir.of(run_uri).read_bytes(outputs.iloc[0].removeprefix(f"{run_uri}/"))
    assert written[:4] == b"RIFF"

    # --save-audio: every labeled clip's enhanced audio of every system, on S3.
    expected = {f"audio/enhanced/{system}/{clip}.wav" for system in SYSTEMS
                for clip in labels["clip_id"]}
    assert expected <= set(rel)
