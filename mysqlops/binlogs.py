"""Binary log archiving and point-in-time replay.

Archive (:func:`archive_binlogs`), for one server and one or more locations:

1. ``FLUSH BINARY LOGS`` so everything written so far is in a *closed* file, then
   ``SHOW BINARY LOGS`` and the active file (``SHOW MASTER STATUS``).
2. Per location, a plan (:func:`plan_location`, pure): which closed files are not archived
   there yet, which files are missing for good (purged on the server before they were
   archived: a *gap*), and whether the server's binlog history still continues the archive
   (same basename, same ``server_id``/``server_uuid``, sequence never going back, the newest
   archived file still on the server has the same size).
3. Each needed file, oldest first, ONE at a time: copied with the real client
   (``mariadb-binlog --read-from-remote-server --raw``, credentials via option file, needs
   REPLICATION SLAVE) into a 0700 staging dir, its size checked against the server's,
   every event header walked (:func:`scan_binlog`: CRC32 of every event, first/last event
   time, GTID range; bounded memory, the file is mmap'ed), compressed, sha256 of raw and
   stored bytes, uploaded write-once with read-back verification to every location that
   needs it, and the :class:`~mysqlops.manifest.BinlogManifest` written LAST (commit marker).
4. Files that were purged before archiving are reported by :class:`BinlogGap` *after*
   everything still available was archived (so no more data is lost), naming the missing
   files and the full backups that can no longer be rolled forward across the gap.

Idempotent and safe against overlapping runs: an existing manifest means "archived"; a
write-once collision on the data object is resolved by reading the stored object back and
adopting it when it decompresses to the same sha256 (never overwritten, never an error);
a manifest collision with the same raw sha256 is "archived by the other run".

Encryption (optional, ``encryption_key``): each file is encrypted after compression
(:mod:`mysqlops.crypto`, AES-256-GCM in chunks) in the 0700 staging directory, before it is
uploaded; its manifest records ``encryption_key_id``, never the key. An existing object that is
adopted keeps whatever it is (its own key id, or plaintext) and its manifest says so.

Replay (:func:`replay_binlogs` = :func:`fetch_binlogs` then :func:`apply_binlogs`): the
archived files from a backup's coordinates onward are ALL fetched first (sha256 of the stored
and the raw bytes checked against the manifest, encrypted copies decrypted and authenticated
with a :class:`~mysqlops.crypto.Keyring`; a corrupt copy falls back to the next location; a
missing key fails before any fetch, naming the key id), then ``mariadb-binlog
--start-position=P [stop] f1 f2 ... | mariadb`` runs against the target through
:class:`~mysqlops.adapters.process.Pipeline`. Plaintext and encrypted files (and files of
rotated keys) may be mixed in one chain.
``--stop-datetime`` is read by the tool in its session time zone; the process adapter gives
every child ``TZ=UTC`` and we pass UTC.

Privileges on the source (MariaDB 10.5+): ``RELOAD`` (FLUSH BINARY LOGS), ``BINLOG MONITOR``
(SHOW BINARY LOGS / MASTER STATUS), ``REPLICATION SLAVE`` (the binlog copy). MySQL 8:
``RELOAD``, ``REPLICATION CLIENT``, ``REPLICATION SLAVE``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pymysql

from mysqlops import ids, redact
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.adapters.storage import Store, StoredObject
from mysqlops.checksum import CHUNK, CountingHash, iter_chunks
from mysqlops.commands import ClientTools, client_option_file, mysql_argv
from mysqlops.compression import Codec, codec_from_label
from mysqlops.crypto import HEADER_MAX_SIZE, Decryptor, Encryptor, Keyring, peek_key_id
from mysqlops.crypto import MAGIC as ENC_MAGIC
from mysqlops.dialect import BINLOG_HEADER_EVENTS, Dialect, dialect_for
from mysqlops.errors import (
    ConfigError,
    EncryptionError,
    IntegrityError,
    ManifestError,
    MysqlopsError,
    ObjectExists,
    RestoreError,
    StorageError,
    UnsafePath,
)
from mysqlops.manifest import BackupManifest, BinlogManifest
from mysqlops.model import BinlogCoordinates, Flavor, Location, ServerSpec, ServerVersion, binlog_sequence

MANIFEST_SUFFIX = ".json"


# =========================================================================== errors
class BinlogError(MysqlopsError):
    """Binary logs cannot be archived or replayed as asked."""


class BinlogGap(BinlogError):
    """Binlogs are missing for good (purged before archiving): PITR cannot cross the gap."""

    def __init__(
        self,
        message: str,
        *,
        server: str,
        missing: Sequence[str],
        locations: Sequence[str] = (),
        affected_backups: Sequence[str] = (),
        result: ArchiveResult | None = None,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.missing = tuple(missing)
        self.locations = tuple(locations)
        self.affected_backups = tuple(affected_backups)
        self.result = result


class BinlogHistoryChanged(BinlogError):
    """The server's binlogs do not continue the archive (re-initialised, RESET MASTER, ...)."""


# =========================================================================== key layout
def data_key(server: str, file: str, extension: str) -> str:
    """``<server>/binlogs/<file><ext>`` e.g. ``db1/binlogs/mysql-bin.000042.zst``."""
    _check_file_name(file)
    return f"{ids.binlog_dir(server)}/{file}{extension}"


def manifest_key(server: str, file: str) -> str:
    """``<server>/binlogs/<file>.json``: the commit marker, written last."""
    _check_file_name(file)
    return f"{ids.binlog_dir(server)}/{file}{MANIFEST_SUFFIX}"


def archived_files(keys: Sequence[str], server: str) -> list[str]:
    """Binlog file names that have a manifest among ``keys`` (a listing of the location)."""
    prefix = ids.binlog_dir(server) + "/"
    names = []
    for key in keys:
        if not key.startswith(prefix) or not key.endswith(MANIFEST_SUFFIX):
            continue
        name = key[len(prefix) : -len(MANIFEST_SUFFIX)]
        if "/" in name or name.startswith(ids.TMP_PREFIX):
            continue
        with contextlib.suppress(ConfigError):
            binlog_sequence(name)
            names.append(name)
    return sorted(names, key=binlog_sequence)


def _check_file_name(file: str) -> None:
    try:
        ids.check_binlog_file_name(file)
    except UnsafePath as exc:
        raise ConfigError(str(exc)) from None


def basename_of(file: str) -> str:
    return file.rsplit(".", 1)[0]


def sibling(file: str, sequence: int) -> str:
    """The file name with another sequence, keeping the width (``mysql-bin.000007``)."""
    base, suffix = file.rsplit(".", 1)
    return f"{base}.{sequence:0{len(suffix)}d}"


