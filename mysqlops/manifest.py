"""Manifests: the commit marker of a backup, binlog archive or restore certificate.

A manifest is written last, after every data file it lists is stored and verified. Anything
without a manifest is not a backup. The JSON is versioned (``schema``); readers refuse a
schema they do not know instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mysqlops.errors import ManifestError
from mysqlops.model import (
    BackupKind,
    BackupMethod,
    BackupRecord,
    BackupStatus,
    BinlogCoordinates,
    ObjectCounts,
    binlog_sequence,
)

BACKUP_SCHEMA = "mysqlops.backup/1"
BINLOG_SCHEMA = "mysqlops.binlog/1"
CERTIFICATE_SCHEMA = "mysqlops.restore-certificate/1"


def utc_iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ManifestError("refusing to write a naive datetime into a manifest")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_utc(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise ManifestError(f"bad timestamp {value!r} in manifest") from exc
    if parsed.tzinfo is None:
        raise ManifestError(f"timestamp {value!r} in manifest has no timezone")
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class TableStat:
    """Row count and content checksum of one table at the backup's consistent point."""

    table: str
    rows: int
    checksum: str | None = None
    lossy_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupFile:
    """One stored file of a backup (one database for a logical backup)."""

    path: str  # relative to the backup directory
    database: str | None
    raw_bytes: int
    raw_sha256: str
    stored_bytes: int
    stored_sha256: str
    counts: ObjectCounts | None = None
    tables: tuple[TableStat, ...] = ()
    durations: dict[str, float] = field(default_factory=dict)
    content_sha256: str | None = None  # statements without comments: comparable with a re-dump
    coordinates: BinlogCoordinates | None = None  # when databases were dumped at different points
    lossy_columns: tuple[str, ...] = ()  # FLOAT columns a logical dump rounds


