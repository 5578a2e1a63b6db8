"""``cluster.yaml`` passes Ray's own cluster-launcher validation and can start as written."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster.yaml"
UPSTREAMS = ("sp-uhh/sgmse", "sp-uhh/storm", "neillu23/CDiffuSE")


def validate(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def prepared() -> dict:
    return validate(yaml.safe_load(CLUSTER.read_text()))


def setup_text(prepared: dict) -> str:
    return "\n".join(prepared["setup_commands"])


def test_cluster_yaml_is_valid(prepared):
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] in types
    head = types[prepared["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head node should not run compute"
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert any("g5" in t["node_config"]["InstanceType"] for t in workers)
    assert all(t["resources"].get("GPU", 0) >= 1 for t in workers), "declare worker GPUs"
    assert any("serec" in cmd for cmd in prepared["setup_commands"])


def test_image_is_a_published_ray_gpu_image_of_the_tested_ray_and_python(prepared):
    image = prepared["docker"]["image"]
    match = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-(gpu|cu\d+)", image)
    assert match, f"{image}: expected rayproject/ray:<x.y.z>-py<XY>-gpu (ray-ml ends at 2.49)"
    assert match.group(1) == ray.__version__, "image Ray differs from the Ray serec is tested with"
    assert (int(match.group(2)), int(match.group(3))) >= (3, 10)


def test_setup_keeps_the_image_torch_and_ray_and_pins_upstream_commits(prepared):
    text = setup_text(prepared)
    installs = [c for c in prepared["setup_commands"] if "pip install" in c and "serec" in c]
    assert installs and all("-c " in c for c in installs), "serec installs without constraints"
    assert all("[gpu" in c for c in installs), "GPU nodes need the gpu extra (onnxruntime-gpu)"
    assert "torch==2.13.0" not in text
    constraints = (REPO / "constraints" / "gpu.txt").read_text()
    assert re.search(r"^torch==\d", constraints, re.M)
    for repo in UPSTREAMS:
        assert f"github.com/{repo}" in text
        clone = next(c for c in prepared["setup_commands"] if f"github.com/{repo}" in c)
        assert re.search(r"checkout --detach\s+[0-9a-f]{40}\b", clone), f"{repo} not pinned"
        assert "--depth 1" not in clone


def test_pinned_commits_are_the_ones_the_readme_says_were_tested(prepared):
    readme = (REPO / "README.md").read_text()
    text = setup_text(prepared)
    for short in re.findall(r"sp-uhh/\w+ ([0-9a-f]{7})", readme):
        assert re.search(rf"\b{short}[0-9a-f]{{33}}\b", text), short


def test_node_setup_runs_once_per_node(prepared):
    commands = prepared["setup_commands"]
    assert any("jobs.node_setup" in c and "--sgmse-src" in c for c in commands)
    assert any("envs/storm/bin/python -m jobs.node_setup" in c for c in commands)


def test_validation_rejects_a_bad_field():
    config = yaml.safe_load(CLUSTER.read_text())
    config["max_workers"] = "eight"
    with pytest.raises(Exception, match="eight|not of type"):
        validate(config)
