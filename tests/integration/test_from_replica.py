"""Backup from a replica: SQL thread frozen for one point, primary coordinates and per-table
checksums recorded there, SQL thread always restarted; the restore test uses those checksums."""

from __future__ import annotations

from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import replication
from mysqlops import restore as rs
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.compression import codec
from mysqlops.dialect import dialect_for
from mysqlops.model import Location
from mysqlops.sampledata import create_awkward_database

pytestmark = pytest.mark.integration


def test_backup_from_a_frozen_replica(sandbox_root: str, tmp_path: Any) -> None:
    primary = sandbox.start_server(sandbox_root, "frp", server_id=841)
    replica = sandbox.start_server(sandbox_root, "frr", server_id=842)
    location = Location("local", f"file://{tmp_path}/b")
    try:
        replication.wire_sandbox_replication(primary, [replica])
        with db.session(primary.spec()) as conn:
            create_awkward_database(conn, "shop")
            db.execute(conn, "CREATE DATABASE second")
            db.execute(conn, "CREATE TABLE second.t (id INT PRIMARY KEY, f FLOAT)")
            db.execute(conn, "INSERT INTO second.t VALUES (1, 14285.7138671875)")
        replication.catch_up(primary.spec(), replica.spec(), timeout=30)
        result = bk.run_backup(replica.spec(), [location], codec("zstd"), from_replica=True, parallel=2)
        assert result.ok
        m = result.manifest
        assert m.source_coordinates is not None and m.source_coordinates.gtid
        assert m.extra["from_replica"] is True and not any("parallel=2 on a primary" in w for w in result.warnings)
        stats = {f.database: {t.table: t for t in f.tables} for f in m.files}
        assert stats["shop"]["customers"].rows == 3 and stats["shop"]["customers"].checksum
        assert stats["second"]["t"].lossy_columns == ("f",)
        with db.session(replica.spec()) as conn:  # the SQL thread runs again
            status = db.replica_status(conn, dialect_for(db.server_version(conn)))
        assert status is not None and status.sql_running == "Yes" and status.io_running == "Yes"
        cert = rs.restore_test_copy(location, m, sandbox_dir=str(tmp_path / "sb"))
        assert cert.passed, [c for c in cert.checks if not c.passed]
        assert any(c.name == "shop.customers: rows and checksum" for c in cert.checks), [c.name for c in cert.checks]
        assert any("FLOAT columns" in note for note in cert.lossy), cert.lossy
    finally:
        sandbox.stop_server(replica)
        sandbox.stop_server(primary)
