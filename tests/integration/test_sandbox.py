"""Real sandbox servers: start, log in, fail clearly, stop without leftovers."""

from __future__ import annotations

import os
import shlex
import socket

import pytest

from mysqlops.adapters import builds, sandbox
from mysqlops.adapters.mysql import connect, server_info, session
from mysqlops.adapters.process import run
from mysqlops.errors import ConnectionProblem, SandboxError
from mysqlops.model import ServerSpec, ServerVersion
from mysqlops.tools.client import client_option_file, dump_argv, mysql_argv

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
    r = run(
        mysql_argv("mariadb", extra=["-N", "-e", "SELECT CURRENT_USER()"]),
        credentials=open(primary.option_file).read(),
    )
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


def _wait_for(predicate: object, timeout: float = 30) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.flavors
def test_sandbox_flavors(
    flavor: str, server_build: builds.ServerBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sandbox up --flavor B` on every build: the version is the build's, the printed connect
    line works, the build's own dump client dumps a table, GTID replication carries a row."""
    from mysqlops.__main__ import main

    d = os.path.join("/tmp", f"fl-{os.getpid()}-{flavor}")
    servers: list[sandbox.SandboxServer] = []
    try:
        assert main(["sandbox", "up", "--flavor", flavor, "--replicas", "1", "--dir", d]) == 0
        up = capsys.readouterr().out
        servers = sandbox.load_servers(d)
        assert [s.name for s in servers] == ["primary", "replica1"] and all(s.alive() for s in servers)
        primary, replica = servers
        assert all(s.build == flavor and s.version == server_build.version_text for s in servers)
        assert main(["sandbox", "status", "--dir", d]) == 0
        status = capsys.readouterr().out
        for text in (up, status):
            assert f"{flavor} " in text and f"{server_build.flavor.value} {server_build.version_text}" in text
        # the connect line is the build's own client by absolute path, loader included
        line = next(ln for ln in status.splitlines() if "connect:" in ln and "primary/" in ln)
        argv = shlex.split(line.split("connect:", 1)[1])
        assert argv[: len(server_build.client_argv("client"))] == list(server_build.client_argv("client"))
        said = run([*argv, "-N", "-e", "SELECT VERSION(), @@version_comment"]).stdout.decode()
        version, comment = said.strip().split("\t", 1)
        parsed = ServerVersion.parse(version, comment)
        assert parsed.flavor is server_build.flavor and parsed.series == server_build.series
        assert version.startswith(server_build.version_text)
        with session(primary.spec()) as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE flv")
            cur.execute("CREATE TABLE flv.t (id INT PRIMARY KEY, note VARCHAR(20)) DEFAULT CHARSET=utf8mb4")
            cur.execute("INSERT INTO flv.t VALUES (1, 'gr\u00fc\u00df \U0001f600'), (2, 'two')")
        # the project's own argv builder with the build's dump client (loader prefix included)
        dump = run(
            dump_argv(server_build.client_argv("dump"), "flv"), credentials=client_option_file(primary.spec())
        ).stdout.decode()
        assert ("-- MariaDB dump" if server_build.flavor.value == "mariadb" else "-- MySQL dump") in dump
        assert "CREATE TABLE `t`" in dump and "INSERT INTO `t` VALUES" in dump and "-- Dump completed" in dump
        assert "(2,'two')" in dump

        def replicated() -> bool:
            with session(replica.spec()) as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'flv'")
                if cur.fetchone()["n"] == 0:
                    return False
                cur.execute("SELECT GROUP_CONCAT(note ORDER BY id) AS notes FROM flv.t")
                return cur.fetchone()["notes"] == "gr\u00fc\u00df \U0001f600,two"

        assert _wait_for(replicated), "the row did not reach the replica"
        with session(replica.spec()) as conn, conn.cursor() as cur:
            cur.execute("SHOW REPLICA STATUS")
            status_row = cur.fetchone()
        if server_build.flavor.value == "mysql":
            assert status_row["Replica_IO_Running"] == "Yes" and status_row["Auto_Position"] == 1
        else:
            assert status_row["Slave_IO_Running"] == "Yes" and status_row["Using_Gtid"] == "Slave_Pos"
    finally:
        assert main(["sandbox", "down", "--dir", d]) == 0
    assert servers and all(not s.alive() for s in servers)
    assert sandbox.load_servers(d) == []
    os.rmdir(d)  # empty: `down` removed every server's directory


@pytest.mark.flavors
def test_scratch_server_starts_on_every_flavor(
    sandbox_root: str, flavor: str, server_build: builds.ServerBuild
) -> None:
    """The tuned scratch options (restore tests) are valid on every build; a server that cannot
    start raises SandboxError with its error log tail and leaves nothing behind."""
    server = sandbox.start_server(sandbox_root, f"scr-{flavor}", server_id=81, tuned=True, build=server_build)
    try:
        with session(server.spec()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT @@innodb_flush_log_at_trx_commit AS f, @@log_bin AS b, VERSION() AS v, "
                "@@plugin_dir AS p, @@lc_messages_dir AS m, @@basedir AS d, @@event_scheduler AS e"
            )
            row = cur.fetchone()
        assert row["f"] == 0 and row["b"] == 0 and row["v"].startswith(server_build.version_text)
        assert row["e"] == "OFF"  # restored events never run on a scratch server while it is verified
        if server_build.source != "system":
            # the build's own plugins and messages, never the system's (another version's) /usr
            for key in ("p", "m", "d"):
                assert row[key].startswith(server_build.root), (key, row[key])
        if server_build.flavor.value == "mysql":
            # the CLONE plugin (physical backups of MySQL) loads from the build's plugin dir
            with session(server.spec()) as conn, conn.cursor() as cur:
                cur.execute("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
                cur.execute(
                    "SELECT PLUGIN_STATUS AS s FROM information_schema.plugins WHERE PLUGIN_NAME = 'clone'"
                )
                assert cur.fetchone()["s"] == "ACTIVE"
        else:
            # mariabackup of the same version (physical backups of this build)
            said = run([*server_build.client_argv("backup"), "--version"])
            assert server_build.version_text in said.stdout.decode() + said.stderr
    finally:
        sandbox.stop_server(server)
    with pytest.raises(SandboxError) as info:
        sandbox.start_server(
            sandbox_root,
            f"bad-{flavor}",
            server_id=82,
            tuned=True,
            build=server_build,
            extra_options=["--no-such-option=1"],
        )
    assert "no-such-option" in str(info.value) and "error log tail" in str(info.value)
    assert not os.path.exists(os.path.join(sandbox_root, f"bad-{flavor}"))
