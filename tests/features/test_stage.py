"""``serec features``: one row per readable clip, equal to the direct computation, resumable."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from serec.config import load_config
from serec.data.importer import import_recordings
from serec.features.cekl import CEKL_COLUMNS, cekl_features
from serec.features.descriptors import DESCRIPTOR_COLUMNS, routing_descriptors
from serec.features.stage import run_features
from serec.label.stages import decode_clip
from serec.runs import FEATURES, RunDir


@pytest.mark.timeout(300)
def test_features_stage(tmp_path, rng, ray_session):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(5):
        sf.write(clips / f"c{i}.wav", rng.standard_normal(16000 + 3000 * i) * 0.1 * (i + 1),
                 16000)
    (clips / "bad.wav").write_text("no audio")
    run = RunDir.of(tmp_path / "run")
    import_recordings(run, [str(clips)])
    table = run_features(run, load_config())
    assert len(table) == 5 and table["clip_id"].is_unique
    assert table.attrs["skipped"] == 1
    assert list(table.columns[1:15]) == [*CEKL_COLUMNS, *DESCRIPTOR_COLUMNS]
    manifest = run.read_pandas("manifest.parquet").set_index("clip_id")
    for row in table.itertuples(index=False):
        audio = decode_clip(manifest.loc[row.clip_id, "path"])
        expected = cekl_features(audio, 16000)
        assert np.allclose([getattr(row, c) for c in CEKL_COLUMNS], expected, rtol=1e-9)
        assert np.allclose([getattr(row, c) for c in DESCRIPTOR_COLUMNS],
                           routing_descriptors(audio, 16000), rtol=1e-9, equal_nan=True)
    parts = run.list_parts(FEATURES)
    again = run_features(run, load_config())
    assert len(again) == 5 and run.list_parts(FEATURES) == parts
