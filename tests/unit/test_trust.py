"""Nothing a location says is trusted: key validation, manifest validation, restore verdicts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from mysqlops import layout
from mysqlops.errors import ManifestError, StorageError, UnsafePath
from mysqlops.manifest import (
    BackupFile,
    BackupManifest,
    BinlogManifest,
    Check,
    RestoreCertificate,
    Verdict,
    copy_verdicts,
    verdict_of,
)
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates

AT = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
BID = "20261123T101500Z-3fa2c1"


@pytest.mark.parametrize(
    "key",
    [
        "db1/full/20261123T101500Z-3fa2c1/shop.sql.zst",
        "x",
        "reports/20261123T101500Z/backups.csv",
        "%2E%2E.sql.zst",  # an encoded database name '..'
        "a" * 255,
        "ü/ß.sql",
    ],
)
def test_check_key_accepts_relative_keys(key: str) -> None:
    assert layout.check_key(key) == key


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "empty"),
        ("/etc/cron.d/job", "absolute"),
        ("db1/full/x//etc/cron.d/job", "empty segment"),
        ("db1/../../etc/passwd", "'..' segment"),
        ("..", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("a/", "empty segment"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\\..\\b", "backslash"),
        ("a" * 256, "longer than 255 bytes"),
        ("/".join(["abcdefgh"] * 120), "longer than 1024 bytes"),
    ],
)
def test_check_key_refuses_what_could_escape(key: str, why: str) -> None:
    with pytest.raises(UnsafePath, match=why) as info:
        layout.check_key(key)
    assert isinstance(info.value, ManifestError) and isinstance(info.value, StorageError)
    assert "\x00" not in str(info.value) and "\n" not in str(info.value)  # shown escaped


def test_file_and_binlog_names() -> None:
    assert layout.check_data_file_name("shop.sql.zst") == "shop.sql.zst"
    for bad in ("a/b.sql", layout.MANIFEST_NAME, "restore-test-x.json", ".tmp-x"):
        with pytest.raises(UnsafePath):
            layout.check_data_file_name(bad)
    assert layout.check_binlog_file_name("mysql-bin.000042") == "mysql-bin.000042"
    for bad in ("../mysql-bin.000001", "mysql-bin", "/var/log/mysql-bin.000001", "a..b.000001", ".x.000001"):
        with pytest.raises(UnsafePath):
            layout.check_binlog_file_name(bad)
    with pytest.raises(UnsafePath, match="server name"):
        layout.check_server_name("db1/../x")


def manifest(**changes: object) -> BackupManifest:
    m = BackupManifest(
        backup_id=BID,
        server="db1",
        location="local",
        kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL,
        flavor="mariadb",
        server_version="10.11.9",
        databases=("shop", "crm"),
        files=(
            BackupFile("shop.sql.zst", "shop", 300, "a" * 64, 100, "b" * 64),
            BackupFile("crm.sql.zst", "crm", 30, "c" * 64, 10, "d" * 64),
        ),
        started_at=AT,
        finished_at=AT + timedelta(minutes=5),
        compression="zstd-3",
        coordinates=BinlogCoordinates("mysql-bin.000004", 1234, "0-1-10"),
    )
    return dataclasses.replace(m, **changes)  # type: ignore[arg-type]


def with_file(path: str) -> BackupManifest:
    m = manifest()
    return dataclasses.replace(m, files=(*m.files, dataclasses.replace(m.files[0], path=path)))


def test_a_good_manifest_round_trips() -> None:
    m = manifest()
    assert BackupManifest.from_json(m.to_json()) == m


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (with_file("/etc/cron.d/job"), "absolute"),
        (with_file("../../victim"), r"'\.\.' segment"),
        (with_file("sub//x"), "empty segment"),
        (with_file("sub/x.sql.zst"), "has a '/'"),
        (with_file("x\x00.sql"), "control character"),
        (with_file("..\\..\\x"), "backslash"),
        (with_file("x" * 300), "longer than 255"),
        (with_file(layout.MANIFEST_NAME), "reserved"),
        (with_file("shop.sql.zst"), "twice"),
        (manifest(server="db1/../../x"), "server name"),
        (manifest(server="db 1"), "server name"),
        (manifest(backup_id="../20261123T101500Z-3fa2c1"), "not a backup id"),
        (manifest(parent_id="/etc"), "parent backup id"),
        (manifest(coordinates=BinlogCoordinates("../../mysql-bin.000001", 4)), "coordinates binlog file"),
        (manifest(databases=("shop", "shop")), "twice"),
    ],
)
def test_hostile_backup_manifests_are_refused(bad: BackupManifest, why: str) -> None:
    with pytest.raises(UnsafePath, match=why):
        BackupManifest.from_json(bad.to_json())


def test_binlog_manifest_validation() -> None:
    good = BinlogManifest(
        server="db1",
        location="s3",
        file="mysql-bin.000042",
        server_id=1,
        server_uuid=None,
        raw_bytes=10,
        raw_sha256="a" * 64,
        stored_path="mysql-bin.000042.zst",
        stored_bytes=5,
        stored_sha256="b" * 64,
        compression="zstd",
        archived_at=AT,
    )
    assert BinlogManifest.from_json(good.to_json()) == good
    for changes, why in (
        ({"stored_path": "../../etc/passwd"}, r"'\.\.' segment"),
        ({"stored_path": "mysql-bin.000041.zst"}, "not a stored copy"),
        ({"stored_path": "mysql-bin.000042.json"}, "not a stored copy"),
        ({"file": "/var/log/mysql-bin.000042"}, "absolute"),
        ({"server": "a/b"}, "server name"),
    ):
        bad = json.loads(good.to_json()) | changes
        with pytest.raises(UnsafePath, match=why):
            BinlogManifest.from_json(json.dumps(bad))


def cert(
    m: BackupManifest, passed: bool, hours: float, location: str | None = None, **changes: object
) -> RestoreCertificate:
    c = RestoreCertificate(
        backup_id=m.backup_id,
        server=m.server,
        location=location or m.location,
        tested_at=m.finished_at + timedelta(hours=hours),
        passed=passed,
        checks=(Check("restored", passed),),
        durations={},
        source_version="mariadb 10.11.9",
        target_version="mariadb 10.11.9",
        recovery_point_seconds=0.0,
        fingerprint=m.fingerprint,
    )
    return dataclasses.replace(c, **changes)  # type: ignore[arg-type]


def test_certificate_round_trip_and_validation() -> None:
    c = cert(manifest(), True, 1)
    assert RestoreCertificate.from_json(c.to_json()) == c
    with pytest.raises(UnsafePath, match="server name"):
        RestoreCertificate.from_json(dataclasses.replace(c, server="../x").to_json())


def test_the_newest_certificate_decides() -> None:
    m = manifest()
    assert verdict_of([]) is Verdict.UNTESTED
    assert verdict_of([cert(m, True, 1)]) is Verdict.PASSED
    assert verdict_of([cert(m, True, 1), cert(m, False, 2)]) is Verdict.FAILED  # demoted
    assert verdict_of([cert(m, False, 2), cert(m, True, 3)]) is Verdict.PASSED
    assert verdict_of([cert(m, True, 2), cert(m, False, 2)]) is Verdict.FAILED  # a tie: failure wins
    assert not Verdict.FAILED.proven and not Verdict.UNTESTED.proven and not Verdict.DAMAGED.proven
    assert Verdict.PASSED.proven and Verdict.PROVEN_BY_COPY.proven


def test_copy_verdicts_by_location_and_content() -> None:
    local = manifest()
    s3 = dataclasses.replace(local, location="s3")
    nas = dataclasses.replace(local, location="nas")
    other = dataclasses.replace(local, location="other", files=local.files[:1])  # different content
    copies = [local, s3, nas, other]
    got = copy_verdicts(copies, [cert(local, True, 1), cert(nas, True, 1), cert(nas, False, 2)])
    assert got[("local", "db1", BID)] is Verdict.PASSED
    assert got[("s3", "db1", BID)] is Verdict.PROVEN_BY_COPY  # identical files, tested elsewhere
    assert got[("nas", "db1", BID)] is Verdict.FAILED  # its own newer test failed: not rescued
    assert got[("other", "db1", BID)] is Verdict.UNTESTED  # other bytes prove nothing
    # a certificate about other content (a manifest swapped after the test) proves nothing
    swapped = cert(other, True, 1, location="other", fingerprint=local.fingerprint)
    assert copy_verdicts([other], [swapped])[("other", "db1", BID)] is Verdict.UNTESTED
    # certificates count where they are found (the caller's location), for their own copy only
    assert copy_verdicts([s3], [cert(local, True, 1)])[("s3", "db1", BID)] is Verdict.UNTESTED
    # no certificate at all: nothing is proven
    assert set(copy_verdicts(copies, []).values()) == {Verdict.UNTESTED}
