"""One resource type for every Ray stage: validation and the Ray keywords it produces."""

from __future__ import annotations

import pytest
import ray

from serec.config import ConfigError, load_config
from serec.resources import Resources


def test_remote_args_carry_only_what_is_asked_for() -> None:
    assert Resources().remote_args() == {"num_cpus": 0.5}
    resources = Resources.from_mapping(
        {"num_cpus": 1, "num_gpus": 0.25, "memory_gb": 1.5, "custom_resources": {"a10g": 1},
         "runtime_env": {"pip": ["x"]}}, "enhancer 'e'")
    assert resources.remote_args() == {"num_cpus": 1, "num_gpus": 0.25, "resources": {"a10g": 1},
                                       "memory": int(1.5 * 2**30),
                                       "runtime_env": {"pip": ["x"]}}


def test_actor_pool_args_size_the_pool() -> None:
    args = Resources(batch_size=3, min_actors=2, max_actors=5).actor_pool_args()
    assert isinstance(args["compute"], ray.data.ActorPoolStrategy)
    assert (args["compute"].min_size, args["compute"].max_size) == (2, 5)
    assert (args["batch_size"], args["batch_format"], args["num_cpus"]) == (3, "pandas", 0.5)


def test_task_args_bound_the_tasks_at_once() -> None:
    assert Resources(num_cpus=0.25).task_args() == {"num_cpus": 0.25}
    args = Resources(num_cpus=0.25, max_tasks=2).task_args()
    assert isinstance(args["compute"], ray.data.TaskPoolStrategy)
    assert (args["compute"].size, args["num_cpus"]) == (2, 0.25)
    assert load_config("local.yaml").label.decode.max_tasks == 1


@pytest.mark.parametrize(("mapping", "needle"), [
    ({"num_gpus": -1}, "'resources.num_gpus' must be >= 0"),
    ({"num_cpus": True}, "resources.num_cpus"),
    ({"memory_gb": -2}, "resources.memory_gb"),
    ({"batch_size": 2.5}, "'resources.batch_size' must be an integer"),
    ({"batch_size": 0}, "'resources.batch_size' must be >= 1"),
    ({"max_tasks": 0}, "'resources.max_tasks' must be >= 1"),
    ({"min_actors": 3, "max_actors": 2}, "'resources.min_actors' (3) must not exceed"),
    ({"custom_resources": {"a10g": "one"}}, "resources.custom_resources"),
    ({"runtime_env": ["pip"]}, "resources.runtime_env"),
    ({"gpus": 1}, "unknown config key 'resources.gpus'; did you mean 'num_gpus'"),
])
def test_bad_values_name_the_key(mapping: dict, needle: str) -> None:
    with pytest.raises(ValueError, match="^enhancer 'e': ") as info:
        Resources.from_mapping(mapping, "enhancer 'e'")
    assert needle in str(info.value)


@pytest.mark.parametrize(("section", "value", "needle"), [
    ("dnsmos", {"num_gpus": -0.5}, "dnsmos.num_gpus"),
    ("features", {"min_actors": 4, "max_actors": 1}, "features.min_actors"),
    ("label", {"decode": {"batch_size": 0}}, "label.decode.batch_size"),
])
def test_config_sections_are_checked_at_load(section: str, value: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config("local.yaml", overrides={section: value})
