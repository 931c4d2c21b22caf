"""Manifests: the commit marker of a backup, binlog archive or restore certificate.

A manifest is written last, after every data file it lists is stored and verified. Anything
without a manifest is not a backup. The JSON is versioned (``schema``); readers refuse a
schema they do not know instead of guessing.

A manifest read from a location is not trusted: ``from_json`` validates every field that
names a file, server, backup id or binlog file (``ids.check_key`` and friends) and refuses
duplicate file names, so a hostile manifest is an unusable copy with a clear reason, never
a path outside the backup's directory.

A manifest proves only that an upload finished. A backup copy is *proven* by a restore
certificate that PASSED (:func:`copy_verdicts`): the newest certificate of a copy decides.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mysqlops import layout
from mysqlops.errors import ManifestError, UnsafePath
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
class Section:
    """One section of a stored file, compressed on its own (one zstd frame / gzip member).

    ``offset``/``length``: where its compressed bytes are in the file's compressed stream; for
    an unencrypted file these are the stored bytes, for an encrypted one the plaintext of the
    encryption chunks ``offset // C .. (offset + length - 1) // C`` (chunk size C from the
    file's header). ``sha256`` is over those compressed bytes. ``raw_offset``/``raw_bytes``:
    where its dump text is in the file's uncompressed stream."""

    offset: int
    length: int
    raw_offset: int
    raw_bytes: int
    sha256: str


