"""Point-in-time recovery end to end: full backup, writes, an accident, binlog archive, PITR."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import binlog as binlog
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, RestoreError
from mysqlops.model import Location, RecoveryTarget
from mysqlops.restore import pitr
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec

pytestmark = pytest.mark.integration


def test_pitr_to_just_before_a_drop_table(sandbox_root: str, tmp_path: Any) -> None:
    source = sandbox.start_server(sandbox_root, "pitrsrc", server_id=811)
    target = sandbox.start_server(sandbox_root, "pitrdst", server_id=812)
    location = Location("local", f"file://{tmp_path}/b")
    try:
        spec = source.spec()
        with db.session(spec) as conn:
            db.execute(conn, "CREATE DATABASE app")
            db.execute(conn, "CREATE TABLE app.orders (id INT PRIMARY KEY, note VARCHAR(20))")
            db.execute(conn, "INSERT INTO app.orders VALUES (1, 'before backup')")
        base = bk.run_backup(spec, [location], codec("zstd")).manifest
        with db.session(spec) as conn:
            db.execute(conn, "INSERT INTO app.orders VALUES (2, 'T1')")
            time.sleep(1.1)
            db.execute(conn, "INSERT INTO app.orders VALUES (3, 'T2')")
            time.sleep(1.1)
            before_accident = datetime.now(UTC).replace(microsecond=0)
            time.sleep(1.1)
            db.execute(conn, "DROP TABLE app.orders")  # T3: the accident
        binlog.archive_binlogs(
            spec, [location], codec("zstd"), RunContext(staging_dir=str(tmp_path)), datetime.now(UTC)
        )
        with pytest.raises(ConfigError):
            pitr.point_in_time_restore(
                [location], spec.name, target.spec(), RecoveryTarget(time=before_accident), databases=["app"]
            )
        with pytest.raises(RestoreError, match="before the recovery target"):
            pitr.point_in_time_restore(
                [location], spec.name, target.spec(), RecoveryTarget(time=datetime(2000, 1, 1, tzinfo=UTC))
            )
        result = pitr.point_in_time_restore(
            [location], spec.name, target.spec(), RecoveryTarget(time=before_accident)
        )
        assert result.base.backup_id == base.backup_id and result.replay.files
        with db.session(target.spec()) as conn:
            rows = db.query(conn, "SELECT id, note FROM app.orders ORDER BY id")
        assert [(r["id"], r["note"]) for r in rows] == [(1, "before backup"), (2, "T1"), (3, "T2")]
    finally:
        sandbox.stop_server(source)
        sandbox.stop_server(target)


def test_restore_test_proves_the_binlog_chain_between_two_full_backups(
    sandbox_root: str, tmp_path: Any
) -> None:
    source = sandbox.start_server(sandbox_root, "chainsrc", server_id=813)
    location = Location("local", f"file://{tmp_path}/b")
    try:
        spec = source.spec()
        with db.session(spec) as conn:
            db.execute(conn, "CREATE DATABASE app")
            db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")
            db.execute(conn, "INSERT INTO app.t (v) VALUES ('a'), ('b')")
        bk.run_backup(spec, [location], codec("zstd"))
        with db.session(spec) as conn:
            db.execute(conn, "INSERT INTO app.t (v) VALUES ('c')")
            db.execute(conn, "UPDATE app.t SET v = 'B' WHERE id = 2")
            db.execute(conn, "CREATE TABLE app.added (id INT)")
        bk.run_backup(spec, [location], codec("zstd"))
        with db.session(spec) as conn:
            db.execute(conn, "INSERT INTO app.t (v) VALUES ('after B2')")
        binlog.archive_binlogs(
            spec, [location], codec("zstd"), RunContext(staging_dir=str(tmp_path)), datetime.now(UTC)
        )
        checks = pitr.prove_binlog_chain([location], spec.name, sandbox_dir=str(tmp_path / "sb"))
        assert checks and all(c.passed for c in checks), checks
        assert any(c.name.startswith("app:") for c in checks)
        # without the archive the proof fails instead of passing blindly
        bare = Location("bare", f"file://{tmp_path}/bare")
        for key in Store(location).list_keys(f"{spec.name}/full"):
            Store(bare).put_bytes(Store(location).read_bytes(key), key)
        failed = pitr.prove_binlog_chain([bare], spec.name, sandbox_dir=str(tmp_path / "sb2"))
        assert not all(c.passed for c in failed)
    finally:
        sandbox.stop_server(source)
