"""The long-format stages in one process: decode -> pairs -> DNSMOS -> worker-side writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import soundfile as sf

from serec.audio import TARGET_SR
from serec.label.pairs import PAIR_COLUMNS, EnhancePairs, ScorePairs, noisy_pairs, write_pairs
from serec.label.stages import decode_batch
from serec.label.tables import read_rejects, read_scores
from serec.ray_utils import node_id
from serec.runs import RunDir
from tests.label.test_pipeline import speechlike


def test_pairs_are_scored_saved_and_written_by_the_worker(tmp_path):
    rng = np.random.default_rng(5)
    good = [tmp_path / f"good_{i}.wav" for i in range(2)]
    for i, path in enumerate(good):
        sf.write(path, speechlike(1.0 + 0.5 * i, rng, 5.0), TARGET_SR)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(TARGET_SR, np.float32), TARGET_SR)
    manifest = pd.DataFrame({"clip_id": ["g0", "g1", "s"],
                             "path": [str(p) for p in [*good, silent]]})
    decoded = decode_batch(manifest)
    enhanced = EnhancePairs("gate", {"kind": "spectral_gate"})(decoded)
    pairs = pd.concat([noisy_pairs(decoded), enhanced], ignore_index=True)
    assert list(pairs.columns) == PAIR_COLUMNS and len(pairs) == 6
    run = RunDir.of(tmp_path / "run")
    scored = ScorePairs(run.root, save_audio=True)(pairs)
    assert "audio" not in scored

    assert write_pairs(scored, run.root).to_dict("list") == {"pairs": [6]}  # a count only
    scores = read_scores(run)
    assert sorted(zip(scores["clip_id"], scores["system"], strict=True)) == [
        ("g0", "gate"), ("g0", "noisy"), ("g1", "gate"), ("g1", "noisy")]
    assert scores["error"].isna().all() and np.isfinite(scores["ovr"]).all()
    assert (scores["scored_at"] > 0).all() and (scores["node_id"] == node_id()).all()
    rejects = read_rejects(run)  # the silent clip: one decode reject, not one per system
    assert rejects[["clip_id", "stage"]].to_dict("records") == [dict(clip_id="s",
                                                                     stage="decode")]
    assert rejects["reason"].iloc[0].startswith("silent")
    saved = sorted((tmp_path / "run" / "audio" / "enhanced" / "gate").glob("*.wav"))
    assert [p.stem for p in saved] == ["g0", "g1"]
    assert sf.info(saved[1]).frames == int(1.5 * TARGET_SR)
