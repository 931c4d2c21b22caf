"""Backup from a replica: SQL thread frozen for one point, primary coordinates and per-table
checksums recorded there, SQL thread always restarted; the restore test uses those checksums."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import catalog, replication
from mysqlops import restore as rs
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from mysqlops.sampledata import create_awkward_database, create_bulk_table
from mysqlops.sql import dialect_for
from mysqlops.streams.compression import codec
from tests.jobs import job

pytestmark = pytest.mark.integration


def _seq(gtid: str, server_id: int) -> int:
    """The sequence number of ``server_id``'s transactions in a MariaDB GTID position."""
    found = [int(p.split("-")[2]) for p in gtid.split(",") if p and int(p.split("-")[1]) == server_id]
    assert len(found) == 1, (gtid, server_id)
    return found[0]


def test_backup_from_a_frozen_replica(sandbox_root: str, tmp_path: Any) -> None:
    """Writes go on on the primary during the whole backup. The replica's SQL thread is frozen:
    the backup equals the primary at the coordinates it records (every write up to that GTID,
    none after, although later writes were committed while the dump ran), and the replica
    catches up afterwards."""
    primary = sandbox.start_server(sandbox_root, "frp", server_id=841)
    replica = sandbox.start_server(sandbox_root, "frr", server_id=842)
    target = sandbox.start_server(sandbox_root, "frt", server_id=843)
    location = Location("local", f"file://{tmp_path}/b")
    stop = threading.Event()
    writes: list[tuple[int, str]] = []  # (tick, the primary's GTID of the transaction that wrote it)
    try:
        replication.wire_sandbox_replication(primary, [replica])
        with db.session(primary.spec()) as conn:
            create_awkward_database(conn, "shop")
            create_bulk_table(conn, "shop", "bulk", 100_000, payload_bytes=256)  # a dump that takes a while
            db.execute(conn, "CREATE TABLE shop.ticks (n INT PRIMARY KEY)")
            db.execute(conn, "CREATE DATABASE second")
            db.execute(conn, "CREATE TABLE second.t (id INT PRIMARY KEY, f FLOAT)")
            db.execute(conn, "INSERT INTO second.t VALUES (1, 14285.7138671875)")
        replication.catch_up(primary.spec(), replica.spec(), timeout=60)

        def writer() -> None:
            with db.session(primary.spec()) as conn:
                n = 0
                while not stop.is_set():
                    n += 1
                    db.execute(conn, "INSERT INTO shop.ticks VALUES (%s)", [n])
                    writes.append((n, str(db.scalar(conn, "SELECT @@last_gtid"))))
                    time.sleep(0.002)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        while len(writes) < 50:
            time.sleep(0.01)
        during_dump: list[int] = []
        result = bk.run_backup(
            *job(
                replica.spec(),
                [location],
                codec("zstd"),
                from_replica=True,
                parallel=2,
                progress=lambda p: during_dump.append(len(writes)),
                progress_interval=0,
            )
        )
        stop.set()
        thread.join(10)
        assert result.ok
        m = result.manifest
        assert m.source_coordinates is not None and m.source_coordinates.gtid
        assert m.extra["from_replica"] is True and not any(
            "parallel=2 on a primary" in w for w in result.warnings
        )

        # the backup is the primary at the recorded coordinates: exactly the ticks written up to that GTID
        frozen_at = _seq(m.source_coordinates.gtid, 841)
        expected = [n for n, gtid in writes if _seq(gtid, 841) <= frozen_at]
        assert expected and expected == list(range(1, len(expected) + 1))
        copies = catalog.find_backup(catalog.scan([location]), None, m.backup_id)
        rs.restore_backup(copies, target.spec())
        with db.session(target.spec()) as conn:
            restored = [int(r["n"]) for r in db.query(conn, "SELECT n FROM shop.ticks ORDER BY n")]
        assert restored == expected
        stats = {f.database: {t.table: t for t in f.tables} for f in m.files}
        assert stats["shop"]["ticks"].rows == len(expected)  # checksums taken at the same frozen point
        # not later: writes committed while the dump ran are not in it (the freeze held)
        assert during_dump and during_dump[len(during_dump) // 2] > len(expected), (
            len(expected),
            during_dump,
        )
        assert len(writes) > len(expected)

        assert stats["shop"]["customers"].rows == 3 and stats["shop"]["customers"].checksum
        assert stats["second"]["t"].lossy_columns == ("f",)
        with db.session(replica.spec()) as conn:  # the SQL thread runs again and catches up
            status = db.replica_status(conn, dialect_for(db.server_version(conn)))
        assert status is not None and status.sql_running == "Yes" and status.io_running == "Yes"
        replication.catch_up(primary.spec(), replica.spec(), timeout=60)
        with db.session(replica.spec()) as conn:
            assert db.scalar(conn, "SELECT COUNT(*) FROM shop.ticks") == len(writes)
        cert = rs.restore_test_copy(location, m, sandbox_dir=str(tmp_path / "sb"))
        assert cert.passed, [c for c in cert.checks if not c.passed]
        assert any(c.name == "shop.customers: rows and checksum" for c in cert.checks), [
            c.name for c in cert.checks
        ]
        # the parallel restore checks each table as soon as it is loaded, not after the whole load
        per_table = [c for c in cert.checks if c.name.endswith(": rows and checksum")]
        assert per_table and all("taken as soon as the table was loaded" in c.detail for c in per_table), (
            per_table
        )
        assert any("FLOAT columns" in note for note in cert.lossy), cert.lossy
    finally:
        stop.set()
        sandbox.stop_server(target)
        sandbox.stop_server(replica)
        sandbox.stop_server(primary)
