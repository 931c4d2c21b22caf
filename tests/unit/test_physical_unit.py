"""Physical backups without a server: argv builders, metadata parsing, chain resolution."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mysqlops import restore as restore
from mysqlops.backup import physical as backup_physical
from mysqlops.catalog import LocationScan
from mysqlops.errors import ConfigError, IntegrityError, RestoreError
from mysqlops.manifest import BackupFile, BackupManifest
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, Flavor, Location
from mysqlops.restore import chain as restore_chain
from mysqlops.restore import physical_proof
from mysqlops.tools import physical as tools_physical

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_backup_argv_mariadb_full_and_incremental() -> None:
    full = tools_physical.backup_argv(
        Flavor.MARIADB, target_dir="/s/tmp", extra_lsndir="/s/lsn", datadir="/var/lib/mysql"
    )
    assert full == (
        "mariabackup",
        "--backup",
        "--stream=mbstream",
        "--target-dir=/s/tmp",
        "--extra-lsndir=/s/lsn",
        "--datadir=/var/lib/mysql",
    )
    inc = tools_physical.backup_argv(
        Flavor.MARIADB, target_dir="/s/tmp", extra_lsndir="/s/lsn", incremental_lsn=44728, parallel=4
    )
    assert inc == (
        "mariabackup",
        "--backup",
        "--stream=mbstream",
        "--target-dir=/s/tmp",
        "--extra-lsndir=/s/lsn",
        "--incremental-lsn=44728",
        "--parallel=4",
    )
    assert not any("password" in a for a in full + inc)


def test_backup_argv_mysql_uses_xtrabackup_and_xbstream() -> None:
    argv = tools_physical.backup_argv(
        Flavor.MYSQL,
        target_dir="/t",
        extra_lsndir="/l",
        datadir="/d",
        incremental_lsn=7,
        program="/opt/xtrabackup",
    )
    assert argv == (
        "/opt/xtrabackup",
        "--backup",
        "--stream=xbstream",
        "--target-dir=/t",
        "--extra-lsndir=/l",
        "--datadir=/d",
        "--incremental-lsn=7",
    )
    with pytest.raises(ConfigError):
        tools_physical.backup_argv(Flavor.MYSQL, target_dir="/t", extra_lsndir="/l", incremental_lsn=-1)


def test_extract_and_prepare_argv() -> None:
    assert tools_physical.extract_argv(Flavor.MARIADB, "/r") == ("mbstream", "-x", "-C", "/r")
    assert tools_physical.extract_argv(Flavor.MYSQL, "/r") == ("xbstream", "-x", "-C", "/r")
    assert tools_physical.prepare_argv(Flavor.MARIADB, "/r", final=False) == (
        "mariabackup",
        "--prepare",
        "--target-dir=/r",
    )
    assert tools_physical.prepare_argv(Flavor.MARIADB, "/r", incremental_dir="/i", final=False) == (
        "mariabackup",
        "--prepare",
        "--target-dir=/r",
        "--incremental-dir=/i",
    )
    # xtrabackup: --apply-log-only on every step but the last
    assert tools_physical.prepare_argv(Flavor.MYSQL, "/r", final=False) == (
        "xtrabackup",
        "--prepare",
        "--target-dir=/r",
        "--apply-log-only",
    )
    assert tools_physical.prepare_argv(Flavor.MYSQL, "/r", incremental_dir="/i", final=True) == (
        "xtrabackup",
        "--prepare",
        "--target-dir=/r",
        "--incremental-dir=/i",
    )
    assert tools_physical.option_groups(Flavor.MARIADB) == ("mariabackup",)
    assert tools_physical.option_groups(Flavor.MYSQL) == ("xtrabackup",)


def test_parse_checkpoints() -> None:
    cp = backup_physical.parse_checkpoints(
        "backup_type = incremental\nfrom_lsn = 44728\nto_lsn = 48000\nlast_lsn = 48251\nrecover_binlog_info = 0\n"
    )
    assert cp == backup_physical.Checkpoints("incremental", 44728, 48000, 48251)
    with pytest.raises(IntegrityError):
        backup_physical.parse_checkpoints("backup_type = full-backuped\n")


def test_parse_binlog_info() -> None:
    info = (
        "tool_name = mariabackup\n"
        "binlog_pos = filename 'mysql-bin.000003', position '1044', GTID of the last change '0-901-4'\n"
        "innodb_from_lsn = 0\n"
    )
    assert backup_physical.parse_binlog_info(info) == BinlogCoordinates("mysql-bin.000003", 1044, "0-901-4")
    assert backup_physical.parse_binlog_info(
        "binlog_pos = filename 'b.000002', position '156'\n"
    ) == BinlogCoordinates("b.000002", 156, None)
    assert backup_physical.parse_binlog_info(info, "mysql-bin.000009\t77\t0-1-9\n") == BinlogCoordinates(
        "mysql-bin.000009", 77, "0-1-9"
    )
    assert backup_physical.parse_binlog_info("tool_name = mariabackup\n") is None


# --------------------------------------------------------------------------- chains
def _manifest(
    backup_id: str,
    kind: BackupKind,
    lsn: tuple[int, int],
    parent: str | None = None,
    method: BackupMethod = BackupMethod.PHYSICAL,
) -> BackupManifest:
    f = BackupFile("backup.mbstream.zst", None, 10, "a" * 64, 5, "b" * 64)
    return BackupManifest(
        backup_id=backup_id,
        server="db1",
        location="local",
        kind=kind,
        method=method,
        flavor="mariadb",
        server_version="10.11.19",
        databases=("shop",),
        files=(f,),
        started_at=T0,
        finished_at=T0 + timedelta(minutes=1),
        compression="zstd-3",
        parent_id=parent,
        lsn_from=lsn[0],
        lsn_to=lsn[1],
    )


FULL = _manifest("20261123T100000Z-aaaaaa", BackupKind.FULL, (0, 100))
INC1 = _manifest("20261123T110000Z-bbbbbb", BackupKind.INCREMENTAL, (100, 200), FULL.backup_id)
INC2 = _manifest("20261123T120000Z-cccccc", BackupKind.INCREMENTAL, (200, 300), INC1.backup_id)
LOGICAL = _manifest("20261123T130000Z-dddddd", BackupKind.FULL, (0, 0), method=BackupMethod.LOGICAL)


def test_validate_chain_accepts_a_good_chain() -> None:
    restore_chain.validate_chain([FULL, INC1, INC2])
    restore_chain.validate_chain([FULL])


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ([], "empty"),
        ([INC1, INC2], "full base backup is missing"),
        ([FULL, replace(INC1, lsn_from=150)], "LSN gap"),
        ([FULL, INC2], "based on"),
        ([FULL, INC1, INC1], "based on"),
        ([LOGICAL], "not physical"),
        ([FULL, replace(INC1, kind=BackupKind.FULL)], "cannot follow"),
        ([replace(FULL, lsn_to=None)], "no LSN"),
        ([replace(FULL, files=())], "expected one stream"),
    ],
)
def test_validate_chain_rejects_broken_chains(chain: list[BackupManifest], message: str) -> None:
    with pytest.raises(RestoreError, match=message):
        restore_chain.validate_chain(chain)


def _scans(*manifests: BackupManifest) -> list[LocationScan]:
    local = Location("local", "file:///tmp/x")
    remote = Location("s3", "s3://bucket/x")
    return [LocationScan(local, backups=list(manifests)), LocationScan(remote, backups=list(manifests))]


def test_physical_chain_resolves_latest_physical_and_orders_it() -> None:
    scans = _scans(FULL, INC1, INC2, LOGICAL)
    chain = restore.physical_chain(scans, "db1")  # the newer logical backup is not a candidate
    assert [copies[0][1].backup_id for copies in chain] == [FULL.backup_id, INC1.backup_id, INC2.backup_id]
    assert [loc.name for loc, _ in chain[0]] == ["local", "s3"]
    chain = restore.physical_chain(scans, "db1", INC1.backup_id)
    assert [copies[0][1].backup_id for copies in chain] == [FULL.backup_id, INC1.backup_id]


def test_physical_chain_missing_base_fails_clearly() -> None:
    with pytest.raises(
        RestoreError, match=f"base backup {FULL.backup_id} of incremental {INC1.backup_id} is missing"
    ):
        restore.physical_chain(_scans(INC1, INC2), "db1")
    with pytest.raises(RestoreError, match="no physical backup"):
        restore.physical_chain(_scans(LOGICAL), "db1")
    with pytest.raises(RestoreError, match="not physical"):
        restore.physical_chain(_scans(LOGICAL), "db1", LOGICAL.backup_id)


def test_compare_tables_reports_every_difference() -> None:
    from mysqlops.manifest import TableStat

    want = {"a": TableStat("a", 3, "x"), "b": TableStat("b", 1, "y"), "gone": TableStat("gone", 1, "z")}
    got = {
        "a": TableStat("a", 3, "x"),
        "b": TableStat("b", 1, "DIFFERENT"),
        "extra": TableStat("extra", 0, "0"),
    }
    checks = {c.name.split(":")[0]: c for c in physical_proof._compare_tables("d", want, got)}
    assert checks["d.a"].passed
    assert not checks["d.b"].passed and "expected rows 1 checksum y" in checks["d.b"].detail
    assert not checks["d.gone"].passed and "missing" in checks["d.gone"].detail
    assert not checks["d.extra"].passed
