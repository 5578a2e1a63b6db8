"""The long-format stages in one process: (decode ->) pairs -> DNSMOS -> worker-side writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serec.audio import TARGET_SR
from serec.config import load_config
from serec.enhancers.registry import parse_enhancer_specs
from serec.label.pairs import (
    AS_SYSTEMS,
    PAIR_COLUMNS,
    EnhancePairs,
    ScorePairs,
    expand_shared,
    noisy_pairs,
    write_pairs,
)
from serec.label.pipeline import identity_systems, noisy_branch_clips
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
    enhancer = EnhancePairs("gate", {"kind": "spectral_gate"})
    enhanced = enhancer(manifest)  # manifest rows: the actor decodes them itself
    pd.testing.assert_frame_equal(enhanced.drop(columns="seconds"),
                                  enhancer(decoded).drop(columns="seconds"))
    assert enhanced["reject_reason"].notna().tolist() == [False, False, True]
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
    assert (scores["dnsmos_node_id"] == node_id()).all()
    rejects = read_rejects(run)  # the silent clip: one decode reject, not one per system
    assert rejects[["clip_id", "stage"]].to_dict("records") == [dict(clip_id="s",
                                                                     stage="decode")]
    assert rejects["reason"].iloc[0].startswith("silent")
    saved = sorted((tmp_path / "run" / "audio" / "enhanced" / "gate").glob("*.wav"))
    assert [p.stem for p in saved] == ["g0", "g1"]
    assert sf.info(saved[1]).frames == int(1.5 * TARGET_SR)


class RecordingDnsmos:
    """A stand-in scorer: OVR = the clip's first sample, every other field its length."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def score_batch(self, clips):
        from serec.quality.dnsmos import DnsmosScores

        self.seen.extend(clips)
        return [DnsmosScores(*([float(c.size)] * 2), float(c[0]), *([float(c.size)] * 4))
                for c in clips]


def test_framings_drop_the_first_ms_and_score_first_or_mean():
    from serec.label.stages import score_framings

    clip = np.arange(TARGET_SR, dtype=np.float32) / TARGET_SR  # sample i holds i / 16000
    dnsmos = RecordingDnsmos()
    (first,), seconds = score_framings(dnsmos, [clip], (0.0, 1.0, 5.0), "first")
    assert [c.size for c in dnsmos.seen] == [TARGET_SR, TARGET_SR - 16, TARGET_SR - 80]
    assert first.ovr_framings == pytest.approx([0.0, 16 / TARGET_SR, 80 / TARGET_SR])
    assert first.fields["ovr"] == 0.0 and first.fields["sig"] == TARGET_SR
    assert seconds.shape == (1,)
    (mean,), _ = score_framings(RecordingDnsmos(), [clip], (0.0, 1.0, 5.0), "mean")
    assert mean.fields["ovr"] == pytest.approx(96 / 3 / TARGET_SR)
    assert mean.fields["sig"] == pytest.approx(TARGET_SR - 32)


def test_score_pairs_writes_every_framing_with_real_dnsmos(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "c.wav"
    sf.write(path, speechlike(1.2, rng, 5.0), TARGET_SR)
    pairs = noisy_pairs(decode_batch(pd.DataFrame({"clip_id": ["c"], "path": [str(path)]})))
    run = RunDir.of(tmp_path / "run")
    first = ScorePairs(run.root, shifts_ms=(0.0, 7.0))(pairs)
    mean = ScorePairs(run.root, shifts_ms=(0.0, 7.0), score="mean")(pairs)
    framings = first["ovr_framings"].iloc[0]
    assert len(framings) == 2 and framings[0] != framings[1]  # the shift moves the score
    assert first["ovr"].iloc[0] == pytest.approx(framings[0])
    assert mean["ovr"].iloc[0] == pytest.approx(np.mean(framings))
    write_pairs(first, run.root)
    stored = read_scores(run)["ovr_framings"].iloc[0]
    assert list(stored) == pytest.approx(framings)


def test_identity_systems_are_scored_with_the_noisy_clip(tmp_path):
    """passthrough has no branch: the noisy branch decodes each clip pending for noisy or for
    passthrough once, one DNSMOS pass, written as a score row for each of them."""
    config_path = tmp_path / "c.yaml"
    config_path.write_text("enhancers:\n  keep: {kind: passthrough}\n"
                           "  gate: {kind: spectral_gate}\n")
    assert identity_systems(parse_enhancer_specs(load_config(config_path).enhancers)) == ["keep"]
    manifest = pd.DataFrame({"clip_id": ["a", "b", "c"], "path": ["a.wav", "b.wav", "c.wav"]})
    todo = {"noisy": manifest.iloc[:2], "keep": manifest.iloc[1:], "gate": manifest}
    clips = noisy_branch_clips(todo, ["keep"])
    assert clips[["clip_id", AS_SYSTEMS]].values.tolist() == [
        ["a", "noisy"], ["b", "noisy,keep"], ["c", "keep"]]
    assert noisy_branch_clips({"gate": manifest}, ["keep"]) is None

    rng = np.random.default_rng(2)
    path = tmp_path / "b.wav"
    sf.write(path, speechlike(1.0, rng, 5.0), TARGET_SR)
    rows = pd.DataFrame({"clip_id": ["b"], "path": [str(path)], AS_SYSTEMS: ["noisy,keep"]})
    run = RunDir.of(tmp_path / "run")
    scored = ScorePairs(run.root, save_audio=True)(noisy_pairs(decode_batch(rows)))
    assert len(scored) == 1  # one DNSMOS pass
    assert write_pairs(scored, run.root).to_dict("list") == {"pairs": [2]}
    scores = read_scores(run).set_index("system")
    assert sorted(scores.index) == ["keep", "noisy"]
    assert scores.at["keep", "ovr"] == scores.at["noisy", "ovr"]
    # scoring keep's output is the one pass that scored the noisy clip: same cost, no enhancing
    assert scores.at["keep", "dnsmos_seconds"] == scores.at["noisy", "dnsmos_seconds"] > 0
    assert scores.at["keep", "seconds"] == 0
    assert (tmp_path / "run" / "audio" / "enhanced" / "keep" / "b.wav").is_file()
    assert not (tmp_path / "run" / "audio" / "enhanced" / "noisy").exists()


def test_expand_shared_keeps_enhancer_pairs_and_each_rows_costs():
    batch = pd.DataFrame({"clip_id": ["a", "a"], "system": ["noisy", "gate"],
                          AS_SYSTEMS: ["keep", ""], "seconds": [0.0, 0.4],
                          "dnsmos_seconds": [0.2, 0.3]})
    out = expand_shared(batch)
    assert out[["system", "seconds", "dnsmos_seconds"]].values.tolist() == [
        ["keep", 0.0, 0.2], ["gate", 0.4, 0.3]]
    shared = expand_shared(batch.assign(**{AS_SYSTEMS: ["noisy,keep,also", ""]}))
    assert shared["system"].tolist() == ["noisy", "keep", "also", "gate"]
    assert shared["dnsmos_seconds"].tolist() == [0.2, 0.2, 0.2, 0.3]
    assert AS_SYSTEMS not in shared