# =========================================================================== event scan (pure)
_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event_length, next_pos, flags
HEADER_LEN = _HEADER.size  # 19
MAGIC = b"\xfebin"
STOP_EVENT = 3
ROTATE_EVENT = 4
FORMAT_DESCRIPTION_EVENT = 15
MYSQL_GTID_EVENT = 33
MARIADB_GTID_EVENT = 162
MARIADB_GTID_LIST_EVENT = 163
MARIADB_START_ENCRYPTION_EVENT = 164
_CHECKSUM_CRC32 = 1


@dataclass(frozen=True)
class BinlogSummary:
    """What a walk over every event header of one binlog file found."""

    size: int
    events: int
    server_id: int  # of the Format_description event: the server that wrote the file
    server_version: str
    checksum: str  # "crc32" (every event verified) or "none"
    first_event_at: datetime | None
    last_event_at: datetime | None
    gtid_start: str | None  # first GTID per domain (MariaDB) / per source uuid (MySQL)
    gtid_end: str | None  # last GTID per domain / per source uuid
    gtid_list: str | None  # MariaDB: binlog state when the file was opened
    closed_by: str | None  # "rotate" | "stop" | None (file ends without either: crash, or active)
    encrypted: bool = False  # MariaDB encrypted events: headers after START_ENCRYPTION not walked


class _GtidRange:
    """First and last GTID per domain (MariaDB) or per source uuid (MySQL)."""

    def __init__(self) -> None:
        self.first: dict[Any, str] = {}
        self.last: dict[Any, str] = {}

    def add(self, key: Any, text: str) -> None:
        self.first.setdefault(key, text)
        self.last[key] = text

    def render(self, which: dict[Any, str]) -> str | None:
        return ",".join(which[k] for k in sorted(which)) or None


def scan_binlog(data: bytes | bytearray | memoryview | mmap.mmap, *, name: str = "binlog") -> BinlogSummary:
    """Walk every event of a binlog file held in ``data`` (bytes or an mmap).

    Checks the magic, that every event fits, and the CRC32 of every event (when the
    Format_description event says the file has checksums). Raises :class:`IntegrityError` for
    a truncated or corrupt file. Reads only the bodies of the Format_description, GTID and
    GTID-list events; everything else is CRC-checked in place (no copies).
    """
    view = memoryview(data)
    try:
        return _scan(view, name)
    finally:
        view.release()


def _scan(view: memoryview, name: str) -> BinlogSummary:
    size = len(view)
    if size < len(MAGIC) or bytes(view[:4]) != MAGIC:
        raise IntegrityError(f"{name} is not a binary log (bad magic number)")
    pos = len(MAGIC)
    events = 0
    first_ts: int | None = None
    last_ts: int | None = None
    checksum = False
    checksum_name = "none"
    fde_server_id = 0
    server_version = ""
    gtids = _GtidRange()
    gtid_list: str | None = None
    closed_by: str | None = None
    encrypted = False
    while pos < size:
        if size - pos < HEADER_LEN:
            raise IntegrityError(f"{name} is truncated: {size - pos} stray bytes at offset {pos}")
        ts, etype, server_id, length, _next_pos, _flags = _HEADER.unpack_from(view, pos)
        if length < HEADER_LEN or pos + length > size:
            raise IntegrityError(
                f"{name} is truncated or corrupt: event at offset {pos} claims {length} bytes, "
                f"{size - pos} remain"
            )
        end = pos + length
        body_end = end - 4 if checksum else end
        if etype == FORMAT_DESCRIPTION_EVENT:
            body = view[pos + HEADER_LEN : end]
            # binlog_version(2) server_version(50) created(4) header_len(1) post-headers... alg(1) crc(4)
            server_version = bytes(body[2:52]).split(b"\0", 1)[0].decode("ascii", "replace")
            checksum = length >= HEADER_LEN + 57 + 5 and body[-5] == _CHECKSUM_CRC32
            checksum_name = "crc32" if checksum else "none"
            fde_server_id = server_id
        elif checksum:
            stored = int.from_bytes(view[end - 4 : end], "little")
            if zlib.crc32(view[pos : end - 4]) != stored:
                raise IntegrityError(f"{name} is corrupt: CRC32 mismatch in the event at offset {pos}")
        if etype == MARIADB_GTID_EVENT and body_end - pos >= HEADER_LEN + 12:
            seq, domain = struct.unpack_from("<QI", view, pos + HEADER_LEN)
            gtids.add(domain, f"{domain}-{server_id}-{seq}")
        elif etype == MYSQL_GTID_EVENT and body_end - pos >= HEADER_LEN + 25:
            sid = bytes(view[pos + HEADER_LEN + 1 : pos + HEADER_LEN + 17]).hex()
            gno = struct.unpack_from("<q", view, pos + HEADER_LEN + 17)[0]
            uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
            gtids.add(uuid, f"{uuid}:{gno}")
        elif etype == MARIADB_GTID_LIST_EVENT and gtid_list is None:
            gtid_list = _gtid_list(view[pos + HEADER_LEN : body_end])
        elif etype == MARIADB_START_ENCRYPTION_EVENT:
            encrypted = True
        if ts:
            first_ts = ts if first_ts is None else min(first_ts, ts)
            last_ts = ts if last_ts is None else max(last_ts, ts)
        closed_by = "rotate" if etype == ROTATE_EVENT else "stop" if etype == STOP_EVENT else None
        events += 1
        pos = end
        if encrypted:
            break  # later events are encrypted on disk; a remote --raw copy is never encrypted
    return BinlogSummary(
        size=size,
        events=events,
        server_id=fde_server_id,
        server_version=server_version,
        checksum=checksum_name,
        first_event_at=_utc(first_ts),
        last_event_at=_utc(last_ts),
        gtid_start=gtids.render(gtids.first),
        gtid_end=gtids.render(gtids.last),
        gtid_list=gtid_list,
        closed_by=closed_by,
        encrypted=encrypted,
    )


def _gtid_list(body: memoryview) -> str:
    if len(body) < 4:
        return ""
    count = struct.unpack_from("<I", body, 0)[0] & 0x0FFFFFFF
    items = []
    for i in range(count):
        off = 4 + 16 * i
        if off + 16 > len(body):
            break
        domain, server_id, seq = struct.unpack_from("<IIQ", body, off)
        items.append(f"{domain}-{server_id}-{seq}")
    return ",".join(items)


def _utc(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def summarize_file(path: str) -> BinlogSummary:
    """:func:`scan_binlog` of a local file, mmap'ed: memory stays flat whatever its size."""
    name = os.path.basename(path)
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise IntegrityError(f"{name} is empty: not a binary log")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return scan_binlog(mapped, name=name)


# =========================================================================== GTIDs (pure)
def parse_mariadb_gtids(text: str) -> dict[int, tuple[int, int]]:
    """``"0-1-5,1-2-9"`` -> ``{domain: (server_id, seq)}``; a ConfigError for anything else."""
    out: dict[int, tuple[int, int]] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        parts = item.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"{item!r} is not a MariaDB GTID (domain-server_id-sequence, e.g. 0-1-42)")
        domain, server_id, seq = (int(p) for p in parts)
        if domain in out:
            raise ConfigError(f"GTID list {text!r} names domain {domain} twice")
        out[domain] = (server_id, seq)
    return out


