"""The whole mission on each server build (mariadb-10.11, mariadb-11.8, mysql-9.7), with the
real clients of that build: backup → restore-test → restore, replica provision + health,
binlog archive + PITR proof + point-in-time restore. One cluster per build (the shared
``cluster`` fixture) and one restore target.

Run one build: ``pytest tests/integration/test_mission.py --flavor mysql-9.7``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import binlog
from mysqlops import replication as repl
from mysqlops.adapters import builds, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.model import Location
from mysqlops.restore import pitr, restore_test_copy
from mysqlops.sampledata import create_awkward_database, create_bulk_table
from mysqlops.streams.compression import codec
from mysqlops.tablesum import table_checksums

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SETTINGS = repl.ReplicationSettings(user="mysqlops_repl", password="Mission'pw\\9")


@pytest.mark.flavors
def test_mission_on_flavor(
    flavor: str,
    server_build: builds.ServerBuild,
    cluster: list[sandbox.SandboxServer],
    fresh_server: sandbox.SandboxServer,
    s3_location: Location,
    tmp_path: Any,
) -> None:
    primary, replica = (s.spec() for s in cluster)
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
    first = bk.run_backup(primary, [local, s3_location], codec("zstd"), staging_dir=staging).manifest
    assert first.tools["client_build"] == flavor
    assert first.tools["client_version"] == server_build.version_text
    lap("backup")

    # restore test: a scratch server of the backup's own build, verified (re-dump hash equal)
    cert = restore_test_copy(local, first, staging_dir=staging)
    assert cert.passed, [(c.name, c.detail) for c in cert.checks if not c.passed]
    started = next(c for c in cert.checks if c.name == "scratch server started")
    assert flavor in started.detail and server_build.version_text in cert.target_version
    assert any("re-dump content hash" in c.name and c.passed for c in cert.checks)
    lap("restore test")

    # writes, a second backup, more writes, an accident; binlogs archived
    with db.session(primary) as conn:
        db.execute(conn, "INSERT INTO shop.audit (customer_id, action) VALUES (1, 'between')")
        db.execute(conn, "UPDATE bulk.t SET k = k + 1 WHERE id <= 100")
    bk.run_backup(primary, [local], codec("zstd"), staging_dir=staging)
    with db.session(primary) as conn:
        db.execute(conn, "INSERT INTO shop.audit (customer_id, action) VALUES (2, 'after')")
        expected = {d: table_checksums(conn, d) for d in ("shop", "bulk")}
        time.sleep(1.1)
        before_accident = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)
        db.execute(conn, "DROP TABLE bulk.t")
    archived = binlog.archive_binlogs(primary, [local], codec("zstd"), staging, datetime.now(UTC))
    assert archived is not None
    lap("writes + second backup + binlog archive")

    # PITR proof: first backup + archived binlogs == second backup, on a scratch of this build
    proof = pitr.prove_binlog_chain([local], primary.name, staging_dir=staging)
    assert proof and all(c.passed for c in proof), [(c.name, c.detail) for c in proof if not c.passed]
    lap("PITR proof")

    # restore: the latest backup + binlogs up to just before the accident, into another server
    result = pitr.point_in_time_restore(
        [local], primary.name, target, until=before_accident, staging_dir=staging
    )
    assert result.replay.files
    with db.session(target) as conn:
        assert {d: table_checksums(conn, d) for d in ("shop", "bulk")} == expected
    lap("point-in-time restore")

    # the replica followed everything, the accident included
    repl.catch_up(primary, replica, timeout=60)
    with db.session(replica) as conn:
        assert (
            db.scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bulk'") == 0
        )
    print(f"\nmission on {flavor}: {timings}")
