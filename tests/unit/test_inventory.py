"""The inventory core (pure): binlog ranges and the recovery window from location scans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mysqlops import inventory
from mysqlops.catalog import LocationScan
from mysqlops.manifest import BackupFile, BackupManifest, BinlogManifest
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, Location

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def backup(hour: int, seq: int, backup_id: str) -> BackupManifest:
    at = T0 + timedelta(hours=hour)
    return BackupManifest(
        backup_id=backup_id,
        server="db1",
        location="local",
        kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL,
        flavor="mariadb",
        server_version="10.11.9",
        databases=("shop",),
        files=(BackupFile("shop.sql.zst", "shop", 3000, "r", 2048, "s"),),
        started_at=at - timedelta(minutes=1),
        finished_at=at,
        compression="zstd",
        coordinates=BinlogCoordinates(f"mysql-bin.{seq:06d}", 4),
        encryption_key_id="k1",
    )


def binlog(seq: int, hour: int) -> BinlogManifest:
    return BinlogManifest(
        server="db1",
        location="local",
        file=f"mysql-bin.{seq:06d}",
        server_id=1,
        server_uuid=None,
        raw_bytes=1000,
        raw_sha256="r",
        stored_path=f"db1/binlogs/mysql-bin.{seq:06d}.zst",
        stored_bytes=1024,
        stored_sha256="s",
        compression="zstd",
        archived_at=T0 + timedelta(hours=hour, minutes=5),
        first_event_at=T0 + timedelta(hours=hour - 1),
        last_event_at=T0 + timedelta(hours=hour),
    )


def test_recovery_window_and_binlog_ranges() -> None:
    old, new = backup(1, 1, "20261101T010000Z-aaaaaa"), backup(10, 3, "20261101T100000Z-bbbbbb")
    scan = LocationScan(
        Location("local", "file:///b"),
        backups=[old, new],
        binlogs=[binlog(3, 11), binlog(4, 12), binlog(6, 14)],
    )
    inv = inventory.build([scan], now=T0 + timedelta(hours=20))
    w = inv.servers["db1"].window
    assert w["oldest_at"] == old.finished_at
    assert w["newest_at"] == T0 + timedelta(hours=12)  # binlog 5 is missing: PITR stops at the end of 4
    assert w["window"].startswith("11h")
    assert w["pitr_from"].startswith(new.backup_id)  # old's binlogs 1 and 2 are missing
    assert w["gaps"] == "binlog #1, binlog #2, binlog #5"
    ranges = [r["binlogs"] for r in inv.servers["db1"].binlogs]
    assert ranges == ["mysql-bin.000003 .. mysql-bin.000004", "mysql-bin.000006"]
    row = inv.servers["db1"].backups[0]
    assert row["size"] == "2.0 KiB" and row["encryption_key_id"] == "k1" and row["pinned"] == "no"
    assert row["restore_test"] == "untested" and row["age"].startswith("19h")


def test_nothing_restorable() -> None:
    inv = inventory.build([LocationScan(Location("local", "file:///b"), binlogs=[binlog(1, 1)])])
    assert inv.servers["db1"].window["window"].startswith("nothing restorable")
