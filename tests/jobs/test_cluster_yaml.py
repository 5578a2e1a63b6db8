"""``cluster.yaml`` passes Ray's own cluster-launcher validation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster.yaml"


def validate(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_is_valid():
    config = yaml.safe_load(CLUSTER.read_text())
    prepared = validate(config)
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] in types
    head = types[prepared["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head node should not run compute"
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert any("g5" in t["node_config"]["InstanceType"] for t in workers)
    assert any("serec" in cmd for cmd in prepared["setup_commands"])


def test_validation_rejects_a_bad_field():
    config = yaml.safe_load(CLUSTER.read_text())
    config["max_workers"] = "eight"
    with pytest.raises(Exception, match="eight|not of type"):
        validate(config)
