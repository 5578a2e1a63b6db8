"""``recommend_files`` end to end: routing, per-system enhancement, names, scores, rejects."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serec.audio import resample
from serec.enhancers.registry import build_enhancer
from serec.evaluate.ensemble import ROUTER_CHOICE_FILE
from serec.label.stages import decode_clip, to_bytes
from serec.recommend import format_recommend_summary, recommend_files
from serec.recommend.driver import (
    DECISIONS_FILE,
    FILTER_CPUS,
    REJECTS_FILE,
    _branch,
    system_entries,
)
from serec.train.features_router import train_boosted
from tests.evaluate.tinyrun import build_tiny_run, synth, tiny_config

pytestmark = pytest.mark.timeout(600)
PCM16_STEP = 1.0 / 32768


def _inputs(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    first, second = root / "in" / "first", root / "in" / "second"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    sf.write(first / "speech.wav", synth("speech", rng, 1.5), 16000)
    tone = synth("tone", rng, 1.3)
    sf.write(first / "tone.wav", resample(tone, 16000, 48000), 48000)  # resampled on the way in
    sf.write(first / "noise.flac", synth("noise", rng, 1.2), 16000)
    sf.write(second / "speech.wav", synth("speech", rng, 2.0), 16000)  # same stem as first/
    (second / "bad.wav").write_text("not audio at all")
    sf.write(second / "silent.wav", np.zeros(16000, np.float32), 16000)
    return first, second


def test_recommend_files_end_to_end(tmp_path, ray_session):
    run = build_tiny_run(tmp_path, ast_stages=(), stages=("gatekeeper", "expert"))
    config = tiny_config()
    first, second = _inputs(tmp_path)
    out = tmp_path / "out"
    decisions = recommend_files(run, config, [str(first.parent), str(tmp_path / "gone.wav")],
                                str(out), score=True)

    by_file = {Path(p).relative_to(tmp_path / "in").as_posix(): row
               for p, row in zip(decisions["path"], decisions.to_dict("records"), strict=True)}
    assert sorted(by_file) == ["first/noise.flac", "first/speech.wav", "first/tone.wav",
                               "second/speech.wav"]
    assert {k: (v["label"], v["system"]) for k, v in by_file.items()} == {
        "first/noise.flac": ("all_failed", "passthrough"),
        "first/speech.wav": ("rnnoise", "rnnoise"), "first/tone.wav": ("gate", "gate"),
        "second/speech.wav": ("rnnoise", "rnnoise")}
    names = {k: v["name"] for k, v in by_file.items()}
    assert names["first/tone.wav"] == "tone" and names["first/noise.flac"] == "noise"
    assert names["first/speech.wav"] != names["second/speech.wav"]

    outputs = {}
    for key, row in by_file.items():
        path = Path(row["output"])
        assert path == out / f"rec_{row['system']}" / f"{row['name']}.wav"
        written, sr = sf.read(path, dtype="float32")
        assert sr == 16000
        clip = decode_clip(row["path"], max_seconds=math.inf)
        entry = system_entries(config, [row["system"]])[row["system"]]
        (expected,) = build_enhancer(row["system"], entry).enhance_batch([clip])
        assert written.shape == expected.shape
        np.testing.assert_allclose(written, expected, atol=2 * PCM16_STEP)
        outputs[key] = written
        assert row["router_s"] > 0 and row["enhancer_s"] >= 0
        assert np.isfinite(row["output_ovr"]) and np.isfinite(row["noisy_ovr"])
    keys = sorted(outputs)
    for i, a in enumerate(keys):  # different inputs, different outputs
        for b in keys[i + 1:]:
            n = min(outputs[a].size, outputs[b].size)
            assert not np.allclose(outputs[a][:n], outputs[b][:n], atol=1e-3), (a, b)
    speech = decode_clip(str(first / "speech.wav"), max_seconds=math.inf)
    assert not np.allclose(outputs["first/speech.wav"], speech, atol=1e-3)  # rnnoise ran
    noise = by_file["first/noise.flac"]
    assert noise["output_ovr"] == pytest.approx(noise["noisy_ovr"])           # passthrough

    on_disk = pd.read_parquet(out / DECISIONS_FILE)
    assert len(on_disk) == 4 and set(on_disk["system"]) == {"rnnoise", "gate", "passthrough"}
    rejects = pd.read_parquet(out / REJECTS_FILE)
    assert sorted(zip(rejects["path"].map(lambda p: Path(p).name), rejects["reason"],
                      strict=True)) == [("bad.wav", "unreadable"), ("gone.wav", "not_found"),
                                        ("silent.wav", "silent")]
    summary = format_recommend_summary(decisions)
    assert "4 clips enhanced, 3 rejected" in summary and "passthrough" in summary

    # evaluate found no router better than the best single system: it runs on every clip
    run.write_json(ROUTER_CHOICE_FILE, {"router": "best_single", "system": "gate"})
    single = recommend_files(run, config, [str(first.parent)], str(tmp_path / "single"))
    assert len(single) == 4 and set(single["system"]) == {"gate"}
    assert (single["router_s"] == 0).all() and single["output"].notna().all()

    # the boosted router on predicted OVR: systems only, so no all_failed probability
    train_boosted(run, target="ovr")
    run.write_json(ROUTER_CHOICE_FILE, {"router": "boosted"})
    regressed = recommend_files(run, config, [str(first.parent)], str(tmp_path / "ovr"))
    assert len(regressed) == 4 and set(regressed["system"]) <= {"rnnoise", "gate"}
    assert regressed["p_all_failed"].isna().all()
    np.testing.assert_allclose(regressed[["p_gate", "p_rnnoise"]].sum(axis=1), 1.0)


def test_an_enhancer_stage_only_receives_its_clips(ray_session):
    import ray

    rng = np.random.default_rng(0)
    clips = [synth("speech", rng, 0.6) for _ in range(6)]
    routed = ray.data.from_pandas(pd.DataFrame({
        "clip_id": [f"c{i}" for i in range(6)], "audio": [to_bytes(c) for c in clips],
        "reject_reason": [None] * 6,
        "system": ["passthrough", "other", "passthrough", "other", None, "passthrough"]}))
    # the enhancer asks for exactly the filter's default CPU share: still never fused
    branch = _branch(routed, "passthrough", {"kind": "passthrough",
                                             "resources": {"num_cpus": FILTER_CPUS}}).materialize()
    result = branch.to_pandas().sort_values("clip_id")
    assert result["clip_id"].tolist() == ["c0", "c2", "c5"]
    for row in result.itertuples():
        np.testing.assert_array_equal(np.frombuffer(row.out__output, np.float32),
                                      clips[int(row.clip_id[1:])])
    stats = branch.stats()
    assert "MapBatches(Enhance)" in stats
    assert "keep_system)->MapBatches(Enhance" not in stats  # never fused into the actors
