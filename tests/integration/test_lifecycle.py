"""Retention applied to real locations (local dir + S3 endpoint): order, crash, in-flight, locks."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mysqlops import catalog, layout
from mysqlops.adapters.storage import Store
from mysqlops.errors import RetentionError, StorageError
from mysqlops.manifest import BackupFile, BackupManifest, Check, Verdict
from mysqlops.model import BackupKind, BackupMethod, Location, ObjectCounts
from mysqlops.report import Catalog, LocationInfo, build_report
from mysqlops.restore import certificate_key
from mysqlops.restore.verify import make_certificate
from mysqlops.retention import RetentionPolicy, deletes

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest) -> Location:
    return request.getfixturevalue(f"{request.param}_location")


def certify(store: Store, manifest: BackupManifest, passed: bool = True, at: datetime | None = None) -> None:
    """A restore certificate for the copy at ``store`` (as the restore-test flow writes it)."""
    at = at or manifest.finished_at + timedelta(hours=1)
    cert = make_certificate(
        manifest, store.location.name, [Check("restored", passed)], {}, "mariadb 10.11", (), at
    )
    store.put_bytes(cert.to_json().encode(), certificate_key(manifest, store.location.name, at))


def put_backup(
    store: Store, when: datetime, server: str = "db1", data: bytes = b"x" * 1000, proven: bool = True
) -> str:
    backup_id = layout.new_backup_id(when)
    directory = layout.backup_dir(server, backup_id)
    store.put_bytes(data, f"{directory}/shop.sql.zst")
    digest = hashlib.sha256(data).hexdigest()
    manifest = BackupManifest(
        backup_id=backup_id,
        server=server,
        location=store.location.name,
        kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL,
        flavor="mariadb",
        server_version="10.11.19",
        databases=("shop",),
        files=(
            BackupFile("shop.sql.zst", "shop", len(data) * 3, digest, len(data), digest, ObjectCounts(1)),
        ),
        started_at=when - timedelta(minutes=5),
        finished_at=when,
        compression="zstd-3",
    )
    store.put_bytes(manifest.to_json().encode(), f"{directory}/{layout.MANIFEST_NAME}")
    if proven:
        certify(store, manifest)
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
    plan = deletes.plan_for_scan(scan, policy, NOW)
    assert len(plan.keep) == 3 and len(plan.delete) == 7
    assert ids_at(location) == sorted(made)  # planning deletes nothing
    result = deletes.apply_plan(store, scan, plan)
    assert sorted(result.deleted) == sorted(d.record.backup_id for d in plan.delete)
    assert ids_at(location) == sorted(made)[-3:]
    assert catalog.scan_location(location).orphans == []  # data went with the manifests
    # applying the same policy again changes nothing
    again = deletes.plan_for_scan(catalog.scan_location(location), policy, NOW)
    assert again.delete == []


def test_crash_between_manifest_and_data_leaves_garbage_not_a_backup(location: Location) -> None:
    store = Store(location)
    history(store, 5)
    scan = catalog.scan_location(location)
    plan = deletes.plan_for_scan(scan, RetentionPolicy(keep_last=2), NOW)

    def crash(backup_id: str) -> None:
        raise RuntimeError(f"power cut after deleting the manifest of {backup_id}")

    with pytest.raises(RuntimeError):
        deletes.apply_plan(store, scan, plan, after_manifest_deleted=crash)
    after = catalog.scan_location(location)
    assert len(after.backups) == 4  # the half-deleted one is no longer a backup
    assert len({k.rsplit("/", 1)[0] for k in after.orphans}) == 1  # its data (and certificate) are garbage
    # the next run finishes: the plan deletes the rest, cleanup removes the garbage (old enough)
    deletes.apply_plan(store, after, deletes.plan_for_scan(after, RetentionPolicy(keep_last=2), NOW))
    deletes.cleanup(
        store, catalog.scan_location(location), timedelta(0), datetime.now(UTC) + timedelta(seconds=5)
    )
    final = catalog.scan_location(location)
    assert len(final.backups) == 2 and final.orphans == [] and final.temporary == []


def test_backup_in_flight_survives_cleanup(location: Location) -> None:
    store = Store(location)
    history(store, 3)
    in_flight = f"{layout.backup_dir('db1', layout.new_backup_id())}/shop.sql.zst"
    store.put_bytes(b"being written", in_flight)  # data, no manifest yet
    scan = catalog.scan_location(location)
    assert in_flight in scan.orphans
    result = deletes.cleanup(store, scan, grace=timedelta(hours=48))
    assert result.cleaned == [] and store.exists(in_flight)
    deletes.apply_plan(store, scan, deletes.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW))
    assert store.exists(in_flight)


def test_unreadable_catalog_deletes_nothing(location: Location) -> None:
    store = Store(location)
    history(store, 4)
    bad = layout.backup_dir("db1", layout.new_backup_id(NOW - timedelta(days=30)))
    store.put_bytes(b"{not json", f"{bad}/{layout.MANIFEST_NAME}")
    scan = catalog.scan_location(location)
    with pytest.raises(RetentionError, match="nothing is deleted"):
        deletes.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW)
    assert len(ids_at(location)) == 4


def test_locked_objects_are_reported_not_crashed(local_location: Location, monkeypatch: Any) -> None:
    store = Store(local_location)
    made = history(store, 3)
    locked_id = sorted(made)[0]
    real_delete = store.delete

    def delete(key: str) -> None:
        if locked_id in key:
            raise StorageError(
                f"location 'local': delete {key} failed: permission denied or read-only (object lock)"
            )
        real_delete(key)

    monkeypatch.setattr(store, "delete", delete)
    scan = catalog.scan_location(local_location)
    result = deletes.apply_plan(store, scan, deletes.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW))
    assert result.locked == [locked_id]
    assert locked_id in ids_at(local_location)  # still a complete backup


def test_empty_or_nonsense_policy_is_refused() -> None:
    with pytest.raises(RetentionError):
        RetentionPolicy().require_rules()
    with pytest.raises(RetentionError):
        RetentionPolicy.from_mapping({"keep_daly": 3})


def put_copies(stores: list[Store], when: datetime, certified_at: tuple[str, ...] = ()) -> BackupManifest:
    """One backup with an identical copy at every store; certificates only where named."""
    backup_id = layout.new_backup_id(when)
    data = hashlib.sha256(backup_id.encode()).digest() * 40
    digest = hashlib.sha256(data).hexdigest()
    manifest = BackupManifest(
        backup_id=backup_id,
        server="db1",
        location="",
        kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL,
        flavor="mariadb",
        server_version="10.11.19",
        databases=("shop",),
        files=(
            BackupFile("shop.sql.zst", "shop", len(data) * 3, digest, len(data), digest, ObjectCounts(1)),
        ),
        started_at=when - timedelta(minutes=5),
        finished_at=when,
        compression="zstd-3",
    )
    directory = layout.backup_dir("db1", backup_id)
    for store in stores:
        copy = dataclasses.replace(manifest, location=store.location.name)
        store.put_bytes(data, f"{directory}/shop.sql.zst")
        store.put_bytes(copy.to_json().encode(), f"{directory}/{layout.MANIFEST_NAME}")
        if store.location.name in certified_at:
            certify(store, copy)
    return manifest


def test_retention_without_proven_backup_deletes_nothing(location: Location) -> None:
    store = Store(location)
    made = [put_backup(store, NOW - timedelta(days=d), proven=False) for d in range(5)]
    scan = catalog.scan_location(location)
    plan = deletes.plan_for_scan(scan, RetentionPolicy(keep_last=1), NOW)
    assert plan.delete == [] and len(plan.refused) == 1
    assert "no backup of 'db1'" in plan.refused[0] and "restore-test" in plan.refused[0]
    deletes.apply_plan(store, scan, plan)
    assert ids_at(location) == sorted(made)


def test_a_failed_newer_certificate_demotes_a_copy(location: Location) -> None:
    store = Store(location)
    made = [put_backup(store, NOW - timedelta(days=d)) for d in (4, 3, 2, 1)]  # all proven once
    scan = catalog.scan_location(location)
    for m in scan.backups:
        if m.backup_id in made[2:]:  # then the two newest FAILED a later restore test
            certify(store, m, passed=False, at=m.finished_at + timedelta(hours=5))
    scan = catalog.scan_location(location)
    plan = deletes.plan_for_scan(scan, RetentionPolicy(keep_last=1, min_redundancy=1), NOW)
    decisions = {d.record.backup_id: d for d in plan.decisions}
    assert "newest proven backup" in decisions[made[1]].reasons
    assert [d.record.backup_id for d in plan.delete] == [made[0]]
    assert all("restore-test-failed" in decisions[b].flags for b in made[2:])
    deletes.apply_plan(store, scan, plan)
    assert ids_at(location) == sorted(made[1:])


def test_a_certificate_proves_the_identical_copy_at_another_location(
    local_location: Location, s3_location: Location
) -> None:
    stores = [Store(local_location), Store(s3_location)]
    made = [put_copies(stores, NOW - timedelta(days=d), certified_at=("local",)) for d in (3, 2, 1)]
    scans = catalog.scan([local_location, s3_location])
    verdicts = catalog.verdicts(scans)
    assert {v for (loc, _, _), v in verdicts.items() if loc == "s3"} == {Verdict.PROVEN_BY_COPY}
    s3_scan = scans[1]
    alone = deletes.plan_for_scan(s3_scan, RetentionPolicy(keep_last=1), NOW)  # only its own certificates
    assert alone.delete == [] and alone.refused
    together = deletes.plan_for_scan(s3_scan, RetentionPolicy(keep_last=1), NOW, verdicts=verdicts)
    assert together.refused == () and [d.record.backup_id for d in together.keep] == [made[-1].backup_id]


def test_catalog_counts_copies_where_they_were_found(local_location: Location, s3_location: Location) -> None:
    """A manifest (and certificate) copied from location A to B counts under B, whatever it
    says; a copy whose data file is missing is damaged, never shown as complete."""
    local, s3 = Store(local_location), Store(s3_location)
    backup_id = put_backup(local, NOW - timedelta(days=1))
    directory = layout.backup_dir("db1", backup_id)
    for key in local.list_keys(directory):  # copied by hand, claims and all
        s3.put_bytes(local.read_bytes(key), key)
    scans = catalog.scan([local_location, s3_location])
    (copy,) = scans[1].backups
    (cert,) = scans[1].certificates
    assert copy.location == "s3" and cert.location == "s3"
    assert any("says location 'local'" in n for n in scans[1].notes)
    assert {v for v in catalog.verdicts(scans).values()} == {Verdict.PASSED}
    cat = Catalog(
        backups=[m for s in scans for m in s.backups],
        certificates=[c for s in scans for c in s.certificates],
        locations=[LocationInfo("local", "local"), LocationInfo("s3", "s3", offsite=True)],
    )
    report = build_report(cat, NOW)
    row = report.locations.iloc[0]
    assert row["newest_copies"] == 2 and row["newest_offsite"]
    plan = deletes.plan_for_scan(scans[1], RetentionPolicy(keep_last=1), NOW)
    assert {d.record.location for d in plan.decisions} == {"s3"}
    # damaged: the data file is gone at s3
    s3.delete(f"{directory}/shop.sql.zst")
    scans = catalog.scan([local_location, s3_location])
    assert catalog.verdicts(scans)[("s3", "db1", backup_id)] is Verdict.DAMAGED
    rows = {r["location"]: r for r in catalog.backups_rows(scans)}
    assert rows["s3"]["status"] == "damaged" and rows["s3"]["proven"] is False
    assert rows["local"]["status"] == "complete" and rows["local"]["proven"] is True
