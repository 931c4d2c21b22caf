"""CLONE backups, pure parts: coordinates from log_status / clone_status, tar argv, chains of
clone manifests, the scratch build of a backup."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mysqlops.backup.clone import LogStatus, clone_status_coordinates, parse_log_status
from mysqlops.backup.physical import is_clone, newest_physical
from mysqlops.catalog import LocationScan
from mysqlops.errors import RestoreError
from mysqlops.manifest import BackupFile, BackupManifest
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, Flavor, Location
from mysqlops.restore.chain import validate_chain
from mysqlops.restore.physical_proof import scratch_build
from mysqlops.tools.physical import TAR_FORMAT, tar_create_argv, tar_extract_argv, unpack_argv

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _clone(backup_id: str = "20261123T100000Z-aaaaaa") -> BackupManifest:
    return BackupManifest(
        backup_id=backup_id,
        server="my1",
        location="local",
        kind=BackupKind.FULL,
        method=BackupMethod.PHYSICAL,
        flavor="mysql",
        server_version="9.7.4",
        databases=("shop",),
        files=(BackupFile("backup.tar.zst", None, 10, "a" * 64, 5, "b" * 64),),
        started_at=T0,
        finished_at=T0 + timedelta(minutes=1),
        compression="zstd-3",
        extra={"physical_tool": "clone", "stream_format": TAR_FORMAT},
    )


def test_log_status_local_column() -> None:
    local = {
        "gtid_executed": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2",
        "binary_log_file": "binlog.000003",
        "binary_log_position": 1234,
    }
    status = parse_log_status(json.dumps(local))
    assert status == parse_log_status(local)
    assert status.gtid_executed == (
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5, 4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2"
    )
    assert status.coordinates() == BinlogCoordinates("binlog.000003", 1234, status.gtid_executed)
    assert LogStatus("", 0, "").coordinates() is None  # binary logging off: no coordinates


def test_clone_status_coordinates_only_when_filled() -> None:
    assert clone_status_coordinates(None) is None
    assert clone_status_coordinates({"BINLOG_FILE": "", "BINLOG_POSITION": 0, "GTID_EXECUTED": ""}) is None
    row = {"BINLOG_FILE": "binlog.000002", "BINLOG_POSITION": 157, "GTID_EXECUTED": "u:1-3"}
    assert clone_status_coordinates(row) == BinlogCoordinates("binlog.000002", 157, "u:1-3")


def test_tar_argv() -> None:
    assert tar_create_argv("/s/data") == (
        "tar", "--create", "--file=-", "--numeric-owner", "--directory=/s/data", ".",
    )  # fmt: skip
    assert tar_extract_argv("/r") == ("tar", "--extract", "--file=-", "--no-same-owner", "--directory=/r")
    assert unpack_argv(TAR_FORMAT, Flavor.MYSQL, "/r")[0] == "tar"
    assert unpack_argv("mbstream", Flavor.MARIADB, "/r")[0] == "mbstream"


def test_clone_manifest_is_restored_alone_and_found_as_newest() -> None:
    full = _clone()
    assert is_clone(full) and full.lsn_to is None
    validate_chain([full])  # no LSN needed
    with pytest.raises(RestoreError, match="restored alone"):
        validate_chain([full, replace(_clone("20261123T110000Z-bbbbbb"), kind=BackupKind.INCREMENTAL)])
    scan = LocationScan(Location("local", "file:///x"), backups=[full])
    assert newest_physical(scan, "my1") == full
    no_lsn = replace(full, extra={})  # a non-clone physical manifest without LSN stays refused
    with pytest.raises(RestoreError, match="no LSN range"):
        validate_chain([no_lsn])


def test_scratch_build_is_the_backups_own() -> None:
    assert scratch_build(_clone()) == "mysql-9.7"
    assert scratch_build(replace(_clone(), flavor="mariadb", server_version="11.8.9")) == "mariadb-11.8"
