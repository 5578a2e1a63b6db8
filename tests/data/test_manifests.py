"""lhotse and NeMo manifests in (``data import --manifest``) and out (``serec export``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serec.audio import TARGET_SR, write_wav
from serec.cli import main
from serec.data.manifest import read_manifest
from serec.data.manifests import detect_format, read_nemo
from serec.errors import UsageError
from serec.runs import LABELS, SCORES, RunDir

lhotse = pytest.importorskip("lhotse")
pytestmark = pytest.mark.timeout(120)
LOCATION = ["path", "offset_s", "duration_s", "speaker_id"]


@pytest.fixture
def recordings(tmp_path, rng):
    """Two seeded noise recordings: 3 s and 1 s."""
    paths = []
    for name, seconds in (("long", 3.0), ("short", 1.0)):
        path = tmp_path / "audio" / f"{name}.wav"
        write_wav(path, 0.1 * rng.standard_normal(int(seconds * TARGET_SR)))
        paths.append(path)
    return paths


def write_labels(run: RunDir, clip_ids: list[str], seed: int = 0) -> pd.DataFrame:
    """A labels table for ``clip_ids`` with per-system scores (as `serec label` writes)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"clip_id": clip_ids, "noisy_ovr": rng.uniform(1, 3, len(clip_ids)),
                          "dfn_ovr": rng.uniform(1, 4, len(clip_ids))})
    frame["label"] = np.where(frame["dfn_ovr"] > 2.0, "dfn", "all_failed")
    run.append_part(LABELS, pa.Table.from_pandas(frame, preserve_index=False))
    scores = pd.DataFrame([{"clip_id": c, "system": s, "sig": rng.uniform(1, 5),
                            "bak": rng.uniform(1, 5), "ovr": ovr, "p808": rng.uniform(1, 5)}
                           for c, noisy, dfn in frame[["clip_id", "noisy_ovr", "dfn_ovr"]].values
                           for s, ovr in (("noisy", noisy), ("dfn", dfn))])
    run.append_part(SCORES, pa.Table.from_pandas(scores, preserve_index=False))
    return frame.merge(scores[scores["system"] == "dfn"][["clip_id", "sig"]]
                       .rename(columns={"sig": "dfn_sig"}), on="clip_id")


def lhotse_manifests(tmp_path, recordings) -> tuple[str, str]:
    recs = lhotse.RecordingSet.from_recordings(
        lhotse.Recording.from_file(p, recording_id=p.stem) for p in recordings)
    sups = lhotse.SupervisionSet.from_segments([
        lhotse.SupervisionSegment("long-a", "long", start=0.25, duration=1.0, speaker="spk1"),
        lhotse.SupervisionSegment("long-b", "long", start=1.5, duration=1.25, speaker="spk2"),
        lhotse.SupervisionSegment("short-a", "short", start=0.0, duration=1.0, speaker="spk1"),
    ])
    rec_path, sup_path = tmp_path / "recordings.jsonl.gz", tmp_path / "supervisions.jsonl.gz"
    recs.to_file(rec_path)
    sups.to_file(sup_path)
    return str(rec_path), str(sup_path)


def test_lhotse_recordings_and_supervisions_import_with_their_speakers(tmp_path, recordings):
    rec_path, sup_path = lhotse_manifests(tmp_path, recordings)
    assert detect_format(rec_path) == detect_format(sup_path) == "lhotse"
    run = tmp_path / "run"
    assert main(["data", "import", "--run", str(run), "--manifest", rec_path, sup_path]) == 0
    manifest = read_manifest(RunDir.of(run)).sort_values("offset_s", kind="stable")
    assert sorted(manifest["clip_id"]) == ["long-a", "long-b", "short-a"]
    by_id = manifest.set_index("clip_id")
    assert by_id.loc["long-b", "offset_s"] == pytest.approx(1.5)
    assert by_id.loc["long-b", "duration_s"] == pytest.approx(1.25)
    assert by_id.loc["long-a", "speaker_id"] == "spk1" == by_id.loc["short-a", "speaker_id"]
    assert by_id.loc["long-a", "source_id"] == by_id.loc["long-b", "source_id"]  # one recording
    assert by_id.loc["short-a", "path"] == str(recordings[1].resolve())