@dataclass(frozen=True)
class BackupManifest:
    backup_id: str
    server: str
    location: str
    kind: BackupKind
    method: BackupMethod
    flavor: str
    server_version: str
    databases: tuple[str, ...]
    files: tuple[BackupFile, ...]
    started_at: datetime
    finished_at: datetime
    compression: str
    status: BackupStatus = BackupStatus.COMPLETE
    coordinates: BinlogCoordinates | None = None
    source_coordinates: BinlogCoordinates | None = None  # primary's, when dumped from a replica
    durations: dict[str, float] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    encryption_key_id: str | None = None
    parent_id: str | None = None
    lsn_from: int | None = None
    lsn_to: int | None = None
    keep_forever: bool = False
    # {database: {table: engine}}: tables a --single-transaction dump could not read in its
    # snapshot (MyISAM, Aria, MEMORY...); absent in manifests written before it was recorded
    non_transactional_tables: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_bytes(self) -> int:
        return sum(f.raw_bytes for f in self.files)

    @property
    def stored_bytes(self) -> int:
        return sum(f.stored_bytes for f in self.files)

    @property
    def counts(self) -> ObjectCounts:
        total = ObjectCounts()
        for f in self.files:
            if f.counts:
                total = total + f.counts
        return total

    @property
    def empty(self) -> bool:
        return self.raw_bytes == 0 or not self.databases

    def to_record(self, verified: bool = True) -> BackupRecord:
        coords = self.coordinates or self.source_coordinates
        return BackupRecord(
            backup_id=self.backup_id,
            server=self.server,
            location=self.location,
            kind=self.kind,
            method=self.method,
            created_at=self.finished_at,
            status=self.status,
            verified=verified and self.status is BackupStatus.COMPLETE,
            stored_bytes=self.stored_bytes,
            raw_bytes=self.raw_bytes,
            parent_id=self.parent_id,
            keep_forever=self.keep_forever,
            binlog_sequence=coords.sequence if coords else None,
            duration_seconds=(self.finished_at - self.started_at).total_seconds(),
            tags=self.tags,
        )

    def to_json(self) -> str:
        doc = _plain(asdict(self))
        doc["schema"] = BACKUP_SCHEMA
        doc["started_at"] = utc_iso(self.started_at)
        doc["finished_at"] = utc_iso(self.finished_at)
        doc["raw_bytes"] = self.raw_bytes
        doc["stored_bytes"] = self.stored_bytes
        doc["object_counts"] = self.counts.as_dict()
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> BackupManifest:
        doc = _load(text, BACKUP_SCHEMA)
        try:
            return cls(
                backup_id=doc["backup_id"],
                server=doc["server"],
                location=doc["location"],
                kind=BackupKind(doc["kind"]),
                method=BackupMethod(doc["method"]),
                flavor=doc["flavor"],
                server_version=doc["server_version"],
                databases=tuple(doc["databases"]),
                files=tuple(_file(f) for f in doc["files"]),
                started_at=parse_utc(doc["started_at"]),
                finished_at=parse_utc(doc["finished_at"]),
                compression=doc["compression"],
                status=BackupStatus(doc.get("status", "complete")),
                coordinates=_coords(doc.get("coordinates")),
                source_coordinates=_coords(doc.get("source_coordinates")),
                durations=dict(doc.get("durations") or {}),
                tools=dict(doc.get("tools") or {}),
                tags=tuple(doc.get("tags") or ()),
                warnings=tuple(doc.get("warnings") or ()),
                encryption_key_id=doc.get("encryption_key_id"),
                parent_id=doc.get("parent_id"),
                lsn_from=doc.get("lsn_from"),
                lsn_to=doc.get("lsn_to"),
                keep_forever=bool(doc.get("keep_forever", False)),
                non_transactional_tables={
                    str(d): {str(t): str(e) for t, e in dict(tables).items()}
                    for d, tables in dict(doc.get("non_transactional_tables") or {}).items()
                },
                extra=dict(doc.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"backup manifest is malformed: {exc!r}") from exc


@dataclass(frozen=True)
class BinlogManifest:
    """One archived binary log file."""

    server: str
    location: str
    file: str
    server_id: int
    server_uuid: str | None
    raw_bytes: int
    raw_sha256: str
    stored_path: str
    stored_bytes: int
    stored_sha256: str
    compression: str
    archived_at: datetime
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    gtid_start: str | None = None
    gtid_end: str | None = None
    encryption_key_id: str | None = None

    @property
    def sequence(self) -> int:
        return binlog_sequence(self.file)

    def to_record(self) -> BackupRecord:
        return BackupRecord(
            backup_id=self.file,
            server=self.server,
            location=self.location,
            kind=BackupKind.BINLOG,
            method=BackupMethod.BINLOG,
            created_at=self.last_event_at or self.archived_at,
            stored_bytes=self.stored_bytes,
            raw_bytes=self.raw_bytes,
            binlog_sequence=self.sequence,
        )

    def to_json(self) -> str:
        doc = _plain(asdict(self))
        doc["schema"] = BINLOG_SCHEMA
        doc["sequence"] = self.sequence
        for key in ("archived_at", "first_event_at", "last_event_at"):
            value = getattr(self, key)
            doc[key] = utc_iso(value) if value else None
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> BinlogManifest:
        doc = _load(text, BINLOG_SCHEMA)
        try:
            return cls(
                server=doc["server"],
                location=doc["location"],
                file=doc["file"],
                server_id=int(doc["server_id"]),
                server_uuid=doc.get("server_uuid"),
                raw_bytes=int(doc["raw_bytes"]),
                raw_sha256=doc["raw_sha256"],
                stored_path=doc["stored_path"],
                stored_bytes=int(doc["stored_bytes"]),
                stored_sha256=doc["stored_sha256"],
                compression=doc["compression"],
                archived_at=parse_utc(doc["archived_at"]),
                first_event_at=parse_utc(doc["first_event_at"]) if doc.get("first_event_at") else None,
                last_event_at=parse_utc(doc["last_event_at"]) if doc.get("last_event_at") else None,
                gtid_start=doc.get("gtid_start"),
                gtid_end=doc.get("gtid_end"),
                encryption_key_id=doc.get("encryption_key_id"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"binlog manifest is malformed: {exc!r}") from exc


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class RestoreCertificate:
    """Evidence that one stored copy of a backup restored to what was dumped."""

    backup_id: str
    server: str
    location: str
    tested_at: datetime
    passed: bool
    checks: tuple[Check, ...]
    durations: dict[str, float]
    source_version: str
    target_version: str
    recovery_point_seconds: float
    lossy: tuple[str, ...] = ()

    def to_json(self) -> str:
        doc = _plain(asdict(self))
        doc["schema"] = CERTIFICATE_SCHEMA
        doc["tested_at"] = utc_iso(self.tested_at)
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RestoreCertificate:
        doc = _load(text, CERTIFICATE_SCHEMA)
        try:
            return cls(
                backup_id=doc["backup_id"],
                server=doc["server"],
                location=doc["location"],
                tested_at=parse_utc(doc["tested_at"]),
                passed=bool(doc["passed"]),
                checks=tuple(Check(**c) for c in doc["checks"]),
                durations=dict(doc["durations"]),
                source_version=doc["source_version"],
                target_version=doc["target_version"],
                recovery_point_seconds=float(doc["recovery_point_seconds"]),
                lossy=tuple(doc.get("lossy") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"restore certificate is malformed: {exc!r}") from exc


def _load(text: str | bytes, schema: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"not a JSON manifest: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    found = doc.get("schema")
    if found != schema:
        raise ManifestError(f"unsupported manifest schema {found!r}; this mysqlops reads {schema!r}")
    return doc


def _coords(doc: dict[str, Any] | None) -> BinlogCoordinates | None:
    if not doc:
        return None
    return BinlogCoordinates(file=doc["file"], position=int(doc["position"]), gtid=doc.get("gtid"))


def _file(doc: dict[str, Any]) -> BackupFile:
    counts = doc.get("counts")
    return BackupFile(
        path=doc["path"],
        database=doc.get("database"),
        raw_bytes=int(doc["raw_bytes"]),
        raw_sha256=doc["raw_sha256"],
        stored_bytes=int(doc["stored_bytes"]),
        stored_sha256=doc["stored_sha256"],
        counts=ObjectCounts(**counts) if counts else None,
        tables=tuple(
            TableStat(t["table"], int(t["rows"]), t.get("checksum"), tuple(t.get("lossy_columns") or ()))
            for t in doc.get("tables") or ()
        ),
        durations=dict(doc.get("durations") or {}),
        content_sha256=doc.get("content_sha256"),
        coordinates=_coords(doc.get("coordinates")),
        lossy_columns=tuple(doc.get("lossy_columns") or ()),
    )


def _plain(value: Any) -> Any:
    """asdict() output made JSON-friendly: enums to values, datetimes to ISO, tuples to lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return utc_iso(value)
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value
