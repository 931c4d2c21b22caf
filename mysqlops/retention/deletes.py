"""Apply retention plans to a location, and clean up what is not a backup.

Order of deletion (the manifest is the commit marker): a backup's manifest first, then its
data; a crash halfway leaves garbage (data without a manifest), never a broken backup that
still looks complete, and the next run's cleanup finishes the job. Cleanup removes temporary
objects, data without a manifest and stale multipart uploads only when they are older than a
grace period, so a backup still being written is never touched. An unreadable catalog
deletes nothing. An object the storage refuses to delete is reported as "kept: locked".

Only proven backups count (``catalog.verdicts``: a restore certificate that passed, found at
any of the locations scanned for a copy with the same files); a location where a server has
backups but none proven keeps everything of that server (``RetentionPlan.refused``), and
cleanup does not run there either. Every key deleted passes ``layout.check_key`` again.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mysqlops import catalog, layout
from mysqlops.adapters.storage import Store
from mysqlops.catalog import LocationScan
from mysqlops.errors import RetentionError, StorageError
from mysqlops.manifest import Verdict
from mysqlops.model import BackupKind
from mysqlops.pins import pinned_backups
from mysqlops.retention.plan import RetentionPlan, plan
from mysqlops.retention.policy import RetentionPolicy


def plan_for_scan(
    scan: LocationScan,
    policy: RetentionPolicy,
    now: datetime,
    servers: Sequence[str] | None = None,
    verdicts: Mapping[tuple[str, str, str], Verdict] | None = None,
    pinned: Collection[tuple[str, str]] | None = None,
) -> RetentionPlan:
    """The retention plan of one location; refuses (deletes nothing) if its catalog is unreadable.

    ``verdicts`` (``catalog.verdicts`` over every location, so a certificate written at one
    location proves an identical copy at another) decide which backups are proven; by default
    only this location's certificates count. ``plan.refused`` lists the servers with backups
    here but none proven: nothing of theirs is deleted. ``pinned``: ``(server, backup_id)`` of
    the backups pinned (``pins.pinned_backups`` over every location; by default this location's
    markers decide): they are kept whatever the policy says."""
    if scan.errors:
        raise RetentionError(
            f"location {scan.location.name!r}: the catalog is not fully readable, so nothing is deleted there: "
            + "; ".join(scan.errors[:5])
        )
    policy.require_rules()
    found = verdicts if verdicts is not None else catalog.verdicts([scan])
    pins = pinned if pinned is not None else pinned_backups([scan]).keys()
    records = []
    for m in scan.backups:
        verdict = found.get((scan.location.name, m.server, m.backup_id), Verdict.UNTESTED)
        record = m.to_record(proven=verdict.proven, verdict=verdict.value)
        if (m.server, m.backup_id) in pins:
            record = dataclasses.replace(record, pinned=True)
        records.append(record)
    records += [b.to_record() for b in scan.binlogs]
    if servers:
        records = [r for r in records if r.server in servers]
    return plan(records, policy, now)


@dataclass
class ApplyResult:
    location: str
    deleted: list[str] = field(default_factory=list)  # backup ids / binlog files
    locked: list[str] = field(default_factory=list)  # storage refused: kept
    failed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    cleaned: list[str] = field(default_factory=list)  # garbage keys removed
    aborted_uploads: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return (
            [{"location": self.location, "item": d, "action": "deleted"} for d in self.deleted]
            + [{"location": self.location, "item": d, "action": "kept: locked"} for d in self.locked]
            + [{"location": self.location, "item": d, "action": "FAILED"} for d in self.failed]
            + [
                {"location": self.location, "item": k, "action": "cleaned (not a backup)"}
                for k in self.cleaned
            ]
        )


def _is_locked(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        w in text
        for w in ("permission", "accessdenied", "access denied", "objectlock", "object lock", "read-only")
    )


def _delete_keys(store: Store, keys: Sequence[str]) -> None:
    for key in keys:
        store.delete(layout.check_key(key))


def apply_plan(
    store: Store,
    scan: LocationScan,
    retention: RetentionPlan,
    *,
    after_manifest_deleted: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Delete what ``retention`` says, manifest first. ``after_manifest_deleted`` is a test hook."""
    result = ApplyResult(store.location.name)
    for decision in retention.delete:
        rec = decision.record
        if rec.kind is BackupKind.BINLOG:
            keys = scan.binlog_keys.get(f"{rec.server}/{rec.backup_id}", [])
            manifest = [k for k in keys if k.endswith(".json")]
        else:
            keys = scan.data_keys.get(layout.backup_dir(rec.server, rec.backup_id), [])
            manifest = [layout.manifest_key(rec.server, rec.backup_id)]
        data = [k for k in keys if k not in manifest]
        try:
            _delete_keys(store, manifest)  # the commit marker first: from here on it is garbage
        except StorageError as exc:
            (result.locked if _is_locked(exc) else result.failed).append(rec.backup_id)
            continue
        if after_manifest_deleted:
            after_manifest_deleted(rec.backup_id)
        try:
            _delete_keys(store, data)
        except StorageError as exc:
            # the backup is gone (no manifest); its data is garbage the next cleanup retries
            (result.locked if _is_locked(exc) else result.failed).append(f"{rec.backup_id} (data)")
        result.deleted.append(rec.backup_id)
        result.bytes_freed += rec.stored_bytes
    return result


def cleanup(
    store: Store,
    scan: LocationScan,
    grace: timedelta,
    now: datetime | None = None,
    result: ApplyResult | None = None,
) -> ApplyResult:
    """Remove temporary objects, data without a manifest and stale multipart uploads older
    than ``grace`` (a backup being written is younger than that and is left alone)."""
    now = now or datetime.now(UTC)
    result = result or ApplyResult(store.location.name)
    for key in [*scan.temporary, *scan.orphans]:
        if key.startswith("reports/"):
            continue  # report outputs live next to backups; they are not garbage
        try:
            modified = store.modified(key)
        except StorageError:
            continue
        if modified is None or now - modified < grace:
            continue
        try:
            store.delete(key)
            result.cleaned.append(key)
        except StorageError as exc:
            (result.locked if _is_locked(exc) else result.failed).append(key)
    with contextlib.suppress(StorageError):
        result.aborted_uploads = store.abort_stale_uploads(grace, now)
    return result
