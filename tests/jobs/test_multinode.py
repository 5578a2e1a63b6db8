"""A real two-node Ray cluster on loopback: ``ray job submit`` of ``jobs.label``.

The head and a second node run as separate ``ray start`` processes with their own temp dirs
and ports. Each carries a custom resource that one enhancer's actor pool asks for, so the work
must spread over both nodes; the node id of every enhancer actor is recorded in ``scores/``.
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
from pathlib import Path

import pytest
import yaml

from serec.data.importer import import_recordings
from serec.runs import LABELS, REJECTS, SCORES, RunDir
from tests.label.test_pipeline import make_clips

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


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_label_job_spreads_over_two_nodes(tmp_path):
    if not Path(RAY).exists():
        pytest.skip(f"ray CLI not found next to {sys.executable}")
    make_clips(tmp_path / "clips", good=GOOD)
    run = RunDir.of(tmp_path / "run")
    import_recordings(run, [str(tmp_path / "clips")])
    config = {
        "enhancers": {
            "passthrough": {"kind": "passthrough", "resources": {
                "num_cpus": 0.25, "batch_size": 2, "custom_resources": {"node_a": 1}}},
            "spectral_gate": {"kind": "spectral_gate", "resources": {
                "num_cpus": 0.25, "batch_size": 2, "custom_resources": {"node_b": 1}}},
        },
        "label": {"rows_per_part": 4, "decode": {"num_cpus": 0.25, "batch_size": 2}},
        "dnsmos": {"num_cpus": 0.5, "batch_size": 4},
    }
    config_path = tmp_path / "cluster_job.yaml"
    config_path.write_text(yaml.safe_dump(config))
    gcs_port, dashboard_port, client_port = free_ports(3)
    # Short temp dirs: Ray's unix socket paths must stay under 108 characters.
    temp_a, temp_b = Path(f"/tmp/sr_a_{os.getpid()}"), Path(f"/tmp/sr_b_{os.getpid()}")
    # Token auth off for this loopback-only cluster: the shared ~/.ray/auth_token can be
    # rewritten by any other Ray started on the box while the test runs.
    # The venv's bin first: Ray's workers and job drivers must find this interpreter.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "disabled",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("RAY_ADDRESS", None)
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(start_node([
            "--head", f"--port={gcs_port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
            '--resources={"node_a": 1}', f"--temp-dir={temp_a}", "--include-dashboard=true",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={client_port}", "--disable-usage-stats",
            *node_ports("a")], env, tmp_path / "head.log"))
        wait_for_nodes(f"127.0.0.1:{gcs_port}", 1, env)
        worker_args = [
            f"--address=127.0.0.1:{gcs_port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
            '--resources={"node_b": 1}', f"--temp-dir={temp_b}", "--disable-usage-stats"]
        # Ray gives a raylet 30 s (hard-coded) to register; on a busy 2-core box that can
        # pass, and `ray start` then exits: start it again.
        for attempt in range(3):
            nodes.append(start_node([*worker_args, *node_ports(f"b{attempt}")], env,
                                    tmp_path / f"worker{attempt}.log"))
            time.sleep(45)
            if nodes[-1].poll() is None:
                break
        wait_for_nodes(f"127.0.0.1:{gcs_port}", 2, env)
        out = ray_cli("job", "submit", f"--address=http://127.0.0.1:{dashboard_port}",
                      f"--working-dir={REPO}",
                      "--runtime-env-json", json.dumps({"env_vars": {"PYTHONPATH": "."}}),
                      "--", sys.executable, "-m", "jobs.label", "--run", run.root,
                      "--config", str(config_path), env=env, timeout=780)
        assert "succeeded" in out.lower(), out
    finally:
        for proc in reversed(nodes):
            stop_node(proc)
        for d in (temp_a, temp_b):
            shutil.rmtree(d, ignore_errors=True)

    assert len(run.read_pandas(LABELS)) == GOOD
    assert len(run.read_pandas(REJECTS)) == 5
    scores = run.read_pandas(SCORES, dedup_keys=["clip_id", "system"])
    nodes = scores.groupby("system")["node_id"].agg(set)
    assert len(nodes["passthrough"]) == 1 and len(nodes["spectral_gate"]) == 1
    assert nodes["passthrough"] != nodes["spectral_gate"], "both pools ran on one node"
