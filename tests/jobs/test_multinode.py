"""A real two-node Ray cluster on loopback: ``ray job submit`` of ``jobs.label``, and of the
whole ``jobs.pipeline`` with its run directory on an S3 server on loopback (moto).

The head and a second node run as separate ``ray start`` processes with their own temp dirs
and ports. Custom resources per node make each kind of work spread over both nodes: one
enhancer pool per node, one DNSMOS actor per node, and Train workers too large for two to
share a node. Where work ran is read back from the tables (``scores/`` node_id, the fold
table's node_id).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from serec.data.importer import import_recordings
from serec.runs import LABELS, MODELS, REJECTS, SCORES, RunDir
from tests.label.test_pipeline import make_clips
from tests.test_s3_chain import KINDS, SPEAKERS, make_speakers

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
GOOD = 4


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def node_ports(prefix: str) -> list[str]:
    names = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
             "min-worker-port")
    ports = free_ports(len(names))
    args = [f"--{name}={port}" for name, port in zip(names, ports, strict=True)]
    low = 20000 + (hash(prefix) % 200) * 100
    return [a for a in args if not a.startswith("--min-worker-port")] + [
        f"--min-worker-port={low}", f"--max-worker-port={low + 99}"]


def ray_cli(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run([RAY, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``ray start --block`` in its own process group, so that only this node is stopped."""
    return subprocess.Popen([RAY, "start", "--block", *args], env=env, start_new_session=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop_node(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_for_nodes(gcs: str, count: int, env: dict[str, str], timeout: float = 420) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run([RAY, "status", f"--address={gcs}"], env=env,
                              capture_output=True, text=True, timeout=60)
        active = done.stdout.split("Pending:")[0]
        if done.returncode == 0 and active.count("node_") >= count:
            return
        time.sleep(2)
    raise AssertionError(f"{count} Ray nodes did not come up:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def loopback_cluster(tmp_path: Path, head_resources: dict[str, float],
                     worker_resources: dict[str, float],
                     extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, dict]]:
    """A head and a worker node (2 CPUs each) on 127.0.0.1; yields the dashboard address for
    ``ray job submit`` and the environment to call the ``ray`` CLI with."""
    if not Path(RAY).exists():
        pytest.skip(f"ray CLI not found next to {sys.executable}")
    gcs_port, dashboard_port, client_port = free_ports(3)
    # Short temp dirs: Ray's unix socket paths must stay under 108 characters.
    temp_a, temp_b = Path(f"/tmp/sr_a_{os.getpid()}"), Path(f"/tmp/sr_b_{os.getpid()}")
    # Token auth off for this loopback-only cluster: the shared ~/.ray/auth_token can be
    # rewritten by any other Ray started on the box while the test runs.
    # The venv's bin first: Ray's workers and job drivers must find this interpreter.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled", **(extra_env or {}),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("RAY_ADDRESS", None)
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(start_node([
            "--head", f"--port={gcs_port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
            f"--resources={json.dumps(head_resources)}", f"--temp-dir={temp_a}",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}", f"--ray-client-server-port={client_port}",
            "--disable-usage-stats", *node_ports("a")], env, tmp_path / "head.log"))
        wait_for_nodes(f"127.0.0.1:{gcs_port}", 1, env)
        worker_args = [
            f"--address=127.0.0.1:{gcs_port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
            f"--resources={json.dumps(worker_resources)}", f"--temp-dir={temp_b}",
            "--disable-usage-stats"]
        # Ray gives a raylet 30 s (hard-coded) to register; on a busy 2-core box that can
        # pass, and `ray start` then exits: start it again.
        for attempt in range(3):
            nodes.append(start_node([*worker_args, *node_ports(f"b{attempt}")], env,
                                    tmp_path / f"worker{attempt}.log"))
            time.sleep(45)
            if nodes[-1].poll() is None:
                break
        wait_for_nodes(f"127.0.0.1:{gcs_port}", 2, env)
        yield f"http://127.0.0.1:{dashboard_port}", env
    finally:
        for proc in reversed(nodes):
            stop_node(proc)
        for d in (temp_a, temp_b):
            shutil.rmtree(d, ignore_errors=True)


