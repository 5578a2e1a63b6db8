"""Trials queue for resources; only a request no node type can ever hold is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serec.cluster.capacity import (
    CLUSTER_CONFIG_ENV,
    InfeasibleRequestError,
    check_request_fits,
    cluster_config_path,
    node_type_shapes,
    worker_bundle,
)
from serec.train.config import TrainConfig
from serec.train.stage import check_trials_can_run

CLUSTER = Path(__file__).resolve().parents[2] / "cluster.yaml"
HEAD_ONLY = {"head": {"CPU": 0.0}}


@pytest.fixture
def types() -> dict:
    return node_type_shapes(yaml.safe_load(CLUSTER.read_text()))


def test_node_types_come_from_the_cluster_file(types):
    assert types["gpu_worker"] == {"CPU": 8.0, "GPU": 1.0}
    assert types["head"] == {"CPU": 0.0}


def test_a_gpu_worker_queues_while_gpu_nodes_are_scaled_to_zero(types):
    check_request_fits(worker_bundle(4, 1), "training", live=HEAD_ONLY, node_types=types)


def test_a_request_no_node_type_holds_is_an_error_naming_the_types(types):
    with pytest.raises(InfeasibleRequestError, match=r"\{'CPU': 4.0, 'GPU': 2.0\}.*gpu_worker"):
        check_request_fits(worker_bundle(4, 2), "training", live=HEAD_ONLY, node_types=types)


def test_without_an_autoscaler_only_live_nodes_count():
    live = {"node1": {"CPU": 2.0, "memory": 1e9}}
    check_request_fits(worker_bundle(1.5), "training", live=live, node_types={})
    with pytest.raises(InfeasibleRequestError, match=CLUSTER_CONFIG_ENV):
        check_request_fits(worker_bundle(1, 1), "training", live=live, node_types={})


def test_cluster_config_named_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CLUSTER_CONFIG_ENV, str(CLUSTER))
    assert cluster_config_path() == CLUSTER
    monkeypatch.setenv(CLUSTER_CONFIG_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        cluster_config_path()


def test_train_check_uses_the_connected_cluster(ray_session, monkeypatch):
    monkeypatch.setenv(CLUSTER_CONFIG_ENV, str(CLUSTER))
    check_trials_can_run(TrainConfig(use_gpu=True, cpus_per_worker=4), "training gatekeeper")
    with pytest.raises(InfeasibleRequestError, match="training gatekeeper"):
        check_trials_can_run(TrainConfig(cpus_per_worker=16), "training gatekeeper")


def test_max_concurrent_trials_is_unbounded_by_default_and_checked():
    assert TrainConfig().max_concurrent_trials is None
    assert TrainConfig.from_dict({"max_concurrent_trials": 2}).max_concurrent_trials == 2
    with pytest.raises(ValueError, match="max_concurrent_trials"):
        TrainConfig.from_dict({"max_concurrent_trials": 0})