# =========================================================================== planning (pure)
@dataclass(frozen=True)
class LocationPlan:
    """What one location needs from the server's current binlogs."""

    location: str
    to_archive: tuple[str, ...]  # closed on the server, not archived here: archive, oldest first
    archived: tuple[str, ...]  # already archived here (by manifest)
    new_gap: tuple[str, ...]  # after the last archived file, gone from the server: data lost
    known_gaps: tuple[str, ...]  # holes older than the last archived file (reported before)

    @property
    def last_archived(self) -> str | None:
        return self.archived[-1] if self.archived else None


def plan_location(
    location: str,
    server_logs: Sequence[str],
    active: str,
    archived: Sequence[str],
) -> LocationPlan:
    """Decide what to archive at one location. Pure: names in, names out.

    ``server_logs``: every file ``SHOW BINARY LOGS`` lists; ``active``: the file being written
    (never archived); ``archived``: files with a manifest at the location. Raises
    :class:`BinlogHistoryChanged` when the server's binlogs cannot continue the archive.
    """
    base = basename_of(active)
    active_seq = binlog_sequence(active)
    foreign = sorted({basename_of(f) for f in archived} - {base})
    if foreign:
        raise BinlogHistoryChanged(
            f"location {location!r}: the archive holds binlogs named {foreign[0]}.*, the server now "
            f"writes {base}.*: log_bin was renamed or this is another server. Archive this server "
            "under a new server name (MySQLServer block server_name), or rename log_bin back"
        )
    done = {binlog_sequence(f): f for f in archived}
    if done and active_seq <= max(done):
        raise BinlogHistoryChanged(
            f"location {location!r}: the server's current binlog {active} is not newer than the last "
            f"archived one {done[max(done)]}: its binlog sequence went back (RESET MASTER, or the "
            "server was re-initialised). Its new binlogs cannot continue this archive: archive them "
            "under a new server name and take a new full backup"
        )
    on_server = {binlog_sequence(f): f for f in server_logs if basename_of(f) == base}
    closed = {s: f for s, f in on_server.items() if s < active_seq}
    to_archive = tuple(closed[s] for s in sorted(closed) if s not in done)
    new_gap: list[str] = []
    known: list[str] = []
    if done:
        first, last = min(done), max(done)
        oldest_needed = min([first, *closed])
        for seq in range(oldest_needed, active_seq):
            if seq in done or seq in closed:
                continue
            (new_gap if seq > last else known).append(sibling(active, seq))
    return LocationPlan(
        location=location,
        to_archive=to_archive,
        archived=tuple(done[s] for s in sorted(done)),
        new_gap=tuple(new_gap),
        known_gaps=tuple(known),
    )


def find_gaps(files: Sequence[str]) -> list[str]:
    """Names missing between the first and the last of ``files`` (one basename)."""
    if not files:
        return []
    seqs = sorted({binlog_sequence(f) for f in files})
    present = set(seqs)
    return [sibling(files[0], s) for s in range(seqs[0], seqs[-1] + 1) if s not in present]


def affected_backups(backups: Sequence[BackupManifest], last_missing: str) -> list[str]:
    """Full backups whose coordinates are before the end of a gap: they cannot be rolled
    forward across it (PITR stops at the gap, or cannot start at all)."""
    limit = binlog_sequence(last_missing)
    base = basename_of(last_missing)
    out = []
    for m in backups:
        coords = m.coordinates
        if coords and basename_of(coords.file) == base and coords.sequence <= limit:
            out.append(m.backup_id)
    return sorted(out)


# =========================================================================== server side
@dataclass(frozen=True)
class ServerBinlogs:
    """The server's binlogs right after the rotation."""

    version: ServerVersion
    server_id: int
    server_uuid: str | None
    logs: tuple[tuple[str, int], ...]  # (file, size) as SHOW BINARY LOGS lists them
    active: str
    rotated: bool = False  # False when asked not to, or when the active binlog held no transaction

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.logs)


def _privilege_hint(version: ServerVersion) -> str:
    if version.flavor is Flavor.MARIADB:
        return "GRANT RELOAD, BINLOG MONITOR, REPLICATION SLAVE ON *.* TO <backup user>"
    return "GRANT RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO <backup user>"


def rotate_and_list(spec: ServerSpec, *, rotate: bool = True) -> ServerBinlogs:
    """``FLUSH BINARY LOGS`` (closing the current file), then list the binlogs.

    An idle server is not rotated: when the active binlog holds nothing but the events every
    binlog starts with, closing it would only add an empty file (one per run, hundreds a day
    on a schedule) and archive it. Its transactions, once there are some, close it next time."""
    with db.session(spec) as conn:
        version = db.server_version(conn)
        dialect = dialect_for(version)
        try:
            row = db.query(conn, "SELECT @@log_bin AS lb, @@server_id AS sid")[0]
            if not int(row["lb"] or 0):
                raise ConfigError(
                    f"server {spec.name!r} has binary logging off: nothing to archive and no "
                    "point-in-time recovery; add log_bin (and server_id) to [mysqld] and restart"
                )
            uuid = None
            if version.flavor is Flavor.MYSQL:
                uuid = str(db.scalar(conn, "SELECT @@server_uuid"))
            rotated = False
            if rotate:
                before = db.query(conn, dialect.binlog_status_query())
                if before and _holds_transactions(conn, dialect, str(before[0]["File"])):
                    db.execute(conn, dialect.flush_binary_logs())
                    rotated = True
            status = db.query(conn, dialect.binlog_status_query())
            logs = db.query(conn, dialect.show_binary_logs())
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            detail = exc.args[1] if len(exc.args) > 1 else str(exc)
            hint = f"; {_privilege_hint(version)}" if code in (1227, 1045, 1142, 1044) else ""
            raise BinlogError(f"server {spec.name!r}: cannot rotate/list binlogs: {detail}{hint}") from None
    if not status:
        raise BinlogError(f"server {spec.name!r}: {dialect.binlog_status_query()} returned nothing")
    return ServerBinlogs(
        version=version,
        server_id=int(row["sid"]),
        server_uuid=uuid,
        logs=tuple((str(r["Log_name"]), int(r["File_size"])) for r in logs),
        active=str(status[0]["File"]),
        rotated=rotated,
    )


def _holds_transactions(conn: db.Connection, dialect: Dialect, file: str) -> bool:
    """Whether binlog ``file`` has any event besides the ones every binlog starts with."""
    events = db.query(conn, dialect.show_binlog_events(file, len(BINLOG_HEADER_EVENTS) + 1))
    return any(str(e.get("Event_type")) not in BINLOG_HEADER_EVENTS for e in events)


