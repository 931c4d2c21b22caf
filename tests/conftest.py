"""Shared fixtures: sandbox servers, a moto S3 endpoint, temp locations.

Every server or child started here is stopped in a finalizer, also when a test fails; the
session ends by checking that no sandbox server or child process group is left.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("MPLBACKEND", "Agg")

from mysqlops.adapters import process, sandbox
from mysqlops.model import Location


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[str]:
    # short path: unix socket paths are limited to 107 bytes
    root = tempfile.mkdtemp(prefix="myops-", dir="/tmp")
    os.chmod(root, 0o700)
    yield root
    sandbox.stop_all()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(sandbox_root: str) -> Iterator[list[sandbox.SandboxServer]]:
    """A primary and one replica (servers only; tests that need replication wire it)."""
    servers = sandbox.start_cluster(os.path.join(sandbox_root, "cluster"), replicas=1)
    yield servers
    sandbox.stop_servers(servers)


@pytest.fixture(scope="session")
def primary(cluster: list[sandbox.SandboxServer]) -> sandbox.SandboxServer:
    return cluster[0]


@pytest.fixture(scope="session")
def replica(cluster: list[sandbox.SandboxServer]) -> sandbox.SandboxServer:
    return cluster[1]


@pytest.fixture
def fresh_server(sandbox_root: str, request: pytest.FixtureRequest) -> Iterator[sandbox.SandboxServer]:
    """A server of its own for a test that changes server state; removed afterwards."""
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**8)
    server = sandbox.start_server(sandbox_root, name, server_id=100 + abs(hash(name)) % 10000)
    yield server
    sandbox.stop_server(server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3 endpoint over HTTP on a loopback port (moto, as s3fs's own tests use)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: str, request: pytest.FixtureRequest) -> str:
    import boto3

    name = "b" + format(abs(hash(request.node.nodeid)) % 10**10, "010d")
    client = boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_location(moto_server: str, s3_bucket: str) -> Location:
    return Location(
        name="s3",
        url=f"s3://{s3_bucket}/mysql",
        storage_options={"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": moto_server}},
        offsite=True,
    )


@pytest.fixture
def local_location(tmp_path: os.PathLike[str]) -> Location:
    path = os.path.join(os.fspath(tmp_path), "backups")
    return Location(name="local", url=f"file://{path}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftover = sandbox.stop_all() + process.kill_all_children()
    if leftover:
        # make a leak loud: a test left a server or child running
        print(f"\nmysqlops: killed {leftover} leftover server/child process(es) at session end")