def test_lhotse_cuts_round_trip_through_export(tmp_path, recordings):
    rec_path, sup_path = lhotse_manifests(tmp_path, recordings)
    run = RunDir.of(tmp_path / "run")
    assert main(["data", "import", "--run", run.root, "--manifest", rec_path, sup_path]) == 0
    imported = read_manifest(run).sort_values("clip_id").reset_index(drop=True)
    labels = write_labels(run, imported["clip_id"].tolist())
    cuts_path = tmp_path / "out" / "cuts.jsonl.gz"
    assert main(["export", "--run", run.root, "--lhotse", str(cuts_path)]) == 0

    cuts = lhotse.load_manifest(cuts_path)
    assert isinstance(cuts, lhotse.CutSet) and len(cuts) == 3
    cut = cuts["long-b"]
    assert (cut.start, cut.duration) == pytest.approx((1.5, 1.25))
    assert cut.supervisions[0].speaker == "spk2"
    expected = labels.set_index("clip_id").loc["long-b"]
    assert cut.custom["label"] == expected["label"]
    assert cut.custom["dfn_ovr"] == pytest.approx(expected["dfn_ovr"])
    assert cut.custom["dfn_sig"] == pytest.approx(expected["dfn_sig"])
    assert {"noisy_bak", "noisy_p808", "dfn_p808"} <= set(cut.custom)
    assert cut.load_audio().shape[-1] == int(1.25 * TARGET_SR)

    again = RunDir.of(tmp_path / "again")
    assert main(["data", "import", "--run", again.root, "--manifest", str(cuts_path)]) == 0
    round_trip = read_manifest(again).sort_values("clip_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(round_trip[["clip_id", *LOCATION]],
                                  imported[["clip_id", *LOCATION]])


def test_nemo_manifest_imports_and_round_trips(tmp_path, recordings):
    lines = [{"audio_filepath": "audio/long.wav", "offset": 0.5, "duration": 2.0,
              "speaker": 7, "text": "a"},
             {"audio_filepath": str(recordings[1]), "duration": 1.0, "text": "b"}]
    source = tmp_path / "train_manifest.json"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert detect_format(source) == "nemo"
    run = RunDir.of(tmp_path / "run")
    assert main(["data", "import", "--run", run.root, "--manifest", str(source)]) == 0
    imported = read_manifest(run).sort_values("offset_s").reset_index(drop=True)
    assert imported["path"].tolist() == [str(recordings[1].resolve()),
                                         str(recordings[0].resolve())]
    assert imported["offset_s"].tolist() == [0.0, 0.5]
    assert imported["duration_s"].tolist() == [1.0, 2.0]
    # the manifest's speaker first; a file name without one falls back to its folder
    assert imported["speaker_id"].tolist() == ["dir:audio", "7"]

    labels = write_labels(run, imported["clip_id"].tolist())
    out = tmp_path / "exported.json"
    assert main(["export", "--run", run.root, "--nemo", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_path = {r["audio_filepath"]: r for r in records}
    long = by_path[str(recordings[0].resolve())]
    assert (long["offset"], long["duration"], long["speaker"]) == (0.5, 2.0, "7")
    row = labels.set_index("clip_id").loc[imported.loc[1, "clip_id"]]
    assert long["label"] == row["label"] and long["dfn_ovr"] == pytest.approx(row["dfn_ovr"])
    assert long["dfn_sig"] == pytest.approx(row["dfn_sig"])
    round_trip = read_nemo(out).sort_values("offset_s").reset_index(drop=True)
    pd.testing.assert_frame_equal(round_trip[["clip_id", *LOCATION]],
                                  imported[["clip_id", *LOCATION]])


def test_long_segments_are_windowed_and_bad_manifests_named(tmp_path, recordings):
    source = tmp_path / "m.json"
    source.write_text(json.dumps({"audio_filepath": str(recordings[0]), "duration": 3.0}) + "\n")
    frame = read_nemo(source, max_seconds=1.0)
    assert frame["offset_s"].tolist() == [0.0, 1.0, 2.0]
    assert frame["source_id"].nunique() == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"path": "x.wav"}\n')
    with pytest.raises(UsageError, match="neither a lhotse manifest"):
        detect_format(bad)
    bad.write_text('{"audio_filepath": "x.wav", "duration": "long"}\n')
    with pytest.raises(UsageError, match="bad.json:1: offset and duration must be numbers"):
        read_nemo(bad)