def fetch_argv(tool: str, file: str, staging: str) -> tuple[str, ...]:
    """Copy one binlog byte for byte from the server (credentials come via option file)."""
    return (tool, "--read-from-remote-server", "--raw", f"--result-file={staging.rstrip('/')}/", file)


# =========================================================================== results
@dataclass(frozen=True)
class ArchivedBinlog:
    file: str
    location: str
    raw_bytes: int
    stored_bytes: int
    seconds: float
    adopted: bool = False  # the object/manifest was already stored by an overlapping run


@dataclass(frozen=True)
class ArchiveResult:
    server: str
    active: str
    archived: tuple[ArchivedBinlog, ...]
    skipped: tuple[str, ...]  # closed files already archived at every location
    manifests: tuple[BinlogManifest, ...]
    known_gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # location -> files
    new_gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seconds: float = 0.0
    rotated: bool = False  # the active binlog was closed (it held transactions) before archiving

    @property
    def files(self) -> list[str]:
        return sorted({a.file for a in self.archived}, key=binlog_sequence)

    @property
    def raw_bytes(self) -> int:
        return sum({m.file: m.raw_bytes for m in self.manifests}.values())

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "file": a.file,
                "location": a.location,
                "raw_bytes": a.raw_bytes,
                "stored_bytes": a.stored_bytes,
                "seconds": round(a.seconds, 3),
                "adopted": a.adopted,
            }
            for a in self.archived
        ]


