"""Retention applied to real locations (local dir + S3 endpoint): order, crash, in-flight, locks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mysqlops import catalog, ids, lifecycle
from mysqlops.adapters.storage import Store
from mysqlops.errors import RetentionError, StorageError
from mysqlops.manifest import BackupFile, BackupManifest
from mysqlops.model import BackupKind, BackupMethod, Location, ObjectCounts
from mysqlops.retention import RetentionPolicy

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest) -> Location:
    return request.getfixturevalue(f"{request.param}_location")


def put_backup(store: Store, when: datetime, server: str = "db1", data: bytes = b"x" * 1000) -> str:
    backup_id = ids.new_backup_id(when)
    directory = ids.backup_dir(server, backup_id)
    store.put_bytes(data, f"{directory}/shop.sql.zst")
    digest = hashlib.sha256(data).hexdigest()
    manifest = BackupManifest(
        backup_id=backup_id, server=server, location=store.location.name, kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL, flavor="mariadb", server_version="10.11.19", databases=("shop",),
        files=(BackupFile("shop.sql.zst", "shop", len(data) * 3, digest, len(data), digest, ObjectCounts(1)),),
        started_at=when - timedelta(minutes=5), finished_at=when, compression="zstd-3",
    )
    store.put_bytes(manifest.to_json().encode(), f"{directory}/{ids.MANIFEST_NAME}")
    return backup_id


def history(store: Store, days: int = 10) -> list[str]:
    return [put_backup(store, NOW - timedelta(days=d, hours=1)) for d in range(days)]


def ids_at(location: Location) -> list[str]:
    return sorted(b.backup_id for b in catalog.scan_location(location).backups)


def test_dry_run_plan_then_apply(location: Location) -> None:
    store = Store(location)
    made = history(store)
    policy = RetentionPolicy(keep_daily=3, min_redundancy=2)
    scan = catalog.scan_location(location)
    plan = lifecycle.plan_for_scan(scan, policy, NOW)
    assert len(plan.keep) == 3 and len(plan.delete) == 7
    assert ids_at(location) == sorted(made)  # planning deletes nothing
    result = lifecycle.apply_plan(store, scan, plan)
    assert sorted(result.deleted) == sorted(d.record.backup_id for d in plan.delete)
    assert ids_at(location) == sorted(made)[-3:]
    assert catalog.scan_location(location).orphans == []  # data went with the manifests
    # applying the same policy again changes nothing
    again = lifecycle.plan_for_scan(catalog.scan_location(location), policy, NOW)
    assert again.delete == []


def test_crash_between_manifest_and_data_leaves_garbage_not_a_backup(location: Location) -> None:
    store = Store(location)
    history(store, 5)
    scan = catalog.scan_location(location)
    plan = lifecycle.plan_for_scan(scan, RetentionPolicy(keep_last=2), NOW)

    def crash(backup_id: str) -> None:
        raise RuntimeError(f"power cut after deleting the manifest of {backup_id}")

    with pytest.raises(RuntimeError):
        lifecycle.apply_plan(store, scan, plan, after_manifest_deleted=crash)
    after = catalog.scan_location(location)
    assert len(after.backups) == 4  # the half-deleted one is no longer a backup
    assert len(after.orphans) == 1  # its data is garbage
    # the next run finishes: the plan deletes the rest, cleanup removes the garbage (old enough)
    lifecycle.apply_plan(store, after, lifecycle.plan_for_scan(after, RetentionPolicy(keep_last=2), NOW))
    lifecycle.cleanup(store, catalog.scan_location(location), timedelta(0), datetime.now(UTC) + timedelta(seconds=5))
    final = catalog.scan_location(location)
    assert len(final.backups) == 2 and final.orphans == [] and final.temporary == []


def test_backup_in_flight_survives_cleanup(location: Location) -> None:
    store = Store(location)
    history(store, 3)
    in_flight = f"{ids.backup_dir('db1', ids.new_backup_id())}/shop.sql.zst"
    store.put_bytes(b"being written", in_flight)  # data, no manifest yet
    scan = catalog.scan_location(location)
    assert in_flight in scan.orphans
    result = lifecycle.cleanup(store, scan, grace=timedelta(hours=48))
    assert result.cleaned == [] and store.exists(in_flight)
    lifecycle.apply_plan(store, scan, lifecycle.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW))
    assert store.exists(in_flight)


def test_unreadable_catalog_deletes_nothing(location: Location) -> None:
    store = Store(location)
    history(store, 4)
    bad = ids.backup_dir("db1", ids.new_backup_id(NOW - timedelta(days=30)))
    store.put_bytes(b"{not json", f"{bad}/{ids.MANIFEST_NAME}")
    scan = catalog.scan_location(location)
    with pytest.raises(RetentionError, match="nothing is deleted"):
        lifecycle.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW)
    assert len(ids_at(location)) == 4


def test_locked_objects_are_reported_not_crashed(local_location: Location, monkeypatch: Any) -> None:
    store = Store(local_location)
    made = history(store, 3)
    locked_id = sorted(made)[0]
    real_delete = store.delete

    def delete(key: str) -> None:
        if locked_id in key:
            raise StorageError(f"location 'local': delete {key} failed: permission denied or read-only (object lock)")
        real_delete(key)

    monkeypatch.setattr(store, "delete", delete)
    scan = catalog.scan_location(local_location)
    result = lifecycle.apply_plan(store, scan, lifecycle.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW))
    assert result.locked == [locked_id]
    assert locked_id in ids_at(local_location)  # still a complete backup


def test_empty_or_nonsense_policy_is_refused() -> None:
    with pytest.raises(RetentionError):
        RetentionPolicy().require_rules()
    with pytest.raises(RetentionError):
        RetentionPolicy.from_mapping({"keep_daly": 3})
