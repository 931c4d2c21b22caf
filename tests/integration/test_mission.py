"""The whole mission on each server build (mariadb-10.11, mariadb-11.8, mysql-9.7), with the
real clients of that build: backup → restore-test → restore, replica provision + health,
binlog archive + PITR proof + point-in-time restore, encryption, the check's server checks. One cluster per build of its own (the
session's ``cluster`` is shared with tests that expect no replication wired) and one restore
target.

Run one build: ``pytest tests/integration/test_mission.py --flavor mysql-9.7``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import binlog
from mysqlops import replication as repl
from mysqlops.adapters import builds, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.checks import CheckPolicy, Status, run_checks
from mysqlops.model import Location, RecoveryTarget
from mysqlops.restore import pitr, restore_test_copy
from mysqlops.runs import RunContext
from mysqlops.sampledata import create_awkward_database, create_bulk_table
from mysqlops.streams.compression import codec
from mysqlops.streams.keys import Keyring, generate_key, key_id
from mysqlops.tablesum import table_checksums
from tests.jobs import job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = repl.ReplicationSettings(user="mysqlops_repl", password="Mission'pw\\9")


@pytest.fixture(scope="module")
def mission_cluster(
    sandbox_root: str, server_build: builds.ServerBuild
) -> Iterator[list[sandbox.SandboxServer]]:
    servers = sandbox.start_cluster(
        os.path.join(sandbox_root, f"mission-{server_build.name}"), replicas=1, build=server_build
    )
    yield servers
    sandbox.stop_servers(servers)


@pytest.mark.flavors
def test_mission_on_flavor(
    flavor: str,
    server_build: builds.ServerBuild,
    mission_cluster: list[sandbox.SandboxServer],
    fresh_server: sandbox.SandboxServer,
    s3_location: Location,
    tmp_path: Any,
) -> None:
    primary, replica = (s.spec() for s in mission_cluster)
    target = fresh_server.spec()
    local = Location("local", f"file://{tmp_path}/backups")
    staging = str(tmp_path)
    timings: dict[str, float] = {}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        timings[name] = round(time.monotonic() - mark, 1)
        mark = time.monotonic()

    with db.session(primary) as conn:
        assert builds.build_name_for(db.server_version(conn)) == flavor
        create_awkward_database(conn, "shop")
        create_bulk_table(conn, "bulk", "t", 5000, payload_bytes=64)
    lap("sample data")

    # replica provision + health (seeded by the build's own dump | client)
    repl.provision(primary, [replica], SETTINGS, catchup_timeout=120)
    health = repl.check_health([replica], primary=primary, sample_checksum=True)
    assert health and all(h.ok for h in health), [(h.problems, h.drift) for h in health]
    lap("provision + health")

    # backup to a local directory and S3, made with the build's own dump tool (recorded)
    first = bk.run_backup(*job(primary, [local, s3_location], codec("zstd"), staging_dir=staging)).manifest
    assert first.tools["client_build"] == flavor
    assert first.tools["client_version"] == server_build.version_text
    lap("backup")

    # restore test: a scratch server of the backup's own build, verified (re-dump hash equal)
    cert = restore_test_copy(local, first, RunContext(staging_dir=staging))
    assert cert.passed, [(c.name, c.detail) for c in cert.checks if not c.passed]
    started = next(c for c in cert.checks if c.name == "scratch server started")
    assert flavor in started.detail and server_build.version_text in cert.target_version
    assert any("re-dump content hash" in c.name and c.passed for c in cert.checks)
    lap("restore test")

    # writes, a second backup, more writes, an accident; binlogs archived
    with db.session(primary) as conn:
        db.execute(conn, "INSERT INTO shop.audit (customer_id, action) VALUES (1, 'between')")
        db.execute(conn, "UPDATE bulk.t SET k = k + 1 WHERE id <= 100")
    bk.run_backup(*job(primary, [local], codec("zstd"), staging_dir=staging))
    with db.session(primary) as conn:
        db.execute(conn, "INSERT INTO shop.audit (customer_id, action) VALUES (2, 'after')")
        expected = {d: table_checksums(conn, d) for d in ("shop", "bulk")}
        time.sleep(1.1)
        before_accident = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)
        db.execute(conn, "DROP TABLE bulk.t")
    archived = binlog.archive_binlogs(
        primary, [local], codec("zstd"), RunContext(staging_dir=staging), datetime.now(UTC)
    )
    assert archived is not None
    lap("writes + second backup + binlog archive")

    # PITR proof: first backup + archived binlogs == second backup, on a scratch of this build
    proof = pitr.prove_binlog_chain([local], primary.name, ctx=RunContext(staging_dir=staging))
    assert proof and all(c.passed for c in proof), [(c.name, c.detail) for c in proof if not c.passed]
    lap("PITR proof")

    # restore: the latest backup + binlogs up to just before the accident, into another server
    result = pitr.point_in_time_restore(
        [local],
        primary.name,
        target,
        RecoveryTarget(time=before_accident),
        ctx=RunContext(staging_dir=staging),
    )
    assert result.replay.files
    with db.session(target) as conn:
        assert {d: table_checksums(conn, d) for d in ("shop", "bulk")} == expected
    # negative control on real servers of this build: the restored target holds rows the first
    # backup does not (one audit row more, 100 changed rows), so its re-dump hash differs
    from mysqlops.adapters import clients
    from mysqlops.restore.verify import verify_restored

    checks, _ = verify_restored(
        first, target, {"shop": "shop", "bulk": "bulk"}, clients.for_build(server_build).dump
    )
    hashes = {c.name: c.passed for c in checks if "re-dump content hash" in c.name}
    assert hashes == {"bulk: re-dump content hash": False, "shop: re-dump content hash": False}, checks
    lap("point-in-time restore")

    # encryption on this build: an encrypted backup restore-tests with its key, and without it
    # the copy is refused before any scratch server starts
    key = generate_key()
    sealed = bk.run_backup(
        *job(primary, [local], codec("zstd"), staging_dir=staging, encryption_key=key, databases=["shop"])
    ).manifest
    assert sealed.encryption_key_id == key_id(key)
    cert = restore_test_copy(
        local, sealed, RunContext(staging_dir=staging, keyring=Keyring(key)), write_certificate=False
    )
    assert cert.passed, [(c.name, c.detail) for c in cert.checks if not c.passed]
    keyless = restore_test_copy(local, sealed, RunContext(staging_dir=staging), write_certificate=False)
    assert [c.name for c in keyless.checks if not c.passed] == ["encryption key available"]
    lap("encryption")

    # the check flow's server checks on this build: reachable, privileges, binlog, replication
    repl.catch_up(primary, replica, timeout=60)
    rows = run_checks([primary, replica], [local], CheckPolicy(min_free_bytes=0))
    by_server = {(r.server, r.check): r for r in rows if not r.location}
    for name in (primary.name, replica.name):
        for check in ("reachable", "privileges", "binlog"):
            assert by_server[(name, check)].status is Status.OK, by_server[(name, check)]
    assert by_server[(replica.name, "replication")].status is Status.OK, by_server[
        (replica.name, "replication")
    ]
    lap("check")

    # the replica followed everything, the accident included
    repl.catch_up(primary, replica, timeout=60)
    with db.session(replica) as conn:
        assert (
            db.scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bulk'") == 0
        )
    print(f"\nmission on {flavor}: {timings}")


def test_upgrade_rehearsal(fresh_server: sandbox.SandboxServer, tmp_path: Any) -> None:
    """restore-test(scratch_series="mariadb-11.8") restores a MariaDB 10.11 backup into 11.8 and
    certifies it; the certificate names both versions. The re-dump runs 10.11's own dump tool
    against the 11.8 server, so its hash compares with the backup's."""
    spec = fresh_server.spec()
    local = Location("local", f"file://{tmp_path}/backups")
    with db.session(spec) as conn:
        assert builds.build_name_for(db.server_version(conn)) == "mariadb-10.11"
        create_awkward_database(conn, "shop")
        create_bulk_table(conn, "bulk", "t", 2000, payload_bytes=64)
    manifest = bk.run_backup(*job(spec, [local], codec("zstd"), staging_dir=str(tmp_path))).manifest
    cert = restore_test_copy(
        local, manifest, RunContext(staging_dir=str(tmp_path)), scratch_series="mariadb-11.8"
    )
    assert cert.passed, [(c.name, c.detail) for c in cert.checks if not c.passed]
    new = builds.resolve("mariadb-11.8")
    assert cert.source_version.startswith(f"mariadb {manifest.server_version}")
    assert "mariadb-10.11" in cert.source_version
    assert cert.target_version == f"mariadb-11.8 ({new.version})"
    assert [c.name for c in cert.checks if "re-dump content hash" in c.name] == [
        "bulk: re-dump content hash",
        "shop: re-dump content hash",
    ]
    # the same backup on its own series still passes (the ordinary restore test)
    own = restore_test_copy(local, manifest, RunContext(staging_dir=str(tmp_path)), write_certificate=False)
    assert own.passed and own.target_version.startswith("mariadb-10.11 (")


