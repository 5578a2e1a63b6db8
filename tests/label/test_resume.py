"""Per-pair resume: adding/removing an enhancer, lost score parts, worker-saved audio, and a
clip that kills its worker (``os.abort()``) without hanging the job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from serec.audio import TARGET_SR
from serec.config import load_config
from serec.data.importer import import_recordings
from serec.label.pipeline import run_label
from serec.label.tables import read_labels, read_scores
from serec.runs import LABELS, SCORES, RunDir
from tests.label.test_pipeline import speechlike

CLIPS = 4


def make_run(tmp_path: Path, root: str | None = None) -> tuple[RunDir, list[int]]:
    """A run of ``CLIPS`` clips of distinct lengths; returns it and the lengths (samples)."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "clips"
    folder.mkdir()
    lengths = []
    for i in range(CLIPS):
        audio = speechlike(1.0 + 0.25 * i, rng, 5.0 + 2 * i)
        sf.write(folder / f"clip_{i}.wav", audio, TARGET_SR)
        lengths.append(audio.size)
    run = RunDir.of(root or tmp_path / "run")
    import_recordings(run, [str(folder)])
    return run, lengths


def write_config(path: Path, enhancers: dict) -> Path:
    small = {"num_cpus": 0.1, "batch_size": 2}
    config = {"enhancers": {name: {**entry, "resources": small}
                            for name, entry in enhancers.items()},
              "label": {"rows_per_part": 1, "decode": {"num_cpus": 0.2, "batch_size": 2}},
              "dnsmos": {"num_cpus": 0.25, "batch_size": 2}}
    path.write_text(yaml.safe_dump(config))
    return path


def counted(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_add_remove_enhancer_and_lost_parts_recompute_only_missing_pairs(tmp_path, ray_session):
    # A file:// URI root: scores, labels and saved audio all go through the run's filesystem.
    run, lengths = make_run(tmp_path, f"file://{tmp_path / 'run'}")
    log = tmp_path / "counting.log"
    gate = {"kind": "spectral_gate"}
    counting = {"kind": "tests.label.aborting:CountingEnhancer", "log_path": str(log)}
    first = run_label(run, load_config(write_config(tmp_path / "a.yaml", {"gate": gate})))
    assert (first["labeled"], first["pairs_this_run"]) == (CLIPS, CLIPS * 2)
    before = read_scores(run).set_index(["clip_id", "system"])["scored_at"]

    # Adding an enhancer computes only its pairs (and saves its audio from the workers).
    both = load_config(write_config(tmp_path / "b.yaml", {"gate": gate, "counting": counting}))
    added = run_label(run, both, save_audio=True)
    assert added["pairs_this_run"] == CLIPS and sorted(counted(log)) == sorted(lengths)
    scores = read_scores(run).set_index(["clip_id", "system"])["scored_at"]
    assert scores.loc[before.index].equals(before)  # earlier pairs were not recomputed
    labels = read_labels(run)
    assert len(labels) == CLIPS and labels["complete"].all()
    assert {"noisy_ovr", "gate_ovr", "counting_ovr"} <= set(labels)
    saved = sorted(Path(tmp_path / "run" / "audio" / "enhanced" / "counting").glob("*.wav"))
    assert [p.stem for p in saved] == sorted(labels["clip_id"])
    assert sorted(sf.info(p).frames for p in saved) == sorted(lengths)

    # A lost scores part (a crash before it was written) recomputes that one pair only.
    fs_root = str(tmp_path / "run" / SCORES)
    lost = next(p for p in sorted(Path(fs_root).glob("*.parquet"))
                if pq.read_table(p).column("system").to_pylist() == ["counting"])
    lost_clip = pq.read_table(lost).column("clip_id")[0].as_py()
    lost.unlink()
    again = run_label(run, both)
    assert again["pairs_this_run"] == 1 and len(counted(log)) == CLIPS + 1
    assert set(read_scores(run)["clip_id"]) >= {lost_clip}

    # Removing an enhancer re-derives the labels without enhancing anything.
    removed = run_label(run, load_config(write_config(tmp_path / "c.yaml", {"gate": gate})))
    assert removed["pairs_this_run"] == 0 and len(counted(log)) == CLIPS + 1
    assert (removed["labeled"], removed["complete"]) == (CLIPS, CLIPS)
    labels = run.read_pandas(LABELS)
    assert "counting_ovr" not in labels and set(labels["label"]) <= {"gate", "all_failed"}
    generations = {Path(part).name.split("-")[1] for part in run.list_parts(LABELS)}
    assert len(generations) == 1  # the older generations of label parts are gone

@pytest.mark.slow
@pytest.mark.timeout(600)
def test_clip_that_kills_its_worker_gets_an_error_row_and_the_job_ends(tmp_path, ray_session):
    run, lengths = make_run(tmp_path)
    poisoned = lengths[2]
    config = load_config(write_config(tmp_path / "c.yaml", {
        "passthrough": {"kind": "passthrough"},
        "aborting": {"kind": "tests.label.aborting:AbortingEnhancer",
                     "abort_samples": poisoned}}))
    summary = run_label(run, config)
    assert (summary["labeled"], summary["rejected"], summary["missing"]) == (CLIPS, 0, 0)
    assert (summary["complete"], summary["incomplete"]) == (CLIPS - 1, 1)
    assert summary["systems"]["aborting"]["worker_died"] == 1
    scores = read_scores(run)
    assert len(scores) == CLIPS * 3 and part_count(run) == CLIPS * 3  # no duplicates
    aborting = scores[scores["system"] == "aborting"]
    died = aborting[aborting["error"].fillna("").str.startswith("worker_died")]
    assert len(died) == 1 and aborting["error"].notna().sum() == 1
    assert np.isfinite(aborting.loc[aborting["error"].isna(), "ovr"]).all()
    labels = read_labels(run, include_incomplete=True).set_index("clip_id")
    clip = died["clip_id"].iloc[0]
    assert not labels.at[clip, "complete"] and labels.at[clip, "missing_systems"] == "aborting"
    assert labels.at[clip, "label"] in {"passthrough", "all_failed"}
    assert clip not in set(read_labels(run)["clip_id"])


def part_count(run: RunDir) -> int:
    return sum(pq.read_metadata(p).num_rows for p in run.list_parts(SCORES))
