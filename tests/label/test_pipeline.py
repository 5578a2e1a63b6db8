"""The Ray Data labeling job: planted bad files, a failing enhancer, kill -9 and resume."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from serec.audio import TARGET_SR
from serec.config import load_config
from serec.data.importer import import_recordings
from serec.data.manifest import read_manifest
from serec.label.pipeline import build_dataset, pending_pairs, run_label
from serec.label.tables import labels_table, read_labels
from serec.runs import LABELS, REJECTS, SCORES, RunDir

REPO = Path(__file__).resolve().parents[2]
GOOD_CLIPS = 7
FAIL_SECONDS = 1.3


def speechlike(seconds: float, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Harmonic bursts with a syllable-rate envelope plus white noise at ``snr_db``."""
    t = np.arange(int(seconds * TARGET_SR)) / TARGET_SR
    f0 = 110 + 40 * rng.random()
    voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    clean = voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    clean *= 0.1 / np.sqrt(np.mean(clean**2))
    noise = rng.standard_normal(t.size)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (clean + noise).astype(np.float32)


def make_clips(folder: Path, good: int = GOOD_CLIPS) -> int:
    """``good`` usable clips plus 5 planted bad files; returns the number of bad files."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(good):
        seconds = FAIL_SECONDS if i == 0 else 1.0 + 0.2 * i
        sf.write(folder / f"good_{i}.wav", speechlike(seconds, rng, 5.0 + i), TARGET_SR)
    sf.write(folder / "truncated.wav", speechlike(2.0, rng, 5.0), TARGET_SR)
    data = (folder / "truncated.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[:100])
    (folder / "notes.wav").write_text("this is a text file with a .wav name")
    nan = speechlike(1.0, rng, 5.0)
    nan[100:200] = np.nan
    sf.write(folder / "nans.wav", nan, TARGET_SR, subtype="FLOAT")
    sf.write(folder / "silence.wav", np.zeros(TARGET_SR, np.float32), TARGET_SR)
    sf.write(folder / "short.wav", speechlike(0.1, rng, 5.0), TARGET_SR)
    return 5


def write_config(path: Path, rows_per_part: int = 64, faulty: bool = True,
                 shifts_ms: tuple[float, ...] = (), object_store_mib: float | None = None,
                 wait_for_actors_s: int | None = None) -> Path:
    enhancers = {
        "spectral_gate": {"kind": "spectral_gate",
                          "resources": {"num_cpus": 0.25, "batch_size": 2}},
        "passthrough": {"kind": "passthrough", "resources": {"num_cpus": 0.1, "batch_size": 2}},
    }
    if faulty:
        enhancers["faulty"] = {"kind": "tests.label.faulty:FaultyEnhancer",
                               "fail_samples": int(FAIL_SECONDS * TARGET_SR),
                               "resources": {"num_cpus": 0.1, "batch_size": 2}}
    config = {
        "enhancers": enhancers,
        "label": {"rows_per_part": rows_per_part, "decode": {"num_cpus": 0.2, "batch_size": 2},
                  "framings": {"shifts_ms": list(shifts_ms)},
                  "object_store_mib": object_store_mib, "wait_for_actors_s": wait_for_actors_s},
        "dnsmos": {"num_cpus": 0.25, "batch_size": 4},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def part_rows(run: RunDir, folder: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in run.list_parts(folder))


@pytest.mark.timeout(600)
def test_bad_files_and_failing_enhancer(tmp_path, ray_session):
    bad = make_clips(tmp_path / "clips")
    run = RunDir.of(tmp_path / "run")
    import_recordings(run, [str(tmp_path / "clips")])
    # 2 framings; an object-store cap of a few blocks still lets every stage run; every actor
    # pool waits for its minimum of actors before work starts
    config = load_config(write_config(tmp_path / "c.yaml", shifts_ms=(5.0,),
                                      object_store_mib=0.5, wait_for_actors_s=300))
    dataset = build_dataset(run, pending_pairs(run, read_manifest(run), ["noisy"]), config,
                            save_audio=False)
    limits = dataset.context.execution_options.resource_limits
    assert limits.object_store_memory == round(0.5 * 2**20)
    assert dataset.context.wait_for_min_actors_s == 300
    stderr = io.StringIO()  # no terminal: plain progress lines (never closed: Ray logs here too)
    with contextlib.redirect_stderr(stderr):
        summary = run_label(run, config)
    assert (summary["labeled"], summary["rejected"], summary["missing"]) == (GOOD_CLIPS, bad, 0)
    assert (summary["complete"], summary["incomplete"]) == (GOOD_CLIPS - 1, 1)
    pairs = (GOOD_CLIPS + bad) * 4  # bad files are found out by the decode of every branch
    assert summary["pairs_this_run"] == pairs
    err = stderr.getvalue()
    assert f"label: started, {pairs} pairs to do" in err and f"{pairs}/{pairs} pairs" in err
    assert "ETA" in err and "done in" in err
    rejects = run.read_pandas(REJECTS)
    reasons = {Path(p).name: r.split(":")[0]
               for p, r in zip(rejects["path"], rejects["reason"], strict=True)}
    assert reasons == {"truncated.wav": reasons["truncated.wav"], "notes.wav": "unreadable",
                       "nans.wav": "non_finite", "silence.wav": "silent",
                       "short.wav": "too_short"}
    assert reasons["truncated.wav"] in {"unreadable", "empty", "too_short"}
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    assert len(scores) == GOOD_CLIPS * 4  # noisy + 3 enhancers
    failed = scores[scores["error"].notna()]
    assert list(failed["system"]) == ["faulty"] and "planted failure" in failed["error"].iloc[0]
    assert np.isnan(failed["ovr"].iloc[0]) and failed["ovr_framings"].iloc[0] is None
    scored = scores[scores["error"].isna()]
    assert all(len(f) == 2 and f[0] == ovr
               for f, ovr in zip(scored["ovr_framings"], scored["ovr"], strict=True))
    labels = run.read_pandas(LABELS)
    assert labels["clip_id"].is_unique and len(labels) == GOOD_CLIPS
    incomplete = labels[~labels["complete"]]
    assert list(incomplete["clip_id"]) == list(failed["clip_id"])
    assert list(incomplete["missing_systems"]) == ["faulty"]
    assert (labels.loc[labels["complete"], "missing_systems"] == "").all()
    assert len(read_labels(run)) == GOOD_CLIPS - 1  # training/evaluation: complete clips only
    assert len(read_labels(run, include_incomplete=True)) == GOOD_CLIPS
    assert set(labels["label"]) <= {"spectral_gate", "passthrough", "faulty", "all_failed"}
    # passthrough (an identity) has no pool: the noisy clip's one DNSMOS pass is its score
    passthrough = scores[scores["system"] == "passthrough"].set_index("clip_id").sort_index()
    noisy = scores[scores["system"] == "noisy"].set_index("clip_id").sort_index()
    assert passthrough["ovr"].tolist() == noisy["ovr"].tolist()
    assert (passthrough["seconds"] == 0).all()
    assert passthrough["dnsmos_seconds"].tolist() == noisy["dnsmos_seconds"].tolist()
    assert (labels["best_ovr"] >= labels["second_ovr"]).all()
    # the metric's noise: the best output's OVR spread over the 2 framings, ties within it
    framings = scores.set_index(["clip_id", "system"])["ovr_framings"]
    for row in labels.itertuples():
        spread = np.std(framings[(row.clip_id, row.best_system)], ddof=1)
        assert row.noise_floor == pytest.approx(spread)
        tied = row.tied_systems.split(",")
        assert row.best_system in tied and all(
            getattr(row, f"{s}_ovr") >= row.best_ovr - spread - 1e-12 for s in tied)
    assert summary["framings"] == {"shifts_ms": [0.0, 5.0], "score": "first"}
    # A rerun finds nothing to do and writes no duplicate rows.
    again = run_label(run, config)
    assert again["processed_this_run"] == 0 and again["pairs_this_run"] == 0
    assert part_rows(run, LABELS) == GOOD_CLIPS
    assert part_rows(run, SCORES) == GOOD_CLIPS * 4 and part_rows(run, REJECTS) == bad


@pytest.mark.timeout(480)
def test_kill_and_resume_leaves_one_row_per_clip(tmp_path, ray_session):
    bad = make_clips(tmp_path / "clips", good=10)
    run = RunDir.of(tmp_path / "run")
    import_recordings(run, [str(tmp_path / "clips")])
    config_path = write_config(tmp_path / "c.yaml", rows_per_part=1, faulty=False)
    address = ray_session.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "serec.cli", "label", "--run", run.root,
                             "--config", str(config_path), "--address", address],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while part_rows(run, SCORES) + part_rows(run, REJECTS) < 3:
        assert proc.poll() is None, "label job ended before it could be killed"
        assert time.monotonic() < deadline, "label job wrote nothing in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    scored, rejected = part_rows(run, SCORES), part_rows(run, REJECTS)
    assert scored < 10 * 3, "the job finished before the kill; nothing to resume"
    summary = run_label(run, load_config(config_path))
    # Only the missing pairs (noisy + 2 enhancers) of clips not known to be bad are computed.
    assert summary["pairs_this_run"] == (10 + bad - rejected) * 3 - scored
    assert (summary["labeled"], summary["rejected"], summary["missing"]) == (10, bad, 0)
    assert part_rows(run, LABELS) == 10 and part_rows(run, REJECTS) == bad
    assert part_rows(run, SCORES) == 10 * 3


def test_label_parts_keep_manifest_types_when_a_part_lacks_values(tmp_path):
    """A part whose clips have no RIR/talker must still concatenate with one whose clips do."""
    run = RunDir.of(tmp_path / "run")
    dry = dict(clip_id="a", condition="noise", rt60_s=float("nan"), rir_id=float("nan"),
               interferer_speaker_id=None, n_noises=2.0, best_system="noisy")
    wet = dict(clip_id="b", condition="reverb", rt60_s=0.6, rir_id="sim-1",
               interferer_speaker_id="vctk:p226", n_noises=1, best_system="rnnoise")
    run.append_part(LABELS, labels_table([dry]))
    run.append_part(LABELS, labels_table([wet]))
    table = run.read_table(LABELS)
    rir_type = table.schema.field("rir_id").type
    assert pa.types.is_string(rir_type) or pa.types.is_large_string(rir_type)
    assert table.schema.field("n_noises").type == pa.int32()
    rows = {r["clip_id"]: r for r in table.to_pylist()}
    assert rows["a"]["rir_id"] is None and rows["a"]["n_noises"] == 2
    assert rows["b"]["rir_id"] == "sim-1" and rows["b"]["interferer_speaker_id"] == "vctk:p226"