def test_scratch_server_that_cannot_start_fails_the_certificate(
    fresh_server: sandbox.SandboxServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scratch build that cannot start is a FAILED certificate naming the reason, written
    next to the backup; no exception escapes, nothing is left running."""
    from mysqlops.adapters import clients

    spec = fresh_server.spec()
    local = Location("local", f"file://{tmp_path}/backups")
    with db.session(spec) as conn:
        db.execute(conn, "CREATE DATABASE app")
        db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY)")
    manifest = bk.run_backup(*job(spec, [local], codec("zstd"), staging_dir=str(tmp_path))).manifest
    # a "build" whose server says it is 11.8 but cannot start
    fake = tmp_path / "fake-11.8" / "usr" / "sbin"
    fake.mkdir(parents=True)
    server = fake / "mariadbd"
    server.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "mariadbd  Ver 11.8.9-MariaDB for Linux"; exit 0; fi\n'
        'echo "cannot start: broken build" >&2\nexit 1\n'
    )
    server.chmod(0o755)
    monkeypatch.setenv("MYSQLOPS_SERVER_BUILD_MARIADB_11_8", str(tmp_path / "fake-11.8"))
    clients.forget()
    try:
        cert = restore_test_copy(
            local, manifest, RunContext(staging_dir=str(tmp_path)), scratch_series="mariadb-11.8"
        )
        missing = tmp_path / "nothing-here"
        monkeypatch.setenv("MYSQLOPS_SERVER_BUILD_MARIADB_11_8", str(missing))
        clients.forget()
        cert2 = restore_test_copy(
            local, manifest, RunContext(staging_dir=str(tmp_path)), scratch_series="mariadb-11.8"
        )
    finally:
        monkeypatch.delenv("MYSQLOPS_SERVER_BUILD_MARIADB_11_8")
        clients.forget()
    for c, reason in ((cert, "mariadb-11.8"), (cert2, str(missing))):
        assert not c.passed
        failed = [x for x in c.checks if not x.passed]
        assert [x.name for x in failed] == ["scratch server started"]
        assert reason in failed[0].detail
    # the failed certificate is stored next to the backup (the session's leak check proves no
    # scratch server was left running)
    from mysqlops import layout
    from mysqlops.adapters.storage import Store

    keys = Store(local).list_keys(f"{manifest.server}/full/{manifest.backup_id}")
    stored = [k for k in keys if k.rsplit("/", 1)[-1].startswith(layout.CERTIFICATE_PREFIX)]
    assert stored  # both ran within one second: one key
    assert all('"passed": false' in Store(local).read_bytes(k).decode() for k in stored)


def test_preflight_names_the_client_to_install() -> None:
    """Issue 17 item 6: MariaDB's mysqldump/mysqlbinlog first on PATH (Debian's
    /usr/bin/mysqldump is mariadb-dump) against a MySQL 9.7 server is refused before anything
    runs, naming the build to fetch; the clients mysqlops picks for that server (the mysql-9.7
    build's, by absolute path) pass the same check."""
    from mysqlops.adapters import clients
    from mysqlops.model import Flavor, ServerVersion

    mysql_97 = ServerVersion(Flavor.MYSQL, 9, 7, 4)
    on_path = clients.Clients(
        Flavor.MYSQL, ("/usr/bin/mysql",), ("/usr/bin/mysqldump",), ("/usr/bin/mysqlbinlog",)
    )
    problems, _ = clients.check(on_path, mysql_97)
    assert len(problems) == 3, problems
    assert all("MySQL 9.7.4" in p and "builds fetch mysql-9.7" in p for p in problems)
    assert "MariaDB 10.11" in problems[1]  # the dump tool names its own version
    chosen = clients.for_server(mysql_97)
    assert chosen.build is not None and chosen.build.name == "mysql-9.7"
    assert clients.check(chosen, mysql_97) == ([], [])
    assert chosen.dump[-1].startswith(chosen.build.root)
