"""``serec score``: files in, the same DNSMOS scores as speechmos out (in-process and Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from serec.quality import score_files
from serec.quality.score_files import score_paths

speechmos_dnsmos = pytest.importorskip("speechmos.dnsmos")


def reference(path: str) -> dict[str, float]:
    import soundfile as sf

    audio, sr = sf.read(path, dtype="float32")
    result = speechmos_dnsmos.run(audio, sr)
    return {"sig": result["sig_mos"], "bak": result["bak_mos"], "ovr": result["ovrl_mos"],
            "p808": result["p808_mos"]}


def check(frame, files) -> None:
    assert sorted(frame["file"]) == sorted(str(f) for f in files)
    for row in frame.itertuples():
        expected = reference(row.file)
        for key, value in expected.items():
            assert getattr(row, key) == pytest.approx(value, abs=1e-4), (row.file, key)


@pytest.mark.timeout(300)
def test_score_pairs_in_process(corpus):
    files = sorted((corpus / "pairs").glob("*.wav"))
    check(score_paths([str(corpus / "pairs")]), files)


@pytest.mark.timeout(300)
def test_score_through_ray_data(corpus, ray_session, monkeypatch, tmp_path):
    monkeypatch.setattr(score_files, "IN_PROCESS_MAX_FILES", 0)
    files = sorted((corpus / "pairs").glob("*.wav"))[:3]
    (tmp_path / "bad.wav").write_text("not audio")
    frame = score_paths([str(f) for f in files] + [str(tmp_path / "bad.wav")])
    bad = frame[frame["file"].str.endswith("bad.wav")]
    assert bad["error"].str.startswith("unreadable").all() and np.isnan(bad["ovr"]).all()
    check(frame[frame["error"].isna()], files)
