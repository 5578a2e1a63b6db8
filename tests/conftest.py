"""Shared fixtures: one Ray session for the whole test run, tiny seeded audio, the corpus."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared real-speech corpus beside the repo; skips when absent."""
    if not (CORPUS / "speech").is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray session (2 CPUs) shared by every test that needs Ray."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Workers inherit this, so test-only plugins (``tests.label.faulty``) import there too.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# -- an S3-compatible server on loopback (moto) ----------------------------------------------
S3_ACCESS_KEY = "serec-test"
S3_SECRET_KEY = "serec-test-secret"
S3_REGION = "us-east-1"


class S3Server:
    """A moto S3 server on 127.0.0.1; ``env`` holds the standard AWS variables that point
    boto3, pyarrow and Ray's storage at it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY, "AWS_DEFAULT_REGION": S3_REGION,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=S3_REGION,
                            aws_access_key_id=S3_ACCESS_KEY,
                            aws_secret_access_key=S3_SECRET_KEY)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (folder markers included)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                        Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    """``moto_server`` on a free loopback port, in its own process group (killed at the end)."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        pytest.skip(f"moto_server not found next to {sys.executable} (pip install moto[server])")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {endpoint}") from None
                time.sleep(0.3)
        yield S3Server(endpoint)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, request) -> str:
    """A fresh bucket on the loopback S3 server, with the AWS variables set in this process;
    returns the bucket name."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    name = "serec-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    return s3_server.create_bucket(name[:63].rstrip("-"))
