"""What is stored at the locations: backups (manifests), binlog archives, restore
certificates, and everything that is not a backup (garbage for cleanup).

Rules:

* Anything without a manifest is not a backup. An unreadable manifest is reported (and makes
  retention refuse to delete anything at that location), never silently skipped.
* Nothing a location says about itself is trusted. Every listed key passes ``layout.check_key``
  (symbolic links and special files at a local location are refused by the storage adapter);
  every manifest is validated when read (``manifest.validate_*``) and must name the server and
  backup id (or binlog file) of the directory it was found in. A manifest that fails is an
  *unusable copy* with its reason (in ``unusable`` and ``errors``), never a backup that restore
  could use.
* Copies are grouped by the location they were FOUND at: a manifest's or certificate's own
  ``location`` field is replaced by that location (a manifest copied from A to B counts at B).
* A copy whose manifest lists a file that is not there is *damaged*; a copy is *proven* only by
  a restore certificate that passed (:func:`verdicts`, ``manifest.copy_verdicts``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops import layout
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, ManifestError, MysqlopsError, StorageError
from mysqlops.manifest import BackupManifest, BinlogManifest, RestoreCertificate, Verdict, copy_verdicts
from mysqlops.model import Location
from mysqlops.pins import PinMarker


@dataclass(frozen=True)
class UnusableCopy:
    """A backup or binlog manifest found at a location and refused, with the reason."""

    key: str
    server: str | None
    backup_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"unusable copy {self.key!r}: {self.reason}"


@dataclass
class LocationScan:
    """Everything found at one location."""

    location: Location
    backups: list[BackupManifest] = field(default_factory=list)
    binlogs: list[BinlogManifest] = field(default_factory=list)
    certificates: list[RestoreCertificate] = field(default_factory=list)
    pins: list[PinMarker] = field(default_factory=list)  # pin/unpin markers (pins.py)
    data_keys: dict[str, list[str]] = field(default_factory=dict)  # backup dir -> its keys
    binlog_keys: dict[str, list[str]] = field(default_factory=dict)  # binlog file -> its keys
    orphans: list[str] = field(default_factory=list)  # data without a manifest: not a backup
    temporary: list[str] = field(default_factory=list)  # .tmp-* objects
    # unreadable or unusable manifests, refused entries, listing failures: retention deletes nothing
    errors: list[str] = field(default_factory=list)
    unusable: list[UnusableCopy] = field(default_factory=list)  # manifests refused (also in errors)
    damaged: dict[str, str] = field(default_factory=dict)  # backup dir -> why (files missing)
    notes: list[str] = field(default_factory=list)  # claims of the location overridden, for the log

    @property
    def readable(self) -> bool:
        return not self.errors


def _refuse(scan: LocationScan, key: str, server: str | None, backup_id: str | None, reason: str) -> None:
    copy = UnusableCopy(key, server, backup_id, reason)
    scan.unusable.append(copy)
    scan.errors.append(str(copy))


def scan_location(location: Location, store: Store | None = None) -> LocationScan:
    store = store or Store(location)
    scan = LocationScan(location)
    refused: list[str] = []
    try:
        keys = store.list_keys(refused=refused)
    except StorageError as exc:
        scan.errors.append(str(exc))
        return scan
    tainted: dict[str, list[str]] = {}  # backup dir -> refused entries inside it
    for key in refused:
        scan.errors.append(
            f"refused entry {key!r:.160}: a symbolic link, special file or a name that escapes its prefix; "
            "nothing is read, restored or deleted through it (remove it by hand after checking who made it)"
        )
        directory = layout.backup_dir_of(key)
        if directory is not None:
            tainted.setdefault(directory, []).append(key)
    backup_dirs: dict[str, list[str]] = {}
    binlog_files: dict[str, list[str]] = {}
    for key in keys:
        place, group = layout.place_of(key)
        if place == "temporary":
            scan.temporary.append(key)
        elif place == "backup" and group:
            backup_dirs.setdefault(group, []).append(key)
        elif place == "binlog" and group:
            binlog_files.setdefault(group, []).append(key)
        else:
            scan.orphans.append(key)
    for directory in sorted(tainted.keys() - backup_dirs.keys()):
        server, backup_id = layout.split_backup_dir(directory)
        _refuse(scan, directory, server, backup_id, f"holds refused entries {tainted[directory][:3]!r:.200}")
    for directory, members in sorted(backup_dirs.items()):
        _scan_backup_dir(scan, store, directory, members, tainted.get(directory))
    for name, members in sorted(binlog_files.items()):
        json_keys = [k for k in members if layout.is_binlog_manifest_key(k)]
        if not json_keys:
            scan.orphans.extend(members)
            continue
        server, _, stem = name.partition("/")
        try:
            binlog = BinlogManifest.from_json(store.read_bytes(json_keys[0]))
        except (ManifestError, StorageError) as exc:
            _refuse(scan, json_keys[0], server, stem, str(exc))
            continue
        if binlog.server != server or binlog.file != stem:
            _refuse(
                scan,
                json_keys[0],
                server,
                stem,
                f"the manifest names server {binlog.server!r} and binlog {binlog.file!r}, not the "
                f"{server!r}/{stem!r} it was found as",
            )
            continue
        scan.binlogs.append(_found_at(scan, binlog, json_keys[0]))
        scan.binlog_keys[name] = members
    scan.backups.sort(key=lambda m: (m.server, m.backup_id))
    return scan


def _found_at(scan: LocationScan, item: Any, key: str) -> Any:
    """``item`` with ``location`` = where it was found (its own claim is noted, not trusted)."""
    name = scan.location.name
    if item.location == name:
        return item
    scan.notes.append(
        f"{key}: says location {str(item.location)!r:.80}, found at {name!r}: counted at {name!r}"
    )
    return dataclasses.replace(item, location=name)


def _scan_backup_dir(
    scan: LocationScan, store: Store, directory: str, members: list[str], tainted: list[str] | None
) -> None:
    server, backup_id = layout.split_backup_dir(directory)
    manifest_key = layout.manifest_key(server, backup_id)
    if manifest_key not in members:
        scan.orphans.extend(members)
        return
    if tainted:
        _refuse(
            scan, manifest_key, server, backup_id, f"its directory holds refused entries {tainted[:3]!r:.200}"
        )
        return
    try:
        manifest = BackupManifest.from_json(store.read_bytes(manifest_key))
    except (ManifestError, StorageError) as exc:
        _refuse(scan, manifest_key, server, backup_id, str(exc))
        return
    if manifest.server != server or manifest.backup_id != backup_id:
        _refuse(
            scan,
            manifest_key,
            server,
            backup_id,
            f"the manifest names server {manifest.server!r} and backup {manifest.backup_id!r}, not the directory "
            "it was found in",
        )
        return
    manifest = _found_at(scan, manifest, manifest_key)
    present = set(members)
    missing = [f.path for f in manifest.files if layout.data_key(server, backup_id, f.path) not in present]
    if missing:
        scan.damaged[directory] = f"file(s) listed by the manifest are missing: {', '.join(missing[:5])}"
    scan.backups.append(manifest)
    scan.data_keys[directory] = members
    for key in members:
        if key.rsplit("/", 1)[-1].startswith(layout.PIN_PREFIX):
            _scan_pin(scan, store, key, server, backup_id)
            continue
        if not layout.is_certificate_key(key):
            continue
        try:
            cert = RestoreCertificate.from_json(store.read_bytes(key))
        except (ManifestError, StorageError) as exc:
            # an unreadable certificate may be a FAILED test: fail closed, never ignore it
            scan.errors.append(f"unreadable restore certificate {key}: {exc}")
            continue
        if cert.server != server or cert.backup_id != backup_id:
            scan.errors.append(
                f"restore certificate {key} is about {cert.server}/{cert.backup_id}, not the backup it sits next "
                "to: ignored (remove it)"
            )
            continue
        scan.certificates.append(_found_at(scan, cert, key))


def _scan_pin(scan: LocationScan, store: Store, key: str, server: str, backup_id: str) -> None:
    """A pin/unpin marker next to a manifest; unreadable or misplaced: the catalog is not
    fully readable (an unpin must never be ignored silently, nor a pin)."""
    if not layout.is_pin_marker(key.rsplit("/", 1)[-1]):
        scan.errors.append(f"{key}: not a pin marker name mysqlops writes (pin-<time>-<hex>.json): remove it")
        return
    try:
        marker = PinMarker.from_json(store.read_bytes(key), key, scan.location.name)
    except (ManifestError, StorageError) as exc:
        scan.errors.append(f"unreadable pin marker {key}: {exc}")
        return
    if marker.server != server or marker.backup_id != backup_id:
        scan.errors.append(
            f"pin marker {key} is about {marker.server}/{marker.backup_id}, not the backup it sits next to: "
            "remove it"
        )
        return
    scan.pins.append(marker)


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


def verdicts(scans: Sequence[LocationScan]) -> dict[tuple[str, str, str], Verdict]:
    """The restore-test verdict of every copy found, keyed by ``(location, server,
    backup_id)`` (``manifest.copy_verdicts`` over every location; a damaged copy, whose
    manifest lists files that are missing, is DAMAGED whatever its certificates say)."""
    result = copy_verdicts([m for s in scans for m in s.backups], [c for s in scans for c in s.certificates])
    for s in scans:
        for m in s.backups:
            if layout.backup_dir(m.server, m.backup_id) in s.damaged:
                result[(s.location.name, m.server, m.backup_id)] = Verdict.DAMAGED
    return result


def unusable_copies(
    scans: Sequence[LocationScan], server: str | None = None, backup_id: str | None = None
) -> list[str]:
    """``location: unusable copy ...: reason`` for refused manifests (of ``server`` /
    ``backup_id`` when given; a copy whose server could not be read counts for every server)."""
    return [
        f"{s.location.name}: {u}"
        for s in scans
        for u in s.unusable
        if (server is None or u.server in (server, None))
        and (backup_id is None or u.backup_id in (backup_id, None))
    ]


ROW_COLUMNS = [
    "backup_id",
    "server",
    "location",
    "kind",
    "method",
    "status",
    "verdict",
    "proven",
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


def backups_rows(scans: Sequence[LocationScan]) -> list[dict[str, Any]]:
    """One row per backup copy (for a DataFrame or a table artifact), by the location it was
    found at. ``verdict``/``proven``: what restore tests say (``verdicts``); ``status`` is the
    manifest's, except ``damaged`` (files missing) and ``restore-test-failed`` (its newest
    restore test FAILED): such copies are never shown as complete. Refused manifests are rows
    with status ``unusable: <reason>``."""
    found = verdicts(scans)
    rows: list[dict[str, Any]] = []
    for s in scans:
        for m in s.backups:
            verdict = found.get((s.location.name, m.server, m.backup_id), Verdict.UNTESTED)
            status = m.status.value
            if verdict is Verdict.DAMAGED:
                status = "damaged"
            elif verdict is Verdict.FAILED:
                status = "restore-test-failed"
            rows.append(
                {
                    "backup_id": m.backup_id,
                    "server": m.server,
                    "location": s.location.name,
                    "kind": m.kind.value,
                    "method": m.method.value,
                    "status": status,
                    "verdict": verdict.value,
                    "proven": verdict.proven and m.status.value == "complete",
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
        for u in s.unusable:
            if layout.is_binlog_manifest_key(u.key):
                continue  # binlog manifests are not backups
            rows.append(
                dict.fromkeys(ROW_COLUMNS)
                | {
                    "backup_id": u.backup_id,
                    "server": u.server,
                    "location": s.location.name,
                    "status": f"unusable: {u.reason}"[:500],
                    "verdict": "unusable",
                    "proven": False,
                }
            )
    return rows


def backups_frame(scans: Sequence[LocationScan]) -> Any:
    """Backups across locations as a pandas DataFrame (one row per copy, with its verdict)."""
    import pandas as pd

    frame = pd.DataFrame(backups_rows(scans), columns=ROW_COLUMNS)
    return frame.sort_values(["server", "backup_id", "location"]).reset_index(drop=True)