@dataclass(frozen=True)
class TableSections:
    """Where one table's parts are in a logical backup file (see :class:`Section`)."""

    table: str
    structure: Section | None = None
    data: Section | None = None
    triggers: Section | None = None

    @property
    def raw_bytes(self) -> int:
        return sum(s.raw_bytes for s in (self.structure, self.data, self.triggers) if s)


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
    # per table: its sections, each compressed on its own (absent in backups made before)
    table_index: tuple[TableSections, ...] = ()


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

    @property
    def fingerprint(self) -> str:
        """sha256 over the name, size and sha256 of every stored file: two copies with the same
        fingerprint hold the same bytes, so a restore test of one proves the other."""
        digest = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            digest.update(f"{f.path}\0{f.stored_bytes}\0{f.stored_sha256}\n".encode())
        return digest.hexdigest()

    def to_record(self, *, proven: bool, verdict: str = "") -> BackupRecord:
        """The retention/report row of this copy. ``proven``: a restore certificate that
        PASSED covers it (see :func:`copy_verdicts`); a manifest alone proves nothing."""
        coords = self.coordinates or self.source_coordinates
        return BackupRecord(
            backup_id=self.backup_id,
            server=self.server,
            location=self.location,
            kind=self.kind,
            method=self.method,
            created_at=self.finished_at,
            status=self.status,
            verified=proven and self.status is BackupStatus.COMPLETE,
            verdict=verdict,
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
        """Parse and validate (:func:`validate_backup_manifest`) a backup manifest."""
        doc = _load(text, BACKUP_SCHEMA)
        try:
            manifest = cls(
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
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"backup manifest is malformed: {exc!r}") from exc
        return validate_backup_manifest(manifest)


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
        """Parse and validate (:func:`validate_binlog_manifest`) a binlog manifest."""
        doc = _load(text, BINLOG_SCHEMA)
        try:
            manifest = cls(
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
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"binlog manifest is malformed: {exc!r}") from exc
        return validate_binlog_manifest(manifest)


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
    fingerprint: str | None = None  # BackupManifest.fingerprint of the copy tested (None: older certificates)

    def to_json(self) -> str:
        doc = _plain(asdict(self))
        doc["schema"] = CERTIFICATE_SCHEMA
        doc["tested_at"] = utc_iso(self.tested_at)
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RestoreCertificate:
        doc = _load(text, CERTIFICATE_SCHEMA)
        try:
            cert = cls(
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
                fingerprint=doc.get("fingerprint"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"restore certificate is malformed: {exc!r}") from exc
        layout.check_server_name(cert.server)
        layout.check_backup_id(cert.backup_id, "certificate backup id")
        if not isinstance(cert.fingerprint, str | None):
            raise ManifestError("restore certificate is malformed: fingerprint is not a string")
        return cert


# --------------------------------------------------------------------------- validation


def _check_coordinates(coords: BinlogCoordinates | None, what: str) -> None:
    if coords is not None:
        layout.check_binlog_file_name(coords.file, f"{what} binlog file")


def validate_backup_manifest(m: BackupManifest) -> BackupManifest:
    """Every field of a backup manifest that names a file, server, backup id or binlog file is
    safe to build a key or a local path from; file names are unique. Raises
    :class:`UnsafePath` (a :class:`ManifestError`) naming the field and what is wrong."""
    layout.check_server_name(m.server)
    layout.check_backup_id(m.backup_id)
    if m.parent_id is not None:
        layout.check_backup_id(m.parent_id, "parent backup id")
    _check_coordinates(m.coordinates, "coordinates")
    _check_coordinates(m.source_coordinates, "source coordinates")
    databases = set()
    for name in m.databases:
        if not isinstance(name, str) or not name or len(name) > 64 or "\x00" in name:
            raise UnsafePath(f"database name {name!r:.80} in manifest {m.backup_id} is not a database name")
        if name in databases:
            raise UnsafePath(f"manifest {m.backup_id} lists database {name!r:.80} twice")
        databases.add(name)
    seen: set[str] = set()
    for f in m.files:
        layout.check_data_file_name(f.path)
        if f.path in seen:
            raise UnsafePath(
                f"manifest {m.backup_id} lists file {f.path!r} twice: a copy whose manifest names one file "
                "for two entries is refused"
            )
        seen.add(f.path)
        if f.database is not None and f.database not in databases:
            raise UnsafePath(
                f"file {f.path!r} of manifest {m.backup_id} is for a database the manifest does not list"
            )
        if f.stored_bytes < 0 or f.raw_bytes < 0:
            raise ManifestError(f"file {f.path!r} of manifest {m.backup_id} has a negative size")
        for t in f.table_index:
            for section in (t.structure, t.data, t.triggers):
                if section is not None and (
                    section.offset + section.length > f.stored_bytes
                    or section.raw_offset + section.raw_bytes > f.raw_bytes
                ):
                    raise ManifestError(
                        f"file {f.path!r} of manifest {m.backup_id}: a section of table {t.table!r:.80} lies "
                        "outside the file (corrupt or forged table index)"
                    )
        _check_coordinates(f.coordinates, f"file {f.path!r}")
    return m


def validate_binlog_manifest(m: BinlogManifest) -> BinlogManifest:
    """A binlog manifest's server, file and stored object are plain names of its directory."""
    layout.check_server_name(m.server)
    layout.check_binlog_file_name(m.file)
    layout.check_file_name(m.stored_path, "stored binlog name")
    own = m.stored_path == m.file or m.stored_path.startswith(m.file + ".")
    if not own or m.stored_path.endswith(".json"):
        raise UnsafePath(
            f"binlog manifest of {m.file}: stored_path {m.stored_path!r:.80} is not a stored copy of that file"
        )
    if m.stored_bytes < 0 or m.raw_bytes < 0:
        raise ManifestError(f"binlog manifest of {m.file} has a negative size")
    return m


# --------------------------------------------------------------------------- proof


class Verdict(StrEnum):
    """What restore tests say about one stored copy of a backup."""

    PASSED = "passed"  # its own newest restore certificate passed
    PROVEN_BY_COPY = "proven-by-copy"  # untested here; an identical copy (same fingerprint) passed
    FAILED = "failed"  # its own newest restore certificate FAILED: not proven, whatever other copies say
    DAMAGED = "damaged"  # files its manifest lists are missing at its location (set by the catalog)
    UNTESTED = "untested"  # no certificate for it or for an identical copy: a manifest proves no restore

    @property
    def proven(self) -> bool:
        return self in (Verdict.PASSED, Verdict.PROVEN_BY_COPY)


def newest_certificate(certificates: Iterable[RestoreCertificate]) -> RestoreCertificate | None:
    """The certificate that decides a copy's verdict: the newest; at the same time a failure."""
    best: RestoreCertificate | None = None
    for c in certificates:
        if best is None or (c.tested_at, not c.passed) > (best.tested_at, not best.passed):
            best = c
    return best


def verdict_of(certificates: Iterable[RestoreCertificate]) -> Verdict:
    """PASSED / FAILED by the newest of one copy's own certificates; UNTESTED without any."""
    newest = newest_certificate(certificates)
    if newest is None:
        return Verdict.UNTESTED
    return Verdict.PASSED if newest.passed else Verdict.FAILED


def copy_verdicts(
    copies: Iterable[BackupManifest], certificates: Iterable[RestoreCertificate]
) -> dict[tuple[str, str, str], Verdict]:
    """The verdict of every copy, keyed by ``(location, server, backup_id)``.

    ``location`` of each manifest and certificate must be where it was FOUND (the catalog sets
    it so; a location's own claim is never trusted). A copy's certificates are those found at
    its location for its server and backup id whose fingerprint is the copy's (or unknown, for
    certificates written before fingerprints). The newest of them decides; at the same time a
    failure wins. A copy without a certificate of its own is proven when another copy of the
    same backup with the same fingerprint passed."""
    copies = list(copies)
    prints = {(m.location, m.server, m.backup_id): m.fingerprint for m in copies}
    own: dict[tuple[str, str, str], list[RestoreCertificate]] = {}
    for c in certificates:
        key = (c.location, c.server, c.backup_id)
        if key not in prints or (c.fingerprint is not None and c.fingerprint != prints[key]):
            continue  # not about this copy's content
        own.setdefault(key, []).append(c)
    verdicts: dict[tuple[str, str, str], Verdict] = {}
    passed: set[tuple[str, str, str]] = set()
    for key, certs in own.items():
        verdicts[key] = verdict_of(certs)
        if verdicts[key] is Verdict.PASSED:
            passed.add((key[1], key[2], prints[key]))
    for m in copies:
        key = (m.location, m.server, m.backup_id)
        if key not in verdicts:
            identical = (m.server, m.backup_id, m.fingerprint) in passed
            verdicts[key] = Verdict.PROVEN_BY_COPY if identical else Verdict.UNTESTED
    return verdicts


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
        table_index=tuple(_table_sections(t) for t in doc.get("table_index") or ()),
    )


def _section(doc: dict[str, Any] | None) -> Section | None:
    if not doc:
        return None
    section = Section(
        offset=int(doc["offset"]),
        length=int(doc["length"]),
        raw_offset=int(doc["raw_offset"]),
        raw_bytes=int(doc["raw_bytes"]),
        sha256=str(doc["sha256"]),
    )
    if min(section.offset, section.length, section.raw_offset, section.raw_bytes) < 0:
        raise ValueError(f"negative offset or length in a table section: {section}")
    return section


def _table_sections(doc: dict[str, Any]) -> TableSections:
    return TableSections(
        table=str(doc["table"]),
        structure=_section(doc.get("structure")),
        data=_section(doc.get("data")),
        triggers=_section(doc.get("triggers")),
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
