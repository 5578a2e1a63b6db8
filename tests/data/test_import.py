"""``serec data import``: pairing, segmentation of long files, unreadable files kept."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from serec.data.importer import import_recordings, segment_windows
from serec.data.manifest import read_manifest
from serec.runs import RunDir


def test_segment_windows():
    assert segment_windows(4.0) == [(0.0, 4.0)]
    assert segment_windows(25.0) == [(0.0, 10.0), (10.0, 10.0), (20.0, 5.0)]
    assert segment_windows(20.2) == [(0.0, 10.0), (10.0, 10.2)]


def test_import_pairs_and_segments(tmp_path, rng):
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    noisy.mkdir()
    clean.mkdir()
    for name, seconds in [("p287_001", 3.0), ("p287_002", 23.0)]:
        sf.write(noisy / f"{name}_noisy.wav", rng.standard_normal(int(seconds * 16000)) * .1,
                 16000)
        sf.write(clean / f"{name}.wav", rng.standard_normal(int(seconds * 16000)) * .1, 16000)
    (noisy / "broken.wav").write_text("not audio")
    run = RunDir.of(tmp_path / "run")
    import_recordings(run, [str(noisy)], [str(clean)])
    manifest = read_manifest(run)
    assert len(manifest) == 1 + 3 + 1
    assert manifest["clip_id"].is_unique
    paired = manifest[manifest["path"].str.contains("p287")]
    assert paired["clean_path"].notna().all()
    assert set(paired["speaker_id"]) == {"vctk:p287"}
    long = paired[paired["path"].str.contains("002")].sort_values("offset_s")
    assert list(long["offset_s"]) == [0.0, 10.0, 20.0]
    broken = manifest[manifest["path"].str.endswith("broken.wav")]
    assert broken["duration_s"].isna().all()
    again = import_recordings(run, [str(noisy)], [str(clean)])
    assert list(sorted(again["clip_id"])) == list(sorted(manifest["clip_id"]))
    assert len(read_manifest(run)) == 5
    assert np.isclose(long["duration_s"].sum(), 23.0)
