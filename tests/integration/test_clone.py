"""Physical backups of MySQL through the CLONE plugin, against a real MySQL 9.7 sandbox server
(the cached Debian build), the account ``users`` creates, a local location and moto S3:
pre-flight refusals (plugin, BACKUP_ADMIN), backup → restore-test → restore into a fresh
directory → a server of the same build starts on it with equal data; a flipped byte fails."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mysqlops import backup as backup
from mysqlops import catalog, layout
from mysqlops import restore as restore
from mysqlops.adapters import builds, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.adapters.storage import Store
from mysqlops.backup import BackupResult
from mysqlops.errors import PreflightFailed
from mysqlops.manifest import TableStat
from mysqlops.model import BackupMethod, Location, ServerSpec
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec
from mysqlops.tablesum import table_checksums
from mysqlops.users import Account, create_users, server_notes

pytestmark = pytest.mark.integration

BUILD = "mysql-9.7"
Sums = dict[str, dict[str, TableStat]]


@dataclass
class Env:
    server: sandbox.SandboxServer
    account: ServerSpec
    local: Location
    s3: Location
    result: BackupResult
    sums: Sums
    gtid_executed: str
    staging: str
    logs: list[str]


def _left(staging: str) -> list[str]:
    """What runs left in the staging directory (its own owner marker aside)."""
    return [n for n in os.listdir(staging) if n != reaper.MARKER]


def _sql(spec: ServerSpec, *statements: str) -> None:
    with db.session(spec) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def _sums(spec: ServerSpec) -> Sums:
    with db.session(spec) as conn:
        return {d: table_checksums(conn, d) for d in db.user_databases(conn)}


def _gtid(spec: ServerSpec) -> str:
    with db.session(spec) as conn:
        return " ".join(str(db.scalar(conn, "SELECT @@GLOBAL.gtid_executed")).split())


def _seed(spec: ServerSpec) -> None:
    _sql(
        spec,
        "SET SESSION cte_max_recursion_depth = 100000",
        "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci",
        "CREATE TABLE shop.customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), "
        "note TEXT, balance DECIMAL(12,2), created DATETIME(6)) ENGINE=InnoDB",
        "INSERT INTO shop.customers (name, note, balance, created) VALUES "
        "('Zoë \U0001f600', 'line1\\nline2\\t''quoted''', 12.34, '2026-11-23 10:00:00.123456'), "
        "('NULLs', NULL, NULL, NULL), ('Ünïcödé', REPEAT('x', 5000), -0.01, '1970-01-01 00:00:01')",
        "CREATE TABLE shop.blobs (id INT PRIMARY KEY, b LONGBLOB, j JSON) ENGINE=InnoDB",
        "INSERT INTO shop.blobs VALUES (1, REPEAT(x'00ff', 3000), '{\"a\": [1, 2]}'), (2, x'', NULL)",
        "CREATE VIEW shop.rich AS SELECT id, name FROM shop.customers WHERE balance > 0",
        "CREATE DATABASE bulk",
        "CREATE TABLE bulk.t (id INT PRIMARY KEY, k INT, c VARCHAR(200), INDEX (k)) ENGINE=InnoDB",
        "INSERT INTO bulk.t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) "
        "SELECT n, n % 1000, SHA2(n, 256) FROM s",
    )


def _location_s3(moto_server: str) -> Location:
    import boto3

    bucket = "clone-" + secrets.token_hex(4)
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=bucket)
    return Location(
        "s3",
        f"s3://{bucket}/mysql",
        storage_options={
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": moto_server},
        },
        offsite=True,
    )


@pytest.fixture(scope="module")
def env(sandbox_root: str, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    build = builds.resolve(BUILD)
    server = sandbox.start_server(sandbox_root, "clonesrc", server_id=701, build=build)
    staging = private_tempdir("/tmp", "myops-clst-")
    try:
        root = server.spec()
        _seed(root)
        create_users(
            root, [Account("backup", "mysqlops_backup", "%")], {"backup": "Backup-pw-17c"}, dry_run=False
        )
        account = ServerSpec(
            name=server.name,
            host="127.0.0.1",
            port=server.port,
            user="mysqlops_backup",
            password="Backup-pw-17c",
        )
        local = Location("local", f"file://{tmp_path_factory.mktemp('clone')}/backups")
        s3 = _location_s3(moto_server)
        # pre-flight refusals first, while the plugin is not installed yet
        with pytest.raises(PreflightFailed) as refused:
            backup.run_physical_backup(account, [local], codec("zstd"), staging_dir=staging)
        text = str(refused.value)
        assert "INSTALL PLUGIN clone SONAME 'mysql_clone.so';" in text, text
        assert "BACKUP_ADMIN" not in text, text  # the account `users` creates holds it
        assert not _left(staging) and not Store(local).list_keys(""), "a refused backup wrote something"
        backup_role = [Account("backup", "mysqlops_backup", "%")]
        assert any(
            "INSTALL PLUGIN clone SONAME 'mysql_clone.so';" in n for n in server_notes(root, backup_role)
        )
        _sql(root, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
        assert server_notes(root, backup_role) == []
        sums = _sums(root)
        gtid = _gtid(root)
        logs: list[str] = []
        result = backup.run_physical_backup(
            account, [local, s3], codec("zstd"), staging_dir=staging, log=logs.append
        )
        assert _gtid(root) == gtid  # quiet since: the checksums above are those of the copy
        yield Env(server, account, local, s3, result, sums, gtid, staging, logs)
    finally:
        sandbox.stop_server(server)
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def test_physical_clone_mysql(env: Env, tmp_path_factory: pytest.TempPathFactory) -> None:
    m = env.result.manifest
    assert all(r.ok for r in env.result.locations), env.result.locations
    assert m.method is BackupMethod.PHYSICAL and m.flavor == "mysql" and m.server_version.startswith("9.7.")
    assert m.extra["physical_tool"] == "clone" and m.extra["stream_format"] == "tar"
    assert m.files[0].path == "backup.tar.zst"
    assert m.coordinates is not None and m.coordinates.gtid == env.gtid_executed, m.coordinates
    assert m.extra["clone"]["coordinates_exact"] is True
    assert {"shop", "bulk"} <= set(m.databases)
    assert _left(env.staging) == [], "the clone staging directory was left behind"
    found = {b.backup_id: b for b in catalog.scan_location(env.s3).backups}
    assert found[m.backup_id].extra["physical_tool"] == "clone"

    # restore-test: fetch, verify, unpack, start a mysql-9.7 server on it, CHECKSUM TABLE vs backup time
    chain = restore.physical_chain(catalog.scan([env.s3, env.local]), env.server.name)
    assert [c[0][1].backup_id for c in chain] == [m.backup_id]
    tested = restore.restore_test_physical(chain, RunContext(staging_dir=env.staging), expected=env.sums)
    assert tested.passed, [c for c in tested.checks if not c.passed]
    assert tested.target_version.startswith("mysql 9.7."), tested.target_version
    table_checks = [c for c in tested.checks if c.name.endswith("rows and checksum")]
    assert len(table_checks) == sum(len(t) for t in env.sums.values()) and len(table_checks) >= 3
    assert "prepare" not in tested.durations  # a clone needs none

    # restore into a fresh directory, start a server of the same build on it: data and GTIDs equal
    work = private_tempdir("/tmp", "myops-clrs-")
    try:
        target = restore.restore_physical(chain, os.path.join(work, "datadir"), RunContext(staging_dir=work))
        assert os.path.isfile(os.path.join(target, "mysql.ibd"))
        started = sandbox.start_server_on_datadir(
            work, "restored", target, server_id=702, build=restore.scratch_build(m)
        )
        try:
            assert _sums(started.spec()) == env.sums
            assert _gtid(started.spec()) == env.gtid_executed
        finally:
            sandbox.stop_server(started)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)

    # negative: one row changed on the source since the backup: the comparison with it fails, naming the table
    _sql(env.server.spec(), "UPDATE bulk.t SET k = k + 1 WHERE id = 777")
    changed = restore.restore_test_physical(
        chain, RunContext(staging_dir=env.staging), source=env.server.spec()
    )
    assert not changed.passed
    assert [c.name for c in changed.checks if not c.passed] == ["bulk.t: rows and checksum"], changed.checks

    # negative: one flipped byte of the stored copy fails verification (no other copy to fall back to)
    key = f"{layout.backup_dir(m.server, m.backup_id)}/{m.files[0].path}"
    store = Store(env.local)
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 0x01
    with store.fs.open(store.path(key), "wb") as fh:  # bypasses write-once on purpose
        fh.write(bytes(data))
    bad = restore.restore_test_physical(
        restore.physical_chain(catalog.scan([env.local]), env.server.name),
        RunContext(staging_dir=env.staging),
        expected=env.sums,
    )
    assert not bad.passed
    failed = [c for c in bad.checks if not c.passed]
    assert any("sha256" in c.detail for c in failed), failed
    assert _left(env.staging) == []


def test_clone_preflight_names_missing_backup_admin(env: Env) -> None:
    root = env.server.spec()
    _sql(
        root,
        "CREATE USER IF NOT EXISTS 'noadmin'@'%' IDENTIFIED BY 'No-admin-17c'",
        "GRANT SELECT, RELOAD, PROCESS, REPLICATION CLIENT ON *.* TO 'noadmin'@'%'",
    )
    spec = ServerSpec(
        name=env.server.name, host="127.0.0.1", port=env.server.port, user="noadmin", password="No-admin-17c"
    )
    with pytest.raises(PreflightFailed) as refused:
        backup.run_physical_backup(spec, [env.local], codec("zstd"), staging_dir=env.staging)
    assert "GRANT BACKUP_ADMIN ON *.* TO 'noadmin'@'<host>';" in str(refused.value)
    with pytest.raises(PreflightFailed) as inc:
        backup.run_physical_backup(
            env.account, [env.local], codec("zstd"), incremental=True, staging_dir=env.staging
        )
    assert "archive-binlogs" in str(inc.value)
    assert _left(env.staging) == []


def test_clone_refuses_tables_it_would_leave_empty(env: Env) -> None:
    root = env.server.spec()
    _sql(
        root,
        "CREATE TABLE shop.legacy (id INT PRIMARY KEY) ENGINE=MyISAM",
        "INSERT INTO shop.legacy VALUES (1)",
    )
    try:
        with pytest.raises(PreflightFailed) as refused:
            backup.run_physical_backup(env.account, [env.local], codec("zstd"), staging_dir=env.staging)
        assert "`shop`.`legacy` (MyISAM)" in str(refused.value) and "EMPTY" in str(refused.value)
        assert _left(env.staging) == []
    finally:
        _sql(root, "DROP TABLE shop.legacy")


_KILLED_RUN = """
import json, os, signal, sys, threading
from mysqlops.backup import run_physical_backup
from mysqlops.model import Location, ServerSpec
from mysqlops.streams.compression import codec
args = json.loads(sys.stdin.read())
def log(message):
    if "CLONE LOCAL" in message:  # the private staging directory exists: die without any cleanup
        threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
