"""What is stored at the locations: backups (manifests), binlog archives, restore
certificates, and everything that is not a backup (garbage for cleanup).

Rule: anything without a manifest is not a backup. An unreadable manifest is reported (and
makes retention refuse to delete anything at that location), never silently skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops import ids
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, ManifestError, MysqlopsError, StorageError
from mysqlops.manifest import BackupManifest, BinlogManifest, RestoreCertificate
from mysqlops.model import Location

CERT_PREFIX = "restore-test-"


@dataclass
class LocationScan:
    """Everything found at one location."""

    location: Location
    backups: list[BackupManifest] = field(default_factory=list)
    binlogs: list[BinlogManifest] = field(default_factory=list)
    certificates: list[RestoreCertificate] = field(default_factory=list)
    data_keys: dict[str, list[str]] = field(default_factory=dict)  # backup dir -> its keys
    binlog_keys: dict[str, list[str]] = field(default_factory=dict)  # binlog file -> its keys
    orphans: list[str] = field(default_factory=list)  # data without a manifest: not a backup
    temporary: list[str] = field(default_factory=list)  # .tmp-* objects
    errors: list[str] = field(default_factory=list)  # unreadable manifests, listing failures

    @property
    def readable(self) -> bool:
        return not self.errors


def _classify(key: str) -> tuple[str, str, str] | None:
    """(server, area, rest) for ``<server>/<area>/<rest>``."""
    parts = key.split("/")
    if len(parts) < 3:
        return None
    return parts[0], parts[1], "/".join(parts[2:])


def scan_location(location: Location, store: Store | None = None) -> LocationScan:
    store = store or Store(location)
    scan = LocationScan(location)
    try:
        keys = store.list_keys()
    except StorageError as exc:
        scan.errors.append(str(exc))
        return scan
    backup_dirs: dict[str, list[str]] = {}
    binlog_files: dict[str, list[str]] = {}
    for key in keys:
        base = key.rsplit("/", 1)[-1]
        if base.startswith(ids.TMP_PREFIX):
            scan.temporary.append(key)
            continue
        parsed = _classify(key)
        if parsed is None:
            scan.orphans.append(key)
            continue
        server, area, rest = parsed
        if area == ids.BACKUPS_DIR and "/" in rest and ids.is_backup_id(rest.split("/", 1)[0]):
            backup_dirs.setdefault(f"{server}/{area}/{rest.split('/', 1)[0]}", []).append(key)
        elif area == ids.BINLOGS_DIR and "/" not in rest:
            stem = (
                rest[: -len(".json")]
                if rest.endswith(".json")
                else rest.rsplit(".", 1)[0]
                if rest.count(".") > 1
                else rest
            )
            binlog_files.setdefault(f"{server}/{stem}", []).append(key)
        else:
            scan.orphans.append(key)
    for directory, members in sorted(backup_dirs.items()):
        manifest_key = f"{directory}/{ids.MANIFEST_NAME}"
        if manifest_key not in members:
            scan.orphans.extend(members)
            continue
        try:
            manifest = BackupManifest.from_json(store.read_bytes(manifest_key))
        except (ManifestError, StorageError) as exc:
            scan.errors.append(f"{manifest_key}: {exc}")
            continue
        scan.backups.append(manifest)
        scan.data_keys[directory] = members
        for key in members:
            if key.rsplit("/", 1)[-1].startswith(CERT_PREFIX):
                with contextlib.suppress(ManifestError, StorageError):
                    scan.certificates.append(RestoreCertificate.from_json(store.read_bytes(key)))
    for name, members in sorted(binlog_files.items()):
        json_keys = [k for k in members if k.endswith(".json")]
        if not json_keys:
            scan.orphans.extend(members)
            continue
        try:
            scan.binlogs.append(BinlogManifest.from_json(store.read_bytes(json_keys[0])))
        except (ManifestError, StorageError) as exc:
            scan.errors.append(f"{json_keys[0]}: {exc}")
            continue
        scan.binlog_keys[name] = members
    scan.backups.sort(key=lambda m: (m.server, m.backup_id))
    return scan


def scan(locations: Sequence[Location]) -> list[LocationScan]:
    return [scan_location(loc) for loc in locations]


def find_backup(
    scans: Sequence[LocationScan], server: str | None, backup_id: str = "latest"
) -> list[tuple[Location, BackupManifest]]:
    """Copies of one backup, in the order of ``scans`` (the location preference order).

    ``latest``: the newest complete backup of ``server`` found anywhere.
    """
    if backup_id == "latest":
        if not server:
            raise ConfigError("backup_id='latest' needs the server name")
        candidates = [
            m for s in scans for m in s.backups if m.server == server and m.status.value == "complete"
        ]
        if not candidates:
            raise MysqlopsError(f"no complete backup of server {server!r} at any of the given locations")
        backup_id = max(
            candidates, key=lambda m: (m.finished_at, m.backup_id)
        ).backup_id  # ids: 1 s resolution
    copies = [
        (s.location, m)
        for s in scans
        for m in s.backups
        if m.backup_id == backup_id and (not server or m.server == server)
    ]
    if not copies:
        raise MysqlopsError(f"backup {backup_id!r} not found at locations {[s.location.name for s in scans]}")
    return copies


def backups_rows(scans: Sequence[LocationScan]) -> list[dict[str, Any]]:
    """One row per backup copy (for a DataFrame or a table artifact)."""
    rows = []
    for s in scans:
        for m in s.backups:
            rows.append(
                {
                    "backup_id": m.backup_id,
                    "server": m.server,
                    "location": s.location.name,
                    "kind": m.kind.value,
                    "method": m.method.value,
                    "status": m.status.value,
                    "finished_at": m.finished_at,
                    "databases": len(m.databases),
                    "raw_bytes": m.raw_bytes,
                    "stored_bytes": m.stored_bytes,
                    "compression": m.compression,
                    "binlog_file": m.coordinates.file if m.coordinates else None,
                    "binlog_position": m.coordinates.position if m.coordinates else None,
                    "gtid": m.coordinates.gtid if m.coordinates else None,
                    "tags": ",".join(m.tags),
                }
            )
    return rows


def backups_frame(scans: Sequence[LocationScan]) -> Any:
    """Complete backups across locations as a pandas DataFrame (one row per copy)."""
    import pandas as pd

    columns = [
        "backup_id",
        "server",
        "location",
        "kind",
        "method",
        "status",
        "finished_at",
        "databases",
        "raw_bytes",
        "stored_bytes",
        "compression",
        "binlog_file",
        "binlog_position",
        "gtid",
        "tags",
    ]
    frame = pd.DataFrame(backups_rows(scans), columns=columns)
    return frame.sort_values(["server", "backup_id", "location"]).reset_index(drop=True)