def submit(dashboard: str, env: dict[str, str], job_env: dict[str, str], module: str,
           *args: str, timeout: float) -> str:
    """``ray job submit`` of ``python -m <module> <args>`` with this repo as working dir."""
    out = ray_cli("job", "submit", f"--address={dashboard}", f"--working-dir={REPO}",
                  "--runtime-env-json", json.dumps({"env_vars": {"PYTHONPATH": ".", **job_env}}),
                  "--", sys.executable, "-m", module, *args, env=env, timeout=timeout)
    assert "succeeded" in out.lower(), out
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_label_job_spreads_over_two_nodes(tmp_path):
    make_clips(tmp_path / "clips", good=GOOD)
    run = RunDir.of(tmp_path / "run")
    import_recordings(run, [str(tmp_path / "clips")])
    config = {
        "enhancers": {
            "rnnoise": {"kind": "rnnoise", "resources": {
                "num_cpus": 0.25, "batch_size": 2, "custom_resources": {"node_a": 1}}},
            "spectral_gate": {"kind": "spectral_gate", "resources": {
                "num_cpus": 0.25, "batch_size": 2, "custom_resources": {"node_b": 1}}},
        },
        "label": {"rows_per_part": 4, "decode": {"num_cpus": 0.25, "batch_size": 2}},
        "dnsmos": {"num_cpus": 0.5, "batch_size": 4},
    }
    config_path = tmp_path / "cluster_job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with loopback_cluster(tmp_path, {"node_a": 1}, {"node_b": 1}) as (dashboard, env):
        submit(dashboard, env, {}, "jobs.label", "--run", run.root, "--config",
               str(config_path), timeout=780)

    assert len(run.read_pandas(LABELS)) == GOOD
    assert len(run.read_pandas(REJECTS)) == 5
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    nodes = scores.groupby("system")["node_id"].agg(set)
    assert len(nodes["rnnoise"]) == 1 and len(nodes["spectral_gate"]) == 1
    assert nodes["rnnoise"] != nodes["spectral_gate"], "both pools ran on one node"


PIPELINE_FOLDS = 2


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_pipeline_job_on_s3_spreads_every_kind_of_work(tmp_path, s3_server, s3_bucket):
    """``jobs.pipeline`` (label, features, split, train gatekeeper and expert, evaluate) as a
    Ray job on two nodes, with ``--run s3://...`` and the endpoint in the AWS variables."""
    clips = make_speakers(tmp_path / "clips")
    run = RunDir.of(f"s3://{s3_bucket}/cluster/run")
    import_recordings(run, [str(clips)])
    pool = {"num_cpus": 0.25, "batch_size": 2, "min_actors": 1, "max_actors": 1}
    config = {
        "enhancers": {
            "rnnoise": {"kind": "rnnoise", "resources": {
                **pool, "custom_resources": {"node_a": 1}}},
            "gate": {"kind": "spectral_gate", "stationary": True, "resources": {
                **pool, "custom_resources": {"node_b": 1}}},
        },
        "label": {"candidates": ["rnnoise", "gate"], "rows_per_part": 8,
                  "decode": {"num_cpus": 0.25, "batch_size": 2},
                  # both DNSMOS actors up before scoring: on a loaded machine one actor took
                  # every batch of this short job before the other was up (seen in CI)
                  "wait_for_actors_s": 600},
        # one DNSMOS slot per node and two actors: one actor on each node
        "dnsmos": {"num_cpus": 0.25, "batch_size": 2, "min_actors": 2, "max_actors": 2,
                   "custom_resources": {"dnsmos_slot": 1}},
        "features": {"num_cpus": 0.25, "batch_size": 6},
        # a Train worker takes 1.5 of a node's 2 CPUs: concurrent folds land on both nodes
        "train": {"lr": 3.0e-4, "batch_size": 4, "epochs": 2, "patience": 2,
                  "max_length": 128, "head_hidden": 16, "num_workers": 1,
                  "cpus_per_worker": 1.5, "max_concurrent_trials": PIPELINE_FOLDS},
    }
    config_path = tmp_path / "pipeline_job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with loopback_cluster(tmp_path, {"node_a": 1, "dnsmos_slot": 1},
                          {"node_b": 1, "dnsmos_slot": 1}, s3_server.env) as (dashboard, env):
        submit(dashboard, env, s3_server.env, "jobs.pipeline", "--run", run.root, "--config",
               str(config_path), "--folds", str(PIPELINE_FOLDS), timeout=2000)

    labels = run.read_pandas(LABELS)
    rejected = len(run.read_pandas(REJECTS)) if run.has_table(REJECTS) else 0
    assert len(labels) + rejected == SPEAKERS * len(KINDS)
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    nodes = scores.groupby("system")["node_id"].agg(set)
    # enhanced rows carry their enhancer actor's node, noisy rows the DNSMOS actor's node
    assert len(nodes["rnnoise"]) == 1 and len(nodes["gate"]) == 1
    assert nodes["rnnoise"] != nodes["gate"], "both enhancer pools ran on one node"
    both = nodes["rnnoise"] | nodes["gate"]
    # every pair records the node of the DNSMOS actor that scored it (a noisy pair's node_id
    # too); the noisy pairs alone are few enough to all reach one actor now and then
    dnsmos_nodes = set(scores["dnsmos_node_id"])
    assert dnsmos_nodes == both, f"DNSMOS ran on {dnsmos_nodes}, not on {both}"
    assert nodes["noisy"] <= both
    for stage in ("gatekeeper", "expert"):
        folds = run.read_pandas(f"{MODELS}/{stage}/folds.parquet", dedup_key="fold")
        assert sorted(folds["fold"]) == list(range(PIPELINE_FOLDS))
        assert set(folds["node_id"]) == both, f"{stage} folds trained on {set(folds['node_id'])}"
    assert run.exists("report", "report.md") and run.exists("report", "metrics.json")
