"""A chain applies its steps in sequence; steps are kinds, entries or other entries' names."""

from __future__ import annotations

import numpy as np
import pytest

from serec.config import SerecConfig
from serec.enhancers import build_enhancer, parse_enhancer_specs
from serec.enhancers.registry import resolved_entries
from serec.label.stages import Enhance
from serec.recommend.driver import system_entries
from tests.enhancers.signals import speech_like


def _noisy(length: int, seed: int) -> np.ndarray:
    noise = 0.03 * np.random.default_rng(seed).standard_normal(length)
    return (speech_like(length, seed=seed) + noise).astype(np.float32)


def test_chain_is_the_sequential_application_of_its_steps() -> None:
    chain = build_enhancer("c", {"kind": "chain",
                                 "steps": [{"kind": "webrtc", "level": 3}, "nsnet2"]})
    first = build_enhancer("a", {"kind": "webrtc", "level": 3})
    second = build_enhancer("b", {"kind": "nsnet2"})
    for length in (8001, 16000):
        clip = _noisy(length, seed=length)
        expected = second.enhance(first.enhance(clip))
        np.testing.assert_array_equal(chain.enhance(clip), expected)
        assert not np.array_equal(expected, second.enhance(clip))  # order matters
    assert [step.kind for step in chain.steps] == ["webrtc", "nsnet2"]


def test_steps_may_name_other_entries_of_the_section() -> None:
    specs = parse_enhancer_specs({
        "ns_strong": {"kind": "webrtc", "level": 4, "resources": {"num_cpus": 0.5}},
        "cascade": {"kind": "chain", "steps": ["ns_strong", "nsnet2"]},
        "outer": {"kind": "chain", "steps": ["cascade", "passthrough"]},
    })
    steps = specs["cascade"].params["steps"]
    assert steps == [{"kind": "webrtc", "level": 4}, "nsnet2"]  # resources are the chain's
    assert specs["outer"].params["steps"][0] == {"kind": "chain", "steps": steps}


def test_label_and_recommend_actors_build_named_steps_with_their_entry() -> None:
    """The actors get resolved entries: a step naming an entry runs with that entry's params,
    not the defaults of a kind of the same name."""
    section = {"webrtc": {"kind": "webrtc", "level": 4},
               "cascade": {"kind": "chain", "steps": ["webrtc", "passthrough"]}}
    config = SerecConfig(enhancers=section)
    for entry in (resolved_entries(section)["cascade"],
                  system_entries(config, ["cascade"])["cascade"]):
        actor = Enhance("cascade", entry)
        assert [s.params.get("level") for s in actor.enhancer.steps] == [4, None]
        actor.enhancer.close()


@pytest.mark.parametrize("steps, needle", [
    ([], "non-empty"),
    ("wpe", "'steps' must be a list"),
    ([{"level": 2}], "mapping with 'kind'"),
    (["no_such_kind"], "step 0: .*unknown enhancer kind 'no_such_kind'"),
    ([{"kind": "webrtc", "level": 9}], "step 0: .*level must be in 0..4"),
    ([{"kind": "nsnet2", "resources": {"num_cpus": 1}}], "must not set resources"),
])
def test_bad_steps_fail_at_parse_time(steps, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_enhancer_specs({"c": {"kind": "chain", "steps": steps}})


def test_cyclic_step_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="cycle"):
        parse_enhancer_specs({"a": {"kind": "chain", "steps": ["b"]},
                              "b": {"kind": "chain", "steps": ["a"]}})
