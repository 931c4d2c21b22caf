"""Real sandbox servers: start, log in, fail clearly, stop without leftovers."""

from __future__ import annotations

import os
import socket

import pytest

from mysqlops.adapters import sandbox
from mysqlops.adapters.mysql import connect, server_info, session
from mysqlops.adapters.process import run
from mysqlops.commands import mysql_argv
from mysqlops.errors import ConnectionProblem, SandboxError
from mysqlops.model import ServerSpec

pytestmark = pytest.mark.integration


def test_cluster_servers_are_distinct_and_replication_ready(cluster: list[sandbox.SandboxServer]) -> None:
    infos = [server_info(s.spec()) for s in cluster]
    assert len({i.server_id for i in infos}) == len(infos)
    assert all(i.log_bin for i in infos)
    with session(cluster[0].spec()) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@binlog_format AS f, @@gtid_strict_mode AS g, @@log_slave_updates AS l")
        row = cur.fetchone()
    assert row == {"f": "ROW", "g": 1, "l": 1}


def test_files_are_private(primary: sandbox.SandboxServer) -> None:
    assert os.stat(primary.directory).st_mode & 0o777 == 0o700
    assert os.stat(primary.option_file).st_mode & 0o777 == 0o600
    assert not os.path.exists(os.path.join(primary.directory, "init.sql"))  # password file removed


def test_real_client_logs_in_through_option_file(primary: sandbox.SandboxServer) -> None:
    r = run(mysql_argv("mariadb", extra=["-N", "-e", "SELECT CURRENT_USER()"]),
            credentials=open(primary.option_file).read())
    assert r.stdout.decode().strip() == "root@127.0.0.1"


def test_wrong_password_names_server_not_secret(primary: sandbox.SandboxServer) -> None:
    bad = primary.spec(user="root", password="wrong-pass-canary")
    with pytest.raises(ConnectionProblem) as info:
        connect(bad)
    text = str(info.value)
    assert f"127.0.0.1:{primary.port}" in text and "wrong user or password" in text
    assert "wrong-pass-canary" not in text and primary.root_password not in text


def test_unreachable_host_is_clear() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionProblem) as info:
        connect(ServerSpec(name="gone", port=port, password="x"), connect_timeout=2)
    assert f"127.0.0.1:{port}" in str(info.value) and "is the server running" in str(info.value)


def test_port_in_use_picks_another(sandbox_root: str) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        with pytest.raises(SandboxError) as info:
            sandbox.start_server(sandbox_root, "taken", server_id=77, port=taken, timeout=20)
        assert "error log tail" in str(info.value)
        assert not os.path.exists(os.path.join(sandbox_root, "taken"))  # datadir cleaned


def test_bad_option_fails_with_log_tail_and_cleans_up(sandbox_root: str) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.start_server(sandbox_root, "broken", server_id=78, extra_options=["--no-such-option=1"])
    assert "no-such-option" in str(info.value)
    assert not os.path.exists(os.path.join(sandbox_root, "broken"))


def test_stop_leaves_no_process(sandbox_root: str) -> None:
    server = sandbox.start_server(sandbox_root, "short", server_id=79, tuned=True)
    assert server.alive()
    sandbox.stop_server(server)
    assert not server.alive() and not os.path.exists(server.directory)


def test_cli_up_status_down(tmp_path: os.PathLike[str], capsys: pytest.CaptureFixture[str]) -> None:
    from mysqlops.__main__ import main

    d = os.path.join("/tmp", f"cli-{os.getpid()}")
    try:
        assert main(["sandbox", "up", "--replicas", "1", "--dir", d]) == 0
        out = capsys.readouterr().out
        assert "primary" in out and "replica1" in out and "--defaults-extra-file=" in out
        servers = sandbox.load_servers(d)
        assert len(servers) == 2 and all(s.alive() for s in servers)
        assert main(["sandbox", "status", "--dir", d]) == 0
        assert "running" in capsys.readouterr().out
    finally:
        assert main(["sandbox", "down", "--dir", d]) == 0
    assert all(not s.alive() for s in servers)
    assert sandbox.load_servers(d) == []
