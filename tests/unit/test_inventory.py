"""The inventory core (pure): binlog ranges and the recovery window from location scans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mysqlops import inventory
from mysqlops.catalog import LocationScan
from mysqlops.manifest import BackupFile, BackupManifest, BinlogManifest, Check, RestoreCertificate
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, Location

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def backup(
    hour: int, seq: int, backup_id: str, server: str = "db1", location: str = "local"
) -> BackupManifest:
    at = T0 + timedelta(hours=hour)
    return BackupManifest(
        backup_id=backup_id,
        server=server,
        location=location,
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


def certificate(m: BackupManifest, passed: bool = True) -> RestoreCertificate:
    """A restore certificate of the copy ``m``, tested an hour after it finished."""
    return RestoreCertificate(
        backup_id=m.backup_id,
        server=m.server,
        location=m.location,
        tested_at=m.finished_at + timedelta(hours=1),
        passed=passed,
        checks=(Check("checksums", passed),),
        durations={"total": 5.0},
        source_version="10.11.9",
        target_version="10.11.9",
        recovery_point_seconds=0.0,
        fingerprint=m.fingerprint,
    )


def binlog(seq: int, hour: int, server: str = "db1", location: str = "local") -> BinlogManifest:
    return BinlogManifest(
        server=server,
        location=location,
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
        certificates=[certificate(old), certificate(new)],
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
    assert row["restore_test"] == "passed" and row["age"].startswith("19h")


def test_recovery_window_starts_at_a_proven_backup() -> None:
    """An untested older backup and a failed one do not start the window: a restore of them is
    not known to work; the window says how many are untested."""
    untested, failed = backup(1, 1, "20261101T010000Z-aaaaaa"), backup(2, 1, "20261101T020000Z-cccccc")
    new = backup(10, 3, "20261101T100000Z-bbbbbb")
    scan = LocationScan(
        Location("local", "file:///b"),
        backups=[untested, failed, new],
        certificates=[certificate(failed, passed=False)],
    )
    w = inventory.build([scan], now=T0 + timedelta(hours=20)).servers["db1"].window
    assert w["window"].startswith("nothing restorable") and "2 untested: run restore-test" in w["window"]
    scan.certificates.append(certificate(new))
    w = inventory.build([scan], now=T0 + timedelta(hours=20)).servers["db1"].window
    assert w["oldest_at"] == w["newest_at"] == new.finished_at
    assert w["oldest_point"].endswith(f"(backup {new.backup_id})")


def test_nothing_restorable() -> None:
    inv = inventory.build([LocationScan(Location("local", "file:///b"), binlogs=[binlog(1, 1)])])
    assert inv.servers["db1"].window["window"].startswith("nothing restorable")