run_physical_backup(ServerSpec(**args["spec"]), [Location("local", args["url"])], codec("zstd"),
                    staging_dir=args["staging"], log=log)
"""


def test_clone_staging_is_removed_after_a_kill(env: Env) -> None:
    import json
    import subprocess
    import sys

    staging = os.path.join(env.staging, "killed")
    spec = env.account
    args = {
        "spec": {
            "name": spec.name,
            "host": spec.host,
            "port": spec.port,
            "user": spec.user,
            "password": spec.password,
        },
        "url": env.local.url,
        "staging": staging,
    }
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN], input=json.dumps(args).encode(), capture_output=True, timeout=120
    )
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    left = [n for n in _left(staging) if n.startswith("mysqlops-clone-")]
    assert left, "the killed run left no staging directory: the test did not kill it mid-backup"
    deadline = time.monotonic() + 60  # the server finishes (or abandons) the orphaned clone statement
    while time.monotonic() < deadline:
        with db.session(env.server.spec()) as conn:
            state = db.scalar(conn, "SELECT STATE FROM performance_schema.clone_status")
        if state != "In Progress":
            break
        time.sleep(0.2)
    logs: list[str] = []
    again = backup.run_physical_backup(
        env.account, [env.local], codec("zstd"), staging_dir=staging, log=logs.append
    )
    assert all(r.ok for r in again.locations)
    assert _left(staging) == [], _left(staging)
    assert any(left[0] in line for line in logs), logs  # the reaper reported what it removed
    os.rmdir(staging)  # empty: the next tests check the shared staging directory is clean


class _Boom(Exception):
    pass


@pytest.mark.parametrize("when", ["CLONE LOCAL", "cloned "])
def test_clone_staging_is_removed_on_failure(env: Env, when: str) -> None:
    """A failure before the clone statement, or after the copy is packed (before the upload):
    nothing stays in staging, nothing is published."""

    def log(message: str) -> None:
        if message.startswith(when) or f": {when}" in message:
            raise _Boom(message)

    before = {b.backup_id for b in catalog.scan_location(env.local).backups}
    with pytest.raises(_Boom):
        backup.run_physical_backup(env.account, [env.local], codec("zstd"), staging_dir=env.staging, log=log)
    assert _left(env.staging) == []
    assert {b.backup_id for b in catalog.scan_location(env.local).backups} == before


def test_clone_under_writes_records_a_lower_bound(env: Env) -> None:
    """Commits during the clone: the manifest's GTID set (read just before) is a subset of what
    the copy holds, the coordinates are marked inexact with a warning, and the copy is
    consistent (every row the copy holds was committed; none is half there)."""
    import threading

    root = env.server.spec()
    _sql(root, "CREATE TABLE shop.w (id INT AUTO_INCREMENT PRIMARY KEY, v CHAR(64)) ENGINE=InnoDB")
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        with db.session(root) as conn:
            while not stop.is_set():
                db.execute(conn, "INSERT INTO shop.w (v) VALUES (SHA2(RAND(), 256))")  # MD5() is gone in 9.x
                written[0] += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while written[0] < 50 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert written[0] >= 50, "the writer did not get going"
        made = backup.run_physical_backup(env.account, [env.local], codec("zstd"), staging_dir=env.staging)
    finally:
        stop.set()
        thread.join(30)
    m = made.manifest
    clone = m.extra["clone"]
    assert m.coordinates is not None and m.coordinates.gtid == clone["gtid_executed_before"]
    # the writer commits all along: the GTID set moved during the clone
    assert clone["gtid_executed_before"] != clone["gtid_executed_after"]
    assert clone["coordinates_exact"] is False
    assert any("committed during the clone" in w for w in m.warnings), m.warnings
    work = private_tempdir("/tmp", "myops-clwr-")
    try:
        chain = [[(env.local, m)]]
        target = restore.restore_physical(chain, os.path.join(work, "datadir"), RunContext(staging_dir=work))
        started = sandbox.start_server_on_datadir(
            work, "wr", target, server_id=703, build=restore.scratch_build(m)
        )
        try:
            with db.session(started.spec()) as conn:
                restored_gtid = str(db.scalar(conn, "SELECT @@GLOBAL.gtid_executed"))
                rows = int(db.scalar(conn, "SELECT COUNT(*) FROM shop.w"))
                top = int(db.scalar(conn, "SELECT COALESCE(MAX(id), 0) FROM shop.w"))
                assert db.scalar(conn, "SELECT GTID_SUBSET(%s, %s)", [m.coordinates.gtid, restored_gtid]) == 1
                assert (
                    db.scalar(
                        conn, "SELECT GTID_SUBSET(%s, %s)", [restored_gtid, clone["gtid_executed_after"]]
                    )
                    == 1
                )
        finally:
            sandbox.stop_server(started)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        _sql(root, "DROP TABLE shop.w")
    assert rows == top and 50 <= rows <= written[0]  # a prefix of the committed inserts, no gap