# =========================================================================== archive
@contextlib.contextmanager
def private_dir(parent: str | None, prefix: str) -> Iterator[str]:
    """A 0700 temporary directory, removed (with everything in it) on the way out. A missing
    ``parent`` is created 0700 (an existing one is left as it is)."""
    path = private_tempdir(parent, prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _staged_compress(
    raw_path: str, out_path: str, codec: Codec, key: bytes | None = None
) -> tuple[CountingHash, CountingHash]:
    """Compress (then, with ``key``, encrypt) ``raw_path`` into a new 0600 ``out_path``;
    sha256 of the raw and of the stored bytes."""
    raw, stored = CountingHash(), CountingHash()
    comp = codec.compressor()
    enc = Encryptor(key) if key is not None else None
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def emit(data: bytes) -> None:
        if enc is not None and data:
            data = enc.update(data)
        if data:
            stored.update(data)
            out.write(data)

    with open(raw_path, "rb") as src, os.fdopen(fd, "wb") as out:
        for chunk in iter_chunks(src, CHUNK):
            raw.update(chunk)
            emit(comp.compress(chunk))
        emit(comp.flush())
        if enc is not None:
            tail = enc.finalize()
            stored.update(tail)
            out.write(tail)
    return raw, stored


def _read_verified(
    store: Store, key: str, codec: Codec, out_path: str | None, keyring: Keyring | None = None
) -> tuple[CountingHash, CountingHash]:
    """Stream a stored object: sha256 of the stored bytes, then (with ``keyring``: decrypted,
    authenticated and) decompressed bytes hashed, and written to a new 0600 ``out_path`` when
    given. A decryption failure (wrong key, tampering, truncation) is an :class:`IntegrityError`."""
    stored, raw = CountingHash(), CountingHash()
    dec = codec.decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    out = None
    if out_path:
        out = os.fdopen(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def take(plain: bytes) -> None:
        data = dec.decompress(plain) if plain else b""
        raw.update(data)
        if out and data:
            out.write(data)

    try:
        with store.open_read(key) as handle:
            for chunk in iter_chunks(handle, CHUNK):
                stored.update(chunk)
                take(decryptor.update(chunk) if decryptor is not None else chunk)
        if decryptor is not None:
            take(decryptor.finalize())  # raises on truncation/tampering
        tail = dec.finish()
        raw.update(tail)
        if out and tail:
            out.write(tail)
    except EncryptionError as exc:
        raise IntegrityError(f"location {store.location.name!r}: {key} cannot be decrypted: {exc}") from None
    except (OSError, ValueError) as exc:
        raise StorageError(f"location {store.location.name!r}: reading {key} failed: {exc}") from None
    finally:
        if out:
            out.close()
    return stored, raw


def stored_key_id(store: Store, key: str) -> str | None:
    """Key id of a stored object encrypted by mysqlops (from its header), None when the object
    is not encrypted. Unauthenticated: it only says which key to try."""
    try:
        with store.open_read(key) as handle:
            head = handle.read(HEADER_MAX_SIZE)
    except OSError as exc:
        raise StorageError(f"location {store.location.name!r}: reading {key} failed: {exc}") from None
    if not head.startswith(ENC_MAGIC):
        return None
    try:
        return peek_key_id(head)
    except EncryptionError as exc:
        raise IntegrityError(f"location {store.location.name!r}: {key}: {exc}") from None


def _adopt_existing(
    store: Store, key: str, codec: Codec, raw_sha: str, started: float, keyring: Keyring | None
) -> tuple[StoredObject, str | None]:
    """``key`` already exists (overlapping run, or a run that died before its manifest): keep
    it when it (decrypts and) decompresses to exactly our bytes; never overwrite it. Returns
    the object and its encryption key id (None: stored in plaintext)."""
    where = f"location {store.location.name!r}: {key} already exists"
    kid = stored_key_id(store, key)
    if kid is not None and (keyring is None or kid not in keyring):
        raise IntegrityError(
            f"{where}, encrypted with key id {kid}, which is not the key of this run "
            f"({keyring.current_id if keyring else 'no encryption key given'}): it cannot be checked "
            "against the binlog just copied. Archive with that key, or inspect the object and delete it "
            "by hand (it has no manifest, so it is not an archive); it is never overwritten"
        )
    stored, raw = _read_verified(store, key, codec, None, keyring if kid else None)
    if raw.hexdigest() != raw_sha:
        raise IntegrityError(
            f"{where} but does not decompress to the "
            "binlog just copied from the server (it has no manifest, so it is not an archive): "
            "inspect it and delete it by hand, then run the archive again. It is never overwritten"
        )
    return StoredObject(key, stored.size, stored.hexdigest(), time.monotonic() - started), kid


def archive_binlogs(
    spec: ServerSpec,
    locations: Sequence[Location],
    codec: Codec,
    staging_dir: str | None = None,
    now: datetime | None = None,
    *,
    rotate: bool = True,
    fetch_timeout: float = 3600,
    encryption_key: bytes | None = None,
) -> ArchiveResult:
    """Rotate, then archive every closed binlog not yet archived at each location.

    ``encryption_key`` (32 bytes): each file is encrypted (AES-256-GCM, chunked, see
    :mod:`mysqlops.crypto`) after compression, in the 0700 staging directory, before it is
    uploaded; its manifest records the key id, never the key.

    Raises :class:`BinlogGap` (after archiving everything still available) when binlogs
    were purged from the server before they were archived, :class:`BinlogHistoryChanged`
    when the server's binlogs no longer continue the archive.
    """
    started = time.monotonic()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ConfigError("archive_binlogs needs a timezone-aware 'now'")
    keyring = Keyring(encryption_key) if encryption_key is not None else None  # checks the key first
    if not locations:
        raise ConfigError("no location given: pass at least one BackupLocation block name")
    names = [loc.name for loc in locations]
    if len(set(names)) != len(names):
        raise ConfigError(f"location names must be distinct, got {names}")
    prefix = ids.binlog_dir(spec.name)
    # list through a throwaway Store: s3fs caches listings per instance, and a cached listing
    # would make the writer's existence checks (write-once) answer from a stale view
    listing = {loc.name: Store(loc).list_keys(prefix) for loc in locations}
    stores = {loc.name: Store(loc) for loc in locations}

    server = rotate_and_list(spec, rotate=rotate)
    sizes = server.sizes
    plans: dict[str, LocationPlan] = {}
    for name, store in stores.items():
        plan = plan_location(
            name, [f for f, _ in server.logs], server.active, archived_files(listing[name], spec.name)
        )
        _check_identity(store, spec.name, plan, server)
        plans[name] = plan

    wanted = sorted({f for p in plans.values() for f in p.to_archive}, key=binlog_sequence)
    closed_on_server = [f for f, _ in server.logs if binlog_sequence(f) < binlog_sequence(server.active)]
    skipped = tuple(f for f in closed_on_server if f not in wanted)
    tools = ClientTools.for_flavor(server.version.flavor)
    credentials = client_option_file(spec)
    done: list[ArchivedBinlog] = []
    manifests: list[BinlogManifest] = []
    with private_dir(staging_dir, "mysqlops-binlogs-") as staging:
        for file in wanted:
            raw_path = os.path.join(staging, file)
            process.run(
                fetch_argv(tools.binlog, file, staging),
                credentials=credentials,
                timeout=fetch_timeout,
                name=f"copy binlog {file}",
            )
            if not os.path.isfile(raw_path):
                raise BinlogError(f"{tools.binlog} finished but wrote no {file}: was it purged meanwhile?")
            got = os.path.getsize(raw_path)
            if got != sizes[file]:
                raise IntegrityError(
                    f"binlog {file} of {spec.name!r}: copied {got} bytes, the server lists {sizes[file]}; "
                    "the copy is incomplete"
                )
            summary = summarize_file(raw_path)
            stored_path = raw_path + codec.extension + ".stored"
            raw, stored = _staged_compress(raw_path, stored_path, codec, encryption_key)
            os.unlink(raw_path)
            for name in names:
                if file not in plans[name].to_archive:
                    continue
                entry, manifest = _publish(
                    stores[name], spec, file, codec, stored_path, raw, stored, summary, server, now, keyring
                )
                done.append(entry)
                manifests.append(manifest)
            os.unlink(stored_path)

    result = ArchiveResult(
        server=spec.name,
        active=server.active,
        archived=tuple(done),
        skipped=skipped,
        manifests=tuple(manifests),
        known_gaps={n: p.known_gaps for n, p in plans.items() if p.known_gaps},
        new_gaps={n: p.new_gap for n, p in plans.items() if p.new_gap},
        seconds=time.monotonic() - started,
        rotated=server.rotated,
    )
    if result.new_gaps:
        raise _gap_error(spec.name, plans, stores, server, result)
    return result


def _check_identity(store: Store, server_name: str, plan: LocationPlan, server: ServerBinlogs) -> None:
    """The newest archived manifest must come from this server and match the file on it."""
    last = plan.last_archived
    if last is None:
        return
    manifest = BinlogManifest.from_json(store.read_bytes(manifest_key(server_name, last)))
    where = f"location {store.location.name!r}"
    if manifest.server_id != server.server_id:
        raise BinlogHistoryChanged(
            f"{where}: the last archived binlog {last} was written by server_id {manifest.server_id}, "
            f"the server now has server_id {server.server_id}: another or a re-initialised server. "
            "Archive it under a new server name, or restore the server_id"
        )
    if manifest.server_uuid and server.server_uuid and manifest.server_uuid != server.server_uuid:
        raise BinlogHistoryChanged(
            f"{where}: the last archived binlog {last} came from server_uuid {manifest.server_uuid}, "
            f"the server now reports {server.server_uuid} (re-initialised?). Archive it under a new server name"
        )
    size = server.sizes.get(last)
    if size is not None and size != manifest.raw_bytes:
        raise BinlogHistoryChanged(
            f"{where}: {last} is {size} bytes on the server but {manifest.raw_bytes} bytes in the "
            "archive: this is not the same binlog history (RESET MASTER or a re-initialised server). "
            "Archive it under a new server name and take a new full backup"
        )


def _publish(
    store: Store,
    spec: ServerSpec,
    file: str,
    codec: Codec,
    stored_path: str,
    raw: CountingHash,
    stored: CountingHash,
    summary: BinlogSummary,
    server: ServerBinlogs,
    now: datetime,
    keyring: Keyring | None = None,
) -> tuple[ArchivedBinlog, BinlogManifest]:
    started = time.monotonic()
    key = data_key(spec.name, file, codec.extension)
    adopted = False
    kid = keyring.current_id if keyring is not None else None
    try:
        obj = store.put_file(stored_path, key, sha256=stored.hexdigest())
    except ObjectExists:
        obj, kid = _adopt_existing(store, key, codec, raw.hexdigest(), started, keyring)
        adopted = True
    manifest = BinlogManifest(
        server=spec.name,
        location=store.location.name,
        file=file,
        server_id=summary.server_id or server.server_id,
        server_uuid=server.server_uuid,
        raw_bytes=raw.size,
        raw_sha256=raw.hexdigest(),
        stored_path=key.rsplit("/", 1)[1],
        stored_bytes=obj.size,
        stored_sha256=obj.sha256,
        compression=codec.label,
        archived_at=now,
        first_event_at=summary.first_event_at,
        last_event_at=summary.last_event_at,
        gtid_start=summary.gtid_start,
        gtid_end=summary.gtid_end,
        encryption_key_id=kid,
    )
    mkey = manifest_key(spec.name, file)
    try:
        store.put_bytes(manifest.to_json().encode(), mkey)
    except ObjectExists:
        existing = BinlogManifest.from_json(store.read_bytes(mkey))
        if existing.raw_sha256 != manifest.raw_sha256:
            raise BinlogHistoryChanged(
                f"location {store.location.name!r}: {mkey} already records a different {file} "
                "(other sha256): two servers archive under one server name? Never overwritten"
            ) from None
        manifest, adopted = existing, True
    return ArchivedBinlog(
        file, store.location.name, raw.size, obj.size, time.monotonic() - started, adopted
    ), manifest


def _gap_error(
    server_name: str,
    plans: dict[str, LocationPlan],
    stores: dict[str, Store],
    server: ServerBinlogs,
    result: ArchiveResult,
) -> BinlogGap:
    missing = sorted({f for p in plans.values() for f in p.new_gap}, key=binlog_sequence)
    where = sorted(n for n, p in plans.items() if p.new_gap)
    affected: set[str] = set()
    for name in where:
        with contextlib.suppress(MysqlopsError):
            affected.update(affected_backups(full_backups(stores[name], server_name), missing[-1]))
    oldest = min((f for f, _ in server.logs), key=binlog_sequence, default=server.active)
    last = {n: plans[n].last_archived for n in where}
    lines = [
        f"server {server_name!r}: binlog(s) {', '.join(missing)} were purged from the server before "
        f"they were archived (the server's oldest binlog is {oldest}; the archive at "
        + ", ".join(f"{n!r} ended at {last[n]}" for n in where)
        + ").",
        "Point-in-time recovery across this gap is IMPOSSIBLE.",
    ]
    if affected:
        lines.append(
            f"Full backups that cannot be rolled forward past {missing[0]}: {', '.join(sorted(affected))}."
        )
    lines.append(
        f"Archived everything still available ({len(result.archived)} copies). Take a new full backup "
        "now (PITR works again from it), and archive more often than the server purges binlogs "
        "(expire_logs_days / binlog_expire_logs_seconds)."
    )
    return BinlogGap(
        " ".join(lines),
        server=server_name,
        missing=missing,
        locations=where,
        affected_backups=sorted(affected),
        result=result,
    )


def full_backups(store: Store, server: str) -> list[BackupManifest]:
    """Readable full-backup manifests of ``server`` at one location (a manifest that fails
    validation or names another directory than its own is not one of them)."""
    out = []
    prefix = f"{ids.check_server_name(server)}/{ids.BACKUPS_DIR}"
    for key in store.list_keys(prefix, refused=[]):
        if key.endswith("/" + ids.MANIFEST_NAME) and key.count("/") == 3:
            with contextlib.suppress(ManifestError, StorageError):
                m = BackupManifest.from_json(store.read_bytes(key))
                if (
                    key == f"{ids.backup_dir(m.server, m.backup_id)}/{ids.MANIFEST_NAME}"
                    and m.server == server
                ):
                    out.append(m)
    return out


def list_archived(store: Store, server: str) -> list[BinlogManifest]:
    """Every archived binlog of ``server`` at one location (by manifest), oldest first.
    An unreadable manifest raises :class:`ManifestError` (never silently skipped)."""
    out = []
    for file in archived_files(store.list_keys(ids.binlog_dir(server)), server):
        key = manifest_key(server, file)
        try:
            m = BinlogManifest.from_json(store.read_bytes(key))
        except ManifestError as exc:
            raise ManifestError(f"location {store.location.name!r}: {key}: {exc}") from None
        if m.server != server or m.file != file:
            raise ManifestError(
                f"location {store.location.name!r}: {key} names server {m.server!r} and binlog {m.file!r}, not the "
                "file it was found as: the archive there is not trusted"
            )
        if m.location != store.location.name:  # where it was found counts, not what it says
            m = dataclasses.replace(m, location=store.location.name)
        out.append(m)
    return out


# =========================================================================== replay
@dataclass(frozen=True)
class ReplayResult:
    server: str
    target: str
    files: tuple[str, ...]
    sources: dict[str, str]  # file -> location it was read from
    raw_bytes: int
    stored_bytes: int
    start: BinlogCoordinates
    stop: str  # human readable: "position mysql-bin.000004:1234", "datetime ...", "end of archive"
    fetch_seconds: float
    apply_seconds: float
    skipped_copies: tuple[str, ...] = ()  # "location: file: why" for corrupt/unreadable copies
    gtid_strict_mode_relaxed: bool = False  # MariaDB target's gtid_strict_mode was off meanwhile
    key_ids: tuple[str, ...] = ()  # encryption key ids of the copies replayed (empty: plaintext)

    @property
    def seconds(self) -> float:
        return self.fetch_seconds + self.apply_seconds


def select_replay_files(
    manifests: Sequence[BinlogManifest],
    start: BinlogCoordinates,
    *,
    until_datetime: datetime | None = None,
    until_gtid: str | None = None,
    until_position: tuple[str, int] | None = None,
) -> list[BinlogManifest]:
    """The contiguous run of archived files from ``start.file`` to the one holding the target
    (pure). Raises :class:`BinlogGap` for a hole, :class:`RestoreError` when the archive does
    not reach the target."""
    by_seq = {m.sequence: m for m in manifests if basename_of(m.file) == basename_of(start.file)}
    if start.sequence not in by_seq:
        raise RestoreError(
            f"binlog {start.file} (the start of the replay) is not archived: nothing can be "
            "replayed from these coordinates; archive binlogs before purging them"
        )
    if until_position is not None:
        stop_seq = binlog_sequence(until_position[0])
        if stop_seq < start.sequence or (stop_seq == start.sequence and until_position[1] < start.position):
            raise ConfigError(
                f"until_position {until_position} is before the start {start.file}:{start.position}"
            )
    first = by_seq[start.sequence]
    if until_datetime is not None and first.first_event_at and until_datetime < first.first_event_at:
        raise ConfigError(
            f"until_datetime {until_datetime.isoformat()} is before {start.file} was even started "
            f"({first.first_event_at.isoformat()}): pick an older backup to start from"
        )
    targets = parse_mariadb_gtids(until_gtid) if until_gtid else {}
    chosen: list[BinlogManifest] = []
    seq = start.sequence
    last_seq = max(by_seq)
    while True:
        m = by_seq.get(seq)
        if m is None:
            if seq <= last_seq:
                following = min(s for s in by_seq if s > seq)
                missing = [sibling(start.file, s) for s in range(seq, following)]
                raise BinlogGap(
                    f"binlog(s) {', '.join(missing)} are not archived: point-in-time recovery cannot "
                    f"cross them (it can reach the end of {chosen[-1].file} at most)",
                    server=chosen[-1].server,
                    missing=missing,
                )
            break
        chosen.append(m)
        if until_position is not None and seq == binlog_sequence(until_position[0]):
            return chosen
        if until_datetime is not None and m.last_event_at and m.last_event_at >= until_datetime:
            return chosen
        if targets and _gtids_reached(m.gtid_end, targets):
            return chosen
        seq += 1
    last = chosen[-1]
    if until_position is not None:
        raise RestoreError(f"binlog {until_position[0]} is not archived (the archive ends at {last.file})")
    if until_datetime is not None:
        raise RestoreError(
            f"the archive ends at {last.file} (last event {last.last_event_at}), before the requested "
            f"{until_datetime.isoformat()}: run archive_binlogs first (it rotates, so the archive then "
            "reaches the present)"
        )
    if targets:
        raise RestoreError(f"GTID {until_gtid} is not in the archived binlogs (they end at {last.gtid_end})")
    return chosen


def _gtids_reached(gtid_end: str | None, targets: dict[int, tuple[int, int]]) -> bool:
    if not gtid_end:
        return False
    try:
        ends = parse_mariadb_gtids(gtid_end)
    except ConfigError:
        return False
    return all(d in ends and ends[d][1] >= seq for d, (_sid, seq) in targets.items())


def replay_argv(
    tool: str,
    files: Sequence[str],
    start: BinlogCoordinates,
    *,
    until_datetime: datetime | None = None,
    until_gtid: str | None = None,
    until_position: tuple[str, int] | None = None,
    log_on_target: bool = False,
) -> tuple[str, ...]:
    """``mariadb-binlog`` decoding local files from ``start`` to the stop condition (data)."""
    argv = [tool, "--no-defaults"]
    if not log_on_target:
        argv.append("--disable-log-bin")  # the target's own binlog/GTIDs do not clash
    if start.position > 4:
        argv.append(f"--start-position={int(start.position)}")
    if until_position is not None:
        argv.append(f"--stop-position={int(until_position[1])}")
    if until_datetime is not None:
        if until_datetime.tzinfo is None:
            raise ConfigError("until_datetime must be timezone-aware (UTC)")
        # one-second resolution: events stamped in the target's second are not applied
        argv.append(f"--stop-datetime={until_datetime.astimezone(UTC):%Y-%m-%d %H:%M:%S}")
    if until_gtid:
        parse_mariadb_gtids(until_gtid)
        argv.append(f"--stop-position={until_gtid}")
    return (*argv, *files)


@dataclass
class FetchedBinlogs:
    """Archived binlogs fetched, verified (sha256 of the stored and the raw bytes, encrypted
    ones decrypted and authenticated) and decompressed into a private staging directory:
    ready to apply. Made by :func:`fetch_binlogs`; its files vanish when that context exits."""

    server: str
    start: BinlogCoordinates
    manifests: tuple[BinlogManifest, ...]
    paths: tuple[str, ...]
    sources: dict[str, str]  # file -> location it was read from
    raw_bytes: int
    stored_bytes: int
    fetch_seconds: float
    skipped: tuple[str, ...]
    until_datetime: datetime | None = None
    until_gtid: str | None = None
    until_position: tuple[str, int] | None = None
    key_ids: tuple[str, ...] = ()  # encryption key ids of the copies used (empty: all plaintext)


def check_replay_keys(
    copies_by_file: dict[str, list[tuple[Store, BinlogManifest]]],
    files: Sequence[str],
    keyring: Keyring | None,
) -> None:
    """Fail before fetching (and so before anything is applied) when an encrypted binlog has
    no copy whose key is in ``keyring``. The message names the key id(s) needed."""
    missing: dict[str, list[str]] = {}
    for file in files:
        copies = copies_by_file[file]
        if any(
            m.encryption_key_id is None or (keyring is not None and m.encryption_key_id in keyring)
            for _s, m in copies
        ):
            continue
        for _s, m in copies:
            assert m.encryption_key_id is not None
            missing.setdefault(m.encryption_key_id, [])
            if file not in missing[m.encryption_key_id]:
                missing[m.encryption_key_id].append(file)
    if missing:
        needed = "; ".join(f"key id {kid} for {', '.join(fs)}" for kid, fs in missing.items())
        raise RestoreError(
            f"archived binlogs are encrypted with keys that were not given ({needed}); the given keys "
            f"are {', '.join(keyring.ids) if keyring else 'none'}: pass the encryption key Secret block(s) "
            "that were current when they were archived (encryption_keys=[current, older...])"
        )


@contextlib.contextmanager
def fetch_binlogs(
    stores: Sequence[Store],
    server_name: str,
    start: BinlogCoordinates,
    until_datetime: datetime | None = None,
    until_gtid: str | None = None,
    until_position: tuple[str, int] | None = None,
    staging_dir: str | None = None,
    *,
    keyring: Keyring | None = None,
) -> Iterator[FetchedBinlogs]:
    """Select the archived files of ``server_name`` from ``start`` up to at most one stop
    condition, and fetch every one of them verified into a 0700 staging directory (removed on
    exit). Touches no server: every problem (a gap, an archive that ends too early, a missing
    encryption key, no intact copy) is raised here, before anything is applied.

    ``stores`` are tried in order for every file; a copy whose stored or raw sha256 differs
    from its manifest, or that fails decryption, is skipped for the next location. Encrypted
    copies are decrypted with ``keyring`` (the manifest names the key id); plaintext and
    encrypted files may be mixed in one chain."""
    if sum(x is not None for x in (until_datetime, until_gtid, until_position)) > 1:
        raise ConfigError("give at most one of until_datetime, until_gtid, until_position")
    if not stores:
        raise ConfigError("replay_binlogs needs at least one location to read binlogs from")
    if until_datetime is not None and until_datetime.tzinfo is None:
        raise ConfigError("until_datetime must be timezone-aware (UTC)")
    catalog: dict[str, list[tuple[Store, BinlogManifest]]] = {}
    unreadable: list[str] = []
    for store in stores:
        try:
            for m in list_archived(store, server_name):
                catalog.setdefault(m.file, []).append((store, m))
        except (ManifestError, StorageError) as exc:
            unreadable.append(f"{store.location.name}: {exc}")
    if not catalog:
        raise RestoreError(
            f"no archived binlogs of {server_name!r} at {', '.join(s.location.name for s in stores)}"
            + (f" ({'; '.join(unreadable)})" if unreadable else "")
        )
    chosen = select_replay_files(
        [copies[0][1] for copies in catalog.values()],
        start,
        until_datetime=until_datetime,
        until_gtid=until_gtid,
        until_position=until_position,
    )
    check_replay_keys(catalog, [m.file for m in chosen], keyring)
    skipped: list[str] = list(unreadable)
    sources: dict[str, str] = {}
    kids: list[str] = []
    stored_total = raw_total = 0
    fetch_started = time.monotonic()
    with private_dir(staging_dir, "mysqlops-replay-") as staging:
        paths = []
        for m in chosen:
            path = os.path.join(staging, ids.check_binlog_file_name(m.file))
            used, manifest = _fetch_verified(catalog[m.file], path, skipped, keyring)
            sources[m.file] = used.location.name
            raw_total += os.path.getsize(path)
            stored_total += manifest.stored_bytes
            if manifest.encryption_key_id and manifest.encryption_key_id not in kids:
                kids.append(manifest.encryption_key_id)
            paths.append(path)
        yield FetchedBinlogs(
            server=server_name,
            start=start,
            manifests=tuple(chosen),
            paths=tuple(paths),
            sources=sources,
            raw_bytes=raw_total,
            stored_bytes=stored_total,
            fetch_seconds=time.monotonic() - fetch_started,
            skipped=tuple(skipped),
            until_datetime=until_datetime,
            until_gtid=until_gtid,
            until_position=until_position,
            key_ids=tuple(kids),
        )


def apply_binlogs(
    target_spec: ServerSpec,
    fetched: FetchedBinlogs,
    *,
    log_on_target: bool = False,
    timeout: float | None = None,
) -> ReplayResult:
    """``mariadb-binlog --start-position=P [stop] f1 f2 ... | mariadb`` on files already
    fetched and verified by :func:`fetch_binlogs` (call it inside that context)."""
    with db.session(target_spec) as conn:
        version = db.server_version(conn)
    if fetched.until_gtid and version.flavor is not Flavor.MARIADB:
        raise ConfigError(
            "until_gtid is supported for MariaDB; on MySQL use until_position or until_datetime"
        )
    tools = ClientTools.for_flavor(version.flavor)
    apply_started = time.monotonic()
    binlog_cmd = replay_argv(
        tools.binlog,
        fetched.paths,
        fetched.start,
        until_datetime=fetched.until_datetime,
        until_gtid=fetched.until_gtid,
        until_position=fetched.until_position,
        log_on_target=log_on_target,
    )
    client_cmd = mysql_argv(tools.mysql, extra=["--binary-mode", "--skip-reconnect"])
    with (
        _gtid_strict_mode_off(target_spec, version, log_on_target) as relaxed,
        process.Pipeline(
            [binlog_cmd, client_cmd],
            credentials=[None, client_option_file(target_spec)],
            stdout=process.DEVNULL,
            timeout=timeout,
            name=f"replay binlogs of {fetched.server} onto {target_spec.name}",
            stderr_filter=redact.client_stderr,  # a failed row event quotes the row
        ) as pipe,
    ):
        pipe.wait()
    apply_seconds = time.monotonic() - apply_started
    if fetched.until_position is not None:
        stop = f"position {fetched.until_position[0]}:{fetched.until_position[1]}"
    elif fetched.until_datetime is not None:
        stop = f"datetime {fetched.until_datetime.astimezone(UTC).isoformat()}"
    elif fetched.until_gtid:
        stop = f"gtid {fetched.until_gtid}"
    else:
        stop = f"end of archive ({fetched.manifests[-1].file})"
    return ReplayResult(
        server=fetched.server,
        target=target_spec.name,
        files=tuple(m.file for m in fetched.manifests),
        sources=dict(fetched.sources),
        raw_bytes=fetched.raw_bytes,
        stored_bytes=fetched.stored_bytes,
        start=fetched.start,
        stop=stop,
        fetch_seconds=fetched.fetch_seconds,
        apply_seconds=apply_seconds,
        skipped_copies=fetched.skipped,
        gtid_strict_mode_relaxed=relaxed,
        key_ids=fetched.key_ids,
    )


def replay_binlogs(
    target_spec: ServerSpec,
    stores: Sequence[Store],
    server_name: str,
    start: BinlogCoordinates,
    until_datetime: datetime | None = None,
    until_gtid: str | None = None,
    until_position: tuple[str, int] | None = None,
    staging_dir: str | None = None,
    *,
    log_on_target: bool = False,
    timeout: float | None = None,
    keyring: Keyring | None = None,
) -> ReplayResult:
    """Apply archived binlogs of ``server_name`` to ``target_spec`` from ``start`` (a backup's
    coordinates) up to at most one stop condition (none: the end of the archive).

    Every file is fetched and verified first (:func:`fetch_binlogs`: sha256 checks, fallback
    to the next location, decryption with ``keyring``), so nothing is applied unless all of
    them are intact and readable. ``until_position`` stops before the event at that offset
    (``--stop-position``); ``until_datetime`` before the first event of that UTC second;
    ``until_gtid`` (MariaDB) after that GTID, inclusive.
    """
    with fetch_binlogs(
        stores,
        server_name,
        start,
        until_datetime,
        until_gtid,
        until_position,
        staging_dir,
        keyring=keyring,
    ) as fetched:
        return apply_binlogs(target_spec, fetched, log_on_target=log_on_target, timeout=timeout)


@contextlib.contextmanager
def _gtid_strict_mode_off(spec: ServerSpec, version: ServerVersion, log_on_target: bool) -> Iterator[bool]:
    """MariaDB checks ``SET gtid_seq_no`` (which mariadb-binlog output carries for every
    transaction) against the target's own GTID state under gtid_strict_mode even when the
    session does not binlog. With ``log_on_target=False`` the replayed GTIDs are never logged,
    so strict mode is switched off for the replay and restored afterwards, always."""
    if version.flavor is not Flavor.MARIADB or log_on_target:
        yield False
        return
    with db.session(spec) as conn:
        strict = bool(int(db.scalar(conn, "SELECT @@GLOBAL.gtid_strict_mode") or 0))
        if strict:
            db.execute(conn, "SET GLOBAL gtid_strict_mode=0")
    try:
        yield strict
    finally:
        if strict:
            with db.session(spec) as conn:
                db.execute(conn, "SET GLOBAL gtid_strict_mode=1")


def _fetch_verified(
    copies: Sequence[tuple[Store, BinlogManifest]],
    path: str,
    skipped: list[str],
    keyring: Keyring | None = None,
) -> tuple[Store, BinlogManifest]:
    """Decompress (decrypting encrypted copies) the first copy whose stored and raw sha256
    match its manifest to ``path``. Returns the store used and that copy's manifest."""
    for store, m in copies:
        key = f"{ids.binlog_dir(m.server)}/{ids.check_file_name(m.stored_path, 'stored binlog name')}"
        try:
            if m.encryption_key_id and (keyring is None or m.encryption_key_id not in keyring):
                raise IntegrityError(f"encrypted with key id {m.encryption_key_id}, which was not given")
            stored, raw = _read_verified(
                store, key, codec_from_label(m.compression), path, keyring if m.encryption_key_id else None
            )
            problem = ""
            if stored.hexdigest() != m.stored_sha256 or stored.size != m.stored_bytes:
                problem = "stored copy fails its sha256 check"
            elif raw.hexdigest() != m.raw_sha256 or raw.size != m.raw_bytes:
                problem = "decompressed binlog fails its sha256 check"
        except (IntegrityError, StorageError, ConfigError) as exc:
            problem = str(exc)
        if not problem:
            return store, m
        skipped.append(f"{store.location.name}: {m.file}: {problem}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    raise IntegrityError(
        f"no intact copy of binlog {copies[0][1].file}: " + "; ".join(skipped[-len(copies) :])
    )
