"""Manifests: the commit marker of a backup, binlog archive or restore certificate.

A manifest is written last, after every data file it lists is stored and verified. Anything
without a manifest is not a backup. The JSON is versioned (``schema``); readers refuse a
schema they do not know instead of guessing.

A manifest read from a location is not trusted: ``from_json`` validates every field that
names a file, server, backup id or binlog file (``layout.check_key`` and friends) and refuses
duplicate file names, so a hostile manifest is an unusable copy with a clear reason, never
a path outside the backup's directory.

A manifest proves only that an upload finished. A backup copy is *proven* by a restore
certificate that PASSED (:func:`copy_verdicts`): the newest certificate of a copy decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mysqlops import layout
from mysqlops.errors import ConfigError, ManifestError, UnsafePath
from mysqlops.jsondoc import (
    BOOL,
    FLOAT,
    INT,
    MAP,
    RAW,
    TIME,
    Codec,
    Document,
    enum,
    json_as,
    nested,
    optional,
    plain,
    tuple_of,
)
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

COORDINATES = optional(nested(BinlogCoordinates))
STRINGS = tuple_of(RAW)
ENGINES = Codec(  # {database: {table: engine}}
    plain,
    lambda raw: {
        str(d): {str(t): str(e) for t, e in dict(tables).items()} for d, tables in dict(raw or {}).items()
    },
)


@dataclass(frozen=True)
class TableStat:
    """Row count and content checksum of one table at the backup's consistent point."""

    table: str
    rows: int = field(metadata=json_as(INT))
    checksum: str | None = None
    lossy_columns: tuple[str, ...] = field(default=(), metadata=json_as(STRINGS))


@dataclass(frozen=True)
class Section:
    """One section of a stored file, compressed on its own (one zstd frame / gzip member).

    ``offset``/``length``: where its compressed bytes are in the file's compressed stream; for
    an unencrypted file these are the stored bytes, for an encrypted one the plaintext of the
    encryption chunks ``offset // C .. (offset + length - 1) // C`` (chunk size C from the
    file's header). ``sha256`` is over those compressed bytes. ``raw_offset``/``raw_bytes``:
    where its dump text is in the file's uncompressed stream."""

    offset: int = field(metadata=json_as(INT))
    length: int = field(metadata=json_as(INT))
    raw_offset: int = field(metadata=json_as(INT))
    raw_bytes: int = field(metadata=json_as(INT))
    sha256: str

    def __post_init__(self) -> None:
        if min(self.offset, self.length, self.raw_offset, self.raw_bytes) < 0:
            raise ValueError(f"negative offset or length in a table section: {self}")


@dataclass(frozen=True)
class TableSections:
    """Where one table's parts are in a logical backup file (see :class:`Section`)."""

    table: str
    structure: Section | None = field(default=None, metadata=json_as(optional(nested(Section))))
    data: Section | None = field(default=None, metadata=json_as(optional(nested(Section))))
    triggers: Section | None = field(default=None, metadata=json_as(optional(nested(Section))))

    @property
    def raw_bytes(self) -> int:
        return sum(s.raw_bytes for s in (self.structure, self.data, self.triggers) if s)


@dataclass(frozen=True)
class BackupFile:
    """One stored file of a backup (one database for a logical backup)."""

    path: str  # relative to the backup directory
    database: str | None = field(metadata=json_as(missing=None))
    raw_bytes: int = field(metadata=json_as(INT))
    raw_sha256: str
    stored_bytes: int = field(metadata=json_as(INT))
    stored_sha256: str
    counts: ObjectCounts | None = field(
        default=None, metadata=json_as(optional(nested(ObjectCounts, strict=True)))
    )
    tables: tuple[TableStat, ...] = field(default=(), metadata=json_as(tuple_of(nested(TableStat))))
    durations: dict[str, float] = field(default_factory=dict, metadata=json_as(MAP))
    content_sha256: str | None = None  # statements without comments: comparable with a re-dump
    # when databases were dumped at different points
    coordinates: BinlogCoordinates | None = field(default=None, metadata=json_as(COORDINATES))
    lossy_columns: tuple[str, ...] = field(
        default=(), metadata=json_as(STRINGS)
    )  # FLOAT columns a logical dump rounds
    # per table: its sections, each compressed on its own (absent in backups made before)
    table_index: tuple[TableSections, ...] = field(
        default=(), metadata=json_as(tuple_of(nested(TableSections)))
    )


