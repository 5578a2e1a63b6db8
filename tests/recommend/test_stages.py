"""The small Ray Data stage functions of recommend."""

from __future__ import annotations

import pandas as pd

from serec.recommend.stages import keep_system, name_output


def test_keep_system_skips_rejected_rows():
    batch = pd.DataFrame({"system": pd.array(["a", None, "b", "a"], dtype="string"),
                          "clip_id": ["c0", "c1", "c2", "c3"]})
    assert keep_system(batch, "a")["clip_id"].tolist() == ["c0", "c3"]
    assert keep_system(batch, "z").empty


def test_name_output_gives_every_branch_one_schema():
    batch = pd.DataFrame({"out__gate": [b"x"], "sec__gate": [0.1], "err__gate": [None],
                          "node__gate": ["n"], "clip_id": ["c0"]})
    assert list(name_output(batch, "gate")) == ["out__output", "enhancer_s", "enhancer_error",
                                                "enhancer_node", "clip_id"]
