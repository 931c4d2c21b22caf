"""Shared fixtures: sandbox servers, a moto S3 endpoint, temp locations.

Every server or child started here is stopped in a finalizer, also when a test fails. The
session ends by checking that nothing the tests started is left: a sandbox server still
running, a child process group of the process adapter, a direct child process, or a server
running on a datadir under the session's directories. Anything left is killed and FAILS the
run, naming what leaked. The session's sandbox directory carries an owner marker: if the
session is killed, the next one's reaper stops its servers and removes it.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("MPLBACKEND", "Agg")

from mysqlops.adapters import builds, process, reaper, sandbox
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.errors import ConfigError
from mysqlops.model import Location

# this session's label, inherited by every child: the markers of the scratch directories it
# (or a child) creates carry it, so another test session on the host is never counted as ours
_SESSION_LABEL = os.environ[reaper.SESSION_ENV] = f"pytest-{os.getpid()}-{time.time_ns()}"
_SESSION_DIRS: list[str] = []
_LEAKS: list[str] = []


def _server_leak(server: sandbox.SandboxServer) -> str:
    return f"sandbox server {server.name!r} (pid {server.pid}, {server.directory}) still running"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--flavor",
        action="append",
        default=None,
        metavar="BUILD",
        help="server build(s) for the tests marked 'flavors' (repeat or comma-separate; default all: "
        + ", ".join(builds.KNOWN_BUILDS)
        + "); other tests run on "
        + builds.DEFAULT_BUILD,
    )


def selected_builds(config: pytest.Config) -> list[str]:
    raw = config.getoption("--flavor") or []
    names = [n.strip() for item in raw for n in item.split(",") if n.strip()] or list(builds.KNOWN_BUILDS)
    for name in names:
        try:
            builds.parse_build_name(name)
        except ConfigError as exc:
            raise pytest.UsageError(f"--flavor: {exc}") from None
    return list(dict.fromkeys(names))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tests marked `flavors` that use the `flavor` fixture (directly or through the sandbox
    # fixtures) run once per selected build; the others keep the default build
    if "flavor" in metafunc.fixturenames and metafunc.definition.get_closest_marker("flavors"):
        metafunc.parametrize("flavor", selected_builds(metafunc.config), indirect=True, scope="session")


@pytest.fixture(scope="session")
def flavor(request: pytest.FixtureRequest) -> str:
    """The server build the sandbox fixtures start: each --flavor build for tests marked
    ``flavors``, else the default build (mariadb-10.11)."""
    return str(getattr(request, "param", builds.DEFAULT_BUILD))


@pytest.fixture(scope="session")
def server_build(flavor: str) -> builds.ServerBuild:
    """The resolved build of ``flavor`` (fetched into the cache when missing: `make builds` first)."""
    return builds.resolve(flavor)


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[str]:
    # short path: unix socket paths are limited to 107 bytes; marked: a killed session's
    # servers are stopped and its directory removed by the next session's reaper
    for line in reaper.reap(["/tmp"], defaults=False, prefect=False).lines():
        if not line.startswith("left alone"):
            print(f"\nmysqlops: leftover of a killed test session: {line}")
    root = private_tempdir("/tmp", "myops-")
    _SESSION_DIRS.append(root)
    yield root
    # the fixtures that start servers stop them: one still running here was leaked by a test
    _LEAKS.extend(_server_leak(s) for s in sandbox.running_servers())
    sandbox.stop_all()
    shutil.rmtree(root, ignore_errors=True)


def _cluster_dir(sandbox_root: str, flavor: str) -> str:
    return os.path.join(sandbox_root, "cluster" if flavor == builds.DEFAULT_BUILD else f"cluster-{flavor}")


@pytest.fixture(scope="session")
def cluster(sandbox_root: str, server_build: builds.ServerBuild) -> Iterator[list[sandbox.SandboxServer]]:
    """A primary and one replica of the test's build (servers only; tests that need replication wire it)."""
    servers = sandbox.start_cluster(
        _cluster_dir(sandbox_root, server_build.name), replicas=1, build=server_build
    )
    yield servers
    sandbox.stop_servers(servers)


@pytest.fixture(scope="session")
def primary(cluster: list[sandbox.SandboxServer]) -> sandbox.SandboxServer:
    return cluster[0]


@pytest.fixture(scope="session")
def replica(cluster: list[sandbox.SandboxServer]) -> sandbox.SandboxServer:
    return cluster[1]


@pytest.fixture
def fresh_server(
    sandbox_root: str, server_build: builds.ServerBuild, request: pytest.FixtureRequest
) -> Iterator[sandbox.SandboxServer]:
    """A server of its own (of the test's build) for a test that changes server state; removed afterwards."""
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**8)
    server = sandbox.start_server(
        sandbox_root, name, server_id=100 + abs(hash(name)) % 10000, build=server_build
    )
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
        storage_options={
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": moto_server},
        },
        offsite=True,
    )


@pytest.fixture
def local_location(tmp_path: os.PathLike[str]) -> Location:
    path = os.path.join(os.fspath(tmp_path), "backups")
    return Location(name="local", url=f"file://{path}")


def _orphaned_servers() -> list[str]:
    """Servers (reparented: no longer our children) on a datadir under this session's
    directories, or under scratch directories this session or its children made (their owner
    marker carries the session's label; another session's never counts)."""
    roots = list(_SESSION_DIRS)
    for name in os.listdir("/tmp"):
        path = os.path.join("/tmp", name)
        if name.startswith(("mysqlops-rt-", "mysqlops-pitr-", "myops-")) and os.path.isdir(path):
            marked = reaper.read_marker(path)
            if marked is not None and marked.session == _SESSION_LABEL:
                roots.append(path)
    found = {p.pid: p for root in roots for p in reaper.servers_on(root)}
    return [f"server pid {p.pid} ({' '.join(p.argv[:3])} ...) still running" for p in found.values()]


def _child_processes() -> list[reaper.Proc]:
    """Live direct children of this process, except Prefect's own ephemeral API server
    (Prefect stops it at exit)."""
    me = os.getpid()
    return [p for p in reaper.processes() if p.ppid == me and reaper.PREFECT_EPHEMERAL_APP not in p.argv]


def leaks() -> list[str]:
    """What the tests started and left running (see the module docstring)."""
    found = list(_LEAKS)
    found += [_server_leak(s) for s in sandbox.running_servers()]
    found += [
        f"child process group {pgid} ({' '.join(argv[:4])}) still running"
        for pgid, argv in process.live_children()
    ]
    found += [f"child process {p.pid} ({' '.join(p.argv[:4])}) still running" for p in _child_processes()]
    found += _orphaned_servers()
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = leaks()
    sandbox.stop_all()
    process.kill_all_children()
    for proc in _child_processes():
        reaper.kill(proc)
    for root in _SESSION_DIRS:
        for proc in reaper.servers_on(root):
            reaper.kill(proc)
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "mysqlops: the tests left processes running (killed now); this run FAILS:\n  " + "\n  ".join(
            leaked
        )
        if reporter is not None:
            reporter.write_line(text, red=True, bold=True)
        else:
            print(text)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
