"""Which files recommend takes, and output names that never collide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from serec.recommend.inputs import REASON_NO_AUDIO, REASON_NOT_FOUND, collect_inputs, output_names


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, np.float32), 16000)
    return path


def test_folders_files_and_missing_paths(tmp_path):
    a = _wav(tmp_path / "in" / "x" / "take.wav")
    b = _wav(tmp_path / "in" / "y" / "take.wav")
    c = _wav(tmp_path / "in" / "y" / "deeper" / "other.flac")
    (tmp_path / "in" / "y" / "notes.txt").write_text("skip me in folders")
    explicit = tmp_path / "loose.dat"
    explicit.write_text("tried because it was named")
    (tmp_path / "empty").mkdir()
    found = collect_inputs([str(tmp_path / "in"), str(explicit), str(a),
                            str(tmp_path / "nope.wav"), str(tmp_path / "empty")])
    assert found.files["path"].tolist() == [str(a.resolve()), str(c.resolve()),
                                            str(b.resolve()), str(explicit.resolve())]
    names = found.files["name"].tolist()
    assert names[1] == "other" and names[3] == "loose"
    assert names[0] != names[2] and names[0].startswith("take__") and names[2].startswith("take__")
    assert found.files["clip_id"].is_unique
    assert [(r["path"], r["reason"]) for r in found.rejects] == [
        (str(tmp_path / "nope.wav"), REASON_NOT_FOUND), (str(tmp_path / "empty"), REASON_NO_AUDIO)]


def test_output_names_are_stable_and_case_insensitive():
    paths = [Path("/a/Song.wav"), Path("/b/song.flac"), Path("/c/solo.wav")]
    names = output_names(paths)
    assert names == output_names(paths)
    assert len({n.lower() for n in names}) == 3 and names[2] == "solo"