@dataclass(frozen=True)
class BackupManifest:
    backup_id: str
    server: str
    location: str
    kind: BackupKind = field(metadata=json_as(enum(BackupKind)))
    method: BackupMethod = field(metadata=json_as(enum(BackupMethod)))
    flavor: str
    server_version: str
    databases: tuple[str, ...] = field(metadata=json_as(STRINGS))
    files: tuple[BackupFile, ...] = field(metadata=json_as(tuple_of(nested(BackupFile))))
    started_at: datetime = field(metadata=json_as(TIME))
    finished_at: datetime = field(metadata=json_as(TIME))
    compression: str
    status: BackupStatus = field(
        default=BackupStatus.COMPLETE, metadata=json_as(enum(BackupStatus), null_is_missing=False)
    )
    coordinates: BinlogCoordinates | None = field(default=None, metadata=json_as(COORDINATES))
    # primary's, when dumped from a replica
    source_coordinates: BinlogCoordinates | None = field(default=None, metadata=json_as(COORDINATES))
    durations: dict[str, float] = field(default_factory=dict, metadata=json_as(MAP))
    tools: dict[str, str] = field(default_factory=dict, metadata=json_as(MAP))
    tags: tuple[str, ...] = field(default=(), metadata=json_as(STRINGS))
    warnings: tuple[str, ...] = field(default=(), metadata=json_as(STRINGS))
    encryption_key_id: str | None = None
    parent_id: str | None = None
    lsn_from: int | None = None
    lsn_to: int | None = None
    keep_forever: bool = field(default=False, metadata=json_as(BOOL))
    # {database: {table: engine}}: tables a --single-transaction dump could not read in its
    # snapshot (MyISAM, Aria, MEMORY...); absent in manifests written before it was recorded
    non_transactional_tables: dict[str, dict[str, str]] = field(
        default_factory=dict, metadata=json_as(ENGINES)
    )
    extra: dict[str, Any] = field(default_factory=dict, metadata=json_as(MAP))

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
        return _BACKUP_DOC.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> BackupManifest:
        """Parse and validate (:func:`validate_backup_manifest`) a backup manifest."""
        manifest: BackupManifest = _BACKUP_DOC.loads(text)
        return validate_backup_manifest(manifest)


_BACKUP_DOC = Document(
    BackupManifest,
    BACKUP_SCHEMA,
    "backup manifest",
    derived={
        "raw_bytes": lambda m: m.raw_bytes,
        "stored_bytes": lambda m: m.stored_bytes,
        "object_counts": lambda m: m.counts.as_dict(),
    },
)


@dataclass(frozen=True)
class BinlogManifest:
    """One archived binary log file."""

    server: str
    location: str
    file: str
    server_id: int = field(metadata=json_as(INT))
    server_uuid: str | None = field(metadata=json_as(missing=None))
    raw_bytes: int = field(metadata=json_as(INT))
    raw_sha256: str
    stored_path: str
    stored_bytes: int = field(metadata=json_as(INT))
    stored_sha256: str
    compression: str
    archived_at: datetime = field(metadata=json_as(TIME))
    first_event_at: datetime | None = field(default=None, metadata=json_as(optional(TIME)))
    last_event_at: datetime | None = field(default=None, metadata=json_as(optional(TIME)))
    gtid_start: str | None = None
    gtid_end: str | None = None
    encryption_key_id: str | None = None

    @property
    def sequence(self) -> int:
        return binlog_sequence(self.file)

    def to_record(self, *, strict: bool = True) -> BackupRecord:
        """The retention record. A file name without a numeric sequence is a ConfigError, or
        (``strict=False``, for estimates) a record without a sequence, which retention keeps."""
        try:
            sequence: int | None = self.sequence
        except ConfigError:
            if strict:
                raise
            sequence = None
        return BackupRecord(
            backup_id=self.file,
            server=self.server,
            location=self.location,
            kind=BackupKind.BINLOG,
            method=BackupMethod.BINLOG,
            created_at=self.last_event_at or self.archived_at,
            stored_bytes=self.stored_bytes,
            raw_bytes=self.raw_bytes,
            binlog_sequence=sequence,
        )

    def to_json(self) -> str:
        return _BINLOG_DOC.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> BinlogManifest:
        """Parse and validate (:func:`validate_binlog_manifest`) a binlog manifest."""
        manifest: BinlogManifest = _BINLOG_DOC.loads(text)
        return validate_binlog_manifest(manifest)


_BINLOG_DOC = Document(
    BinlogManifest, BINLOG_SCHEMA, "binlog manifest", derived={"sequence": lambda m: m.sequence}
)


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
    tested_at: datetime = field(metadata=json_as(TIME))
    passed: bool = field(metadata=json_as(BOOL))
    checks: tuple[Check, ...] = field(metadata=json_as(tuple_of(nested(Check, strict=True))))
    durations: dict[str, float] = field(metadata=json_as(MAP))
    source_version: str
    target_version: str
    recovery_point_seconds: float = field(metadata=json_as(FLOAT))
    lossy: tuple[str, ...] = field(default=(), metadata=json_as(STRINGS))
    fingerprint: str | None = None  # BackupManifest.fingerprint of the copy tested (None: older certificates)

    def to_json(self) -> str:
        return _CERTIFICATE_DOC.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> RestoreCertificate:
        cert: RestoreCertificate = _CERTIFICATE_DOC.loads(text)
        layout.check_server_name(cert.server)
        layout.check_backup_id(cert.backup_id, "certificate backup id")
        if not isinstance(cert.fingerprint, str | None):
            raise ManifestError("restore certificate is malformed: fingerprint is not a string")
        return cert


_CERTIFICATE_DOC = Document(RestoreCertificate, CERTIFICATE_SCHEMA, "restore certificate")


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
