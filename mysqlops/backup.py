"""Logical backups: pre-flight, consistent dump, stream → compress → sha256 → staging,
upload to every location with read-back verification, manifest last.

Upload overlaps the dump: every location follows each staging file while it grows (a multipart
upload on S3, a temp file on disk) and holds the last step, the one that makes the object
visible, until the whole dump has been proven complete (trailer, object counts). A dump that
fails abandons every upload, so nothing is ever published for it; each stored copy is then read
back and its sha256 checked, and the manifest is written last.

The flow (flows/backup.py) is a thin recipe over :func:`run_backup`.

Consistency model:
- ``parallel == 1`` (default): ONE ``mysqldump``/``mariadb-dump`` process dumps every selected
  database in one ``--single-transaction`` snapshot with one set of binlog coordinates; its
  stream is split into one file per database as it goes (a new compression frame whenever the
  stream switches database; zstd and gzip decode concatenated frames). Each file restores on
  its own.
- ``parallel > 1`` on a primary: one process per database, concurrently: each file is
  consistent on its own and records its own coordinates; the manifest says so.
- ``from_replica=True``: the replica's SQL thread is stopped first, so every database (even
  with ``parallel > 1``) is dumped at one point; the primary coordinates the replica had
  executed are recorded, with per-table row counts and checksums taken at that frozen point;
  the SQL thread is restarted afterwards, always.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any, cast

from mysqlops import ids, redact
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, reaper
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.adapters.storage import Store
from mysqlops.checksum import CountingHash
from mysqlops.commands import ClientTools, DumpOptions, client_option_file, dump_argv
from mysqlops.compression import Codec, Compressor
from mysqlops.crypto import Encryptor, key_id
from mysqlops.dialect import Dialect, dialect_for
from mysqlops.dumpscan import FOOTER, DumpScanner
from mysqlops.errors import (
    BackupAborted,
    ConfigError,
    ConnectionProblem,
    DumpIncomplete,
    IntegrityError,
    MysqlopsError,
    PreflightFailed,
    StorageError,
)
from mysqlops.follow import FollowReader, Growth
from mysqlops.manifest import BackupFile, BackupManifest, TableStat
from mysqlops.model import (
    BackupKind,
    BackupMethod,
    BinlogCoordinates,
    Location,
    ObjectCounts,
    ServerSpec,
    ServerVersion,
)
from mysqlops.tablesum import table_checksums

READ_CHUNK = 1 << 20
ProgressFn = Callable[["Progress"], None]


# --------------------------------------------------------------------------- pre-flight
@dataclass(frozen=True)
class Plan:
    """What pre-flight found: the backup that will be made."""

    server: ServerSpec
    version: ServerVersion
    databases: tuple[str, ...]
    estimated_bytes: dict[str, int]
    counts: dict[str, ObjectCounts]
    lossy_columns: dict[str, tuple[str, ...]]
    position_options: tuple[str, ...]
    warnings: tuple[str, ...]
    tool: str
    tool_version: str
    identity: dict[str, Any] = field(default_factory=dict)
    non_transactional: dict[str, dict[str, str]] = field(default_factory=dict)  # database -> table -> engine

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.version)


def select_databases(
    available: Sequence[str], databases: Sequence[str] | None, include: Sequence[str], exclude: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Explicit names (must exist), else all non-system, filtered by glob patterns.

    Returns (selected, problems). An include pattern that matches no database, and a selection
    that leaves nothing to back up, are problems: a "successful" backup of nothing is a trap.
    (A server without any user database is backed up, with a warning from pre-flight.)
    """
    problems: list[str] = []
    listing = ", ".join(available) or "none"
    if databases:
        missing = [d for d in databases if d not in available]
        problems += [f"database {d!r} does not exist on the server (available: {listing})" for d in missing]
        chosen = [d for d in databases if d in available]
    else:
        chosen = list(available)
    if include:
        for pattern in include:
            if not any(fnmatch.fnmatchcase(d, pattern) for d in chosen):
                problems.append(
                    f"include pattern {pattern!r} matches no database (databases on the server: {listing}); "
                    "fix the pattern (case-sensitive glob: * ? [..]) or remove it"
                )
        chosen = [d for d in chosen if any(fnmatch.fnmatchcase(d, p) for p in include)]
    if exclude:
        chosen = [d for d in chosen if not any(fnmatch.fnmatchcase(d, p) for p in exclude)]
    if not chosen and not problems and available:
        problems.append(
            f"nothing to back up: the selection (databases={list(databases or [])}, include={list(include)}, "
            f"exclude={list(exclude)}) leaves no database of: {listing}"
        )
    return chosen, problems


MAX_PARALLEL = 64


def check_backup_parameters(
    locations: Sequence[Location],
    *,
    databases: Sequence[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    parallel: int = 1,
    staging_dir: str | None = None,
    progress_interval: float = 5.0,
    tags: Sequence[str] = (),
) -> None:
    """Every backup parameter that can be judged without the server, judged before anything
    connects to it: a wrong parameter is a :class:`ConfigError` naming it and the fix, never a
    connection error or a half-made backup."""
    problems: list[str] = []
    if not locations:
        problems.append("no backup location given: pass at least one BackupLocation block name")
    elif not all(isinstance(loc, Location) for loc in locations):
        problems.append("locations must be Location objects (BackupLocation blocks' .to_location())")
    else:
        names = [loc.name for loc in locations]
        if len(set(names)) != len(names):
            problems.append(f"location names must be distinct, got {names}")
    for label, value in (
        ("databases", databases),
        ("include", include),
        ("exclude", exclude),
        ("tags", tags),
    ):
        if value is None:
            continue
        if isinstance(value, str | bytes):
            problems.append(f"{label} must be a list of names, got the string {value!r}: write [{value!r}]")
        elif not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(f"{label} must hold non-empty strings, got {list(value)!r}")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= MAX_PARALLEL:
        problems.append(f"parallel must be a whole number from 1 to {MAX_PARALLEL}, got {parallel!r}")
    if staging_dir is not None:
        if not isinstance(staging_dir, str) or not os.path.isabs(staging_dir):
            problems.append(
                f"staging_dir {staging_dir!r} is not an absolute path: it would depend on the current "
                "directory of the process that runs the backup; give e.g. /var/tmp/mysqlops"
            )
        elif os.path.exists(staging_dir) and not os.path.isdir(staging_dir):
            problems.append(f"staging_dir {staging_dir!r} exists and is not a directory")
    if (
        isinstance(progress_interval, bool)
        or not isinstance(progress_interval, int | float)
        or progress_interval < 0
    ):
        problems.append(f"progress_interval must be a number of seconds >= 0, got {progress_interval!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def _tool_version(program: str) -> str:
    try:
        out = process.run([program, "--version"], timeout=30).stdout.decode("utf-8", "replace").strip()
    except MysqlopsError:
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def preflight(
    spec: ServerSpec,
    locations: Sequence[Location],
    *,
    databases: Sequence[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    staging_dir: str | None = None,
    from_replica: bool = False,
) -> Plan:
    """Check everything before anything is written; raise :class:`PreflightFailed` listing
    every problem with its fix. Nothing is dumped when this fails."""
    problems: list[str] = []
    warnings: list[str] = []
    check_backup_parameters(
        locations, databases=databases, include=include, exclude=exclude, staging_dir=staging_dir
    )
    try:
        conn = db.connect(spec)
    except ConnectionProblem as exc:
        raise PreflightFailed([str(exc)]) from None
    with contextlib.closing(conn):
        version = db.server_version(conn)
        identity = db.server_identity(conn)
        dialect = dialect_for(version)
        available = db.user_databases(conn, dialect.system_schemas())
        chosen, selection_problems = select_databases(available, databases, include, exclude)
        problems += selection_problems
        grants = [str(next(iter(r.values()))) for r in db.query(conn, "SHOW GRANTS FOR CURRENT_USER()")]
        problems += dialect.missing_backup_privileges(grants, chosen, binlogs=False)
        variables = db.global_variables(conn, ["log_bin", "server_id", "gtid_mode"])
        position_options = dialect.dump_position_options()
        if variables.get("log_bin", "OFF").upper() not in ("ON", "1"):
            position_options = ()
            warnings.append(
                "binary logging is off on this server: the backup records no binlog coordinates, "
                "so point-in-time recovery from it is impossible (add log_bin to [mysqld])"
            )
        if from_replica:
            status = db.replica_status(conn, dialect)
            if status is None:
                problems.append(
                    f"from_replica=True but {spec.name} is not a replica (SHOW REPLICA STATUS is empty); "
                    "point the backup at a replica or set from_replica=False"
                )
        sizes = db.database_sizes(conn, chosen)
        counts = {d: db.object_counts(conn, d) for d in chosen}
        lossy = {d: tuple(db.float_columns(conn, d)) for d in chosen}
        outside = non_transactional_tables(conn, chosen)
    if outside:
        named = [f"{d}.{t} ({engine})" for d, tables in outside.items() for t, engine in tables.items()]
        warnings.append(
            f"{len(named)} table(s) use a non-transactional engine and are outside the consistent "
            f"snapshot: {', '.join(named[:20])}{' ...' if len(named) > 20 else ''}. Writes to them while the "
            "dump runs are not consistent with the rest of the backup (nor with its binlog coordinates); "
            "convert them to InnoDB (ALTER TABLE ... ENGINE=InnoDB) or back up from a frozen replica"
            + (" (this backup is)" if from_replica else "")
        )
    if not chosen and not problems:
        warnings.append(f"{spec.name} has no user database: this backup holds no data")
    for database, cols in lossy.items():
        if cols:
            warnings.append(
                f"database {database!r} has FLOAT columns ({', '.join(cols[:5])}{'...' if len(cols) > 5 else ''}): "
                "a logical dump writes FLOAT with 6 significant digits, so these round-trip approximately; "
                "use DOUBLE or DECIMAL for exact values, or physical backups"
            )
    for loc in locations:
        try:
            warnings += Store(loc, retries=2).check_writable()
        except StorageError as exc:
            problems.append(str(exc))
    staging = staging_dir or tempfile.gettempdir()
    free = _free_bytes(staging)
    needed = int(sum(sizes.values()) * 0.6) + 64 * 1024 * 1024
    if free is not None and free < needed:
        problems.append(
            f"staging directory {staging} has {free / 2**20:.0f} MiB free, the backup needs about "
            f"{needed / 2**20:.0f} MiB: free space or set a staging_dir on a larger disk"
        )
    tools = ClientTools.for_flavor(version.flavor)
    try:
        program = process.require_program(
            tools.dump,
            "mysqldump",
            package_hint="mariadb-client" if version.flavor.value == "mariadb" else "mysql-client",
        )
    except MysqlopsError as exc:
        problems.append(str(exc))
        program = tools.dump
    if problems:
        raise PreflightFailed(problems)
    return Plan(
        server=spec,
        version=version,
        databases=tuple(chosen),
        estimated_bytes=sizes,
        counts=counts,
        lossy_columns=lossy,
        position_options=position_options,
        warnings=tuple(warnings),
        tool=program,
        tool_version=_tool_version(program),
        identity=identity,
        non_transactional=outside,
    )


# engines whose tables a --single-transaction dump reads in its consistent snapshot; BLACKHOLE
# holds no data. Everything else (MyISAM, Aria, MEMORY, CSV, ARCHIVE, MERGE, CONNECT, FEDERATED,
# SPIDER, ...) is read at whatever moment the dump reaches it.
TRANSACTIONAL_ENGINES = ("InnoDB", "RocksDB", "TokuDB", "BLACKHOLE")


def non_transactional_tables(conn: db.Connection, databases: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{database: {table: engine}}`` of base tables outside a ``--single-transaction`` snapshot."""
    if not databases:
        return {}
    rows = db.query(
        conn,
        "SELECT TABLE_SCHEMA AS d, TABLE_NAME AS t, ENGINE AS e FROM information_schema.TABLES"
        f" WHERE TABLE_SCHEMA IN ({', '.join(['%s'] * len(databases))}) AND TABLE_TYPE = 'BASE TABLE'"
        f" AND ENGINE IS NOT NULL AND ENGINE NOT IN ({', '.join(['%s'] * len(TRANSACTIONAL_ENGINES))})"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME",
        [*databases, *TRANSACTIONAL_ENGINES],
    )
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(str(row["d"]), {})[str(row["t"])] = str(row["e"])
    return out


def _first(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return rows[0] if rows else None


def _free_bytes(path: str) -> int | None:
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        return shutil.disk_usage(probe or "/").free
    except OSError:
        return None


# --------------------------------------------------------------------------- progress
@dataclass
class Progress:
    """Bytes dumped so far against the information_schema estimate."""

    started: float
    estimated_bytes: int
    dumped_bytes: int = 0
    per_database: dict[str, int] = field(default_factory=dict)
    stage: str = "dump"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def throughput(self) -> float:
        return self.dumped_bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float:
        if self.estimated_bytes <= 0:
            return 0.0
        return min(self.dumped_bytes / self.estimated_bytes, 0.99)

    @property
    def eta_seconds(self) -> float | None:
        if self.throughput <= 0 or self.estimated_bytes <= self.dumped_bytes:
            return None
        return (self.estimated_bytes - self.dumped_bytes) / self.throughput


class _Ticker:
    """Calls ``progress`` at most every ``interval`` seconds (and once at the end)."""

    def __init__(self, progress: Progress, callback: ProgressFn | None, interval: float) -> None:
        self.progress = progress
        self.callback = callback
        self.interval = interval
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, database: str | None, n: int) -> None:
        with self._lock:
            self.progress.dumped_bytes += n
            if database is not None:
                self.progress.per_database[database] = self.progress.per_database.get(database, 0) + n
            now = time.monotonic()
            due = now - self._last >= self.interval
            if due:
                self._last = now
        if due and self.callback:
            self.callback(self.progress)

    def done(self) -> None:
        if self.callback:
            self.callback(self.progress)


# --------------------------------------------------------------------------- staging sinks
@dataclass
class StagedFile:
    database: str
    path: str
    raw: CountingHash = field(default_factory=CountingHash)
    stored: CountingHash = field(default_factory=CountingHash)
    content_sha256: str | None = None
    counts: ObjectCounts = field(default_factory=ObjectCounts)
    coordinates: BinlogCoordinates | None = None
    seconds: float = 0.0

    def to_backup_file(self, name: str, tables: tuple[TableStat, ...], lossy: tuple[str, ...]) -> BackupFile:
        return BackupFile(
            path=name,
            database=self.database,
            raw_bytes=self.raw.size,
            raw_sha256=self.raw.hexdigest(),
            stored_bytes=self.stored.size,
            stored_sha256=self.stored.hexdigest(),
            counts=self.counts,
            tables=tables,
            durations={"dump": round(self.seconds, 3)},
            content_sha256=self.content_sha256,
            coordinates=self.coordinates,
            lossy_columns=lossy,
        )


class _Sink:
    """One database's staging file: raw sha256, compression, stored sha256, file write.

    A section of the stream is one compression frame: :meth:`end_frame` closes it, the next
    :meth:`write` opens a new one (concatenated frames decode as one stream).
    """

    def __init__(self, staged: StagedFile, codec: Codec, key: bytes | None = None) -> None:
        self.staged = staged
        self.codec = codec
        self.growth = Growth()  # uploads follow the file until close() finishes it
        fd = os.open(staged.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle: IO[bytes] = os.fdopen(fd, "wb", buffering=READ_CHUNK)
        self.compressor: Compressor | None = None
        self.encryptor = Encryptor(key) if key is not None else None

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self.compressor is None:
            self.compressor = self.codec.compressor()
        self.staged.raw.update(data)
        self._out(self.compressor.compress(data))

    def end_frame(self) -> None:
        if self.compressor is not None:
            self._out(self.compressor.flush())
            self.compressor = None

    def _out(self, data: bytes | memoryview) -> None:
        if data and self.encryptor is not None:
            data = self.encryptor.update(data)
        if data:
            self.handle.write(data)
            self.staged.stored.update(data)

    def close(self) -> None:
        self.end_frame()
        if self.encryptor is not None:
            tail = self.encryptor.finalize()
            self.encryptor = None
            if tail:
                self.handle.write(tail)
                self.staged.stored.update(tail)
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.growth.finish(self.staged.stored.size)


def _dump_stream(
    plan: Plan,
    databases: Sequence[str],
    codec: Codec,
    staging: str,
    ticker: _Ticker,
    timeout: float | None,
    cancel_event: threading.Event | None,
    key: bytes | None = None,
    on_file: Callable[[StagedFile, Growth], None] | None = None,
) -> tuple[list[StagedFile], DumpScanner]:
    """One dump process for ``databases``; its stream split into one staged file per database.
    ``on_file`` hears of each staged file as soon as it is created (uploads follow it)."""
    started = time.monotonic()
    staged: dict[str, StagedFile] = {}
    sinks: dict[str, _Sink] = {}
    header = bytearray()
    active: list[str | None] = [None]

    def sink_for(database: str) -> _Sink:
        sink = sinks.get(database)
        if sink is None:
            name = ids.data_file_name(database, codec.extension)
            sf = staged[database] = StagedFile(database, os.path.join(staging, name))
            sink = sinks[database] = _Sink(sf, codec, key)
            if on_file is not None:
                on_file(sf, sink.growth)
            sink.write(bytes(header))  # every file restores on its own: it starts with the header
        return sink

    def on_data(database: str | None, data: bytes | memoryview) -> None:
        if database is None:
            header.extend(data)
            return
        if active[0] != database:
            if active[0] is not None:
                sinks[active[0]].end_frame()
            active[0] = database
        sink_for(database).write(data)

    scanner = DumpScanner(on_data)
    argv = dump_argv(plan.tool, databases[0], DumpOptions(position_options=plan.position_options))
    if len(databases) > 1:
        argv = (*argv[:-1], *databases)  # --databases -- db1 db2 ...
    try:
        with process.Pipeline(
            [argv],
            credentials=client_option_file(plan.server),
            stdout=process.PIPE,
            timeout=timeout,
            name=f"dump of {', '.join(databases)[:80]}",
            stderr_filter=redact.client_stderr,
        ) as pipe:
            out = pipe.stdout_pipe
            while True:
                if cancel_event is not None and cancel_event.is_set():
                    pipe.cancel()
                chunk = out.read1(READ_CHUNK) if hasattr(out, "read1") else out.read(READ_CHUNK)
                if not chunk:
                    break
                scanner.feed(chunk)
                ticker.add(active[0], len(chunk))
            scanner.finish()
            pipe.wait()
    finally:
        for database, sink in sinks.items():
            with contextlib.suppress(OSError, ValueError):
                # the stream's own footer went to the last database; the others get the same one
                if database != active[0]:
                    sink.write(FOOTER)
                sink.close()
    if not scanner.completed:
        raise DumpIncomplete(
            f"the dump of {', '.join(databases)} ended without its '-- Dump completed' trailer: "
            "the dump was cut short (server gone, killed or out of memory)"
        )
    elapsed = time.monotonic() - started
    for database in databases:
        if database not in staged:
            # a database with nothing in it still has a section; an absent one means a broken dump
            raise DumpIncomplete(f"the dump has no section for database {database!r}")
        sf = staged[database]
        sf.content_sha256 = scanner.sections[database].content_sha256
        sf.counts = scanner.counts(database)
        sf.seconds = elapsed
    return [staged[d] for d in databases], scanner


def _check_counts(plan: Plan, files: Sequence[StagedFile]) -> None:
    problems = []
    for sf in files:
        expected = plan.counts[sf.database]
        found = sf.counts
        diffs = expected.differences(found)
        if diffs:
            problems.append(f"{sf.database}: " + "; ".join(diffs))
    if problems:
        raise DumpIncomplete(
            "the dump is missing objects the server has (mariadb-dump exits 0 when it silently skips "
            "objects it may not read): "
            + " | ".join(problems)
            + ". Check the backup user's privileges (TRIGGER, SHOW VIEW, EVENT, SELECT on mysql.proc / SHOW_ROUTINE)"
        )


# --------------------------------------------------------------------------- replica freeze
@dataclass(frozen=True)
class FrozenPoint:
    source: BinlogCoordinates | None
    tables: dict[str, tuple[TableStat, ...]]


@contextlib.contextmanager
def frozen_replica(spec: ServerSpec, plan: Plan, checksum_tables: bool = True) -> Iterator[FrozenPoint]:
    """Stop the replica's SQL thread, record where it stopped and the table stats there;
    restart the SQL thread afterwards, always (even on failure)."""
    dialect = plan.dialect
    conn = db.connect(spec, read_timeout=3600)
    try:
        db.execute(conn, dialect.stop_replica_sql_thread())
        try:
            status = db.replica_status(conn, dialect)
            source = None
            if status is not None and status.relay_source_log_file:
                source = BinlogCoordinates(
                    file=status.relay_source_log_file,
                    position=int(status.exec_source_log_pos or 0),
                    gtid=status.executed_gtid or None,
                )
            tables = table_stats(conn, plan.databases, plan.lossy_columns) if checksum_tables else {}
            yield FrozenPoint(source, tables)
        finally:
            with contextlib.suppress(Exception):
                conn.ping(reconnect=True)
            db.execute(conn, dialect.start_replica_sql_thread())
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def table_stats(
    conn: db.Connection, databases: Sequence[str], lossy: dict[str, tuple[str, ...]] | None = None
) -> dict[str, tuple[TableStat, ...]]:
    """Row count and content checksum of every base table (at a frozen point); FLOAT
    columns (``table.column`` in ``lossy``) are left out of the checksum."""
    out: dict[str, tuple[TableStat, ...]] = {}
    for database in databases:
        by_table: dict[str, list[str]] = {}
        for col in (lossy or {}).get(database, ()):
            table, _, column = col.partition(".")
            by_table.setdefault(table, []).append(column)
        out[database] = tuple(table_checksums(conn, database, by_table).values())
    return out


# --------------------------------------------------------------------------- the backup
@dataclass
class LocationResult:
    location: str
    ok: bool
    seconds_upload: float = 0.0  # first byte to last file published (overlaps the dump)
    seconds_upload_after_dump: float = 0.0  # the part of it after the dump ended
    seconds_verify: float = 0.0
    error: str = ""
    manifest_key: str = ""

    def durations(self) -> dict[str, float]:
        return {
            f"upload:{self.location}": round(self.seconds_upload, 3),
            f"upload_after_dump:{self.location}": round(self.seconds_upload_after_dump, 3),
            f"verify:{self.location}": round(self.seconds_verify, 3),
        }


@dataclass
class BackupResult:
    manifest: BackupManifest  # the manifest as written (location field = first good location)
    locations: list[LocationResult]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.locations)

    @property
    def failed_locations(self) -> list[str]:
        return [r.location for r in self.locations if not r.ok]

    def rows(self) -> list[dict[str, Any]]:
        """One row per file and location (for a table artifact)."""
        out = []
        for loc in self.locations:
            for f in self.manifest.files:
                out.append(
                    {
                        "backup_id": self.manifest.backup_id,
                        "location": loc.location,
                        "status": "verified" if loc.ok else f"FAILED: {loc.error[:200]}",
                        "database": f.database,
                        "file": f.path,
                        "raw_bytes": f.raw_bytes,
                        "stored_bytes": f.stored_bytes,
                        "ratio": round(f.raw_bytes / f.stored_bytes, 2) if f.stored_bytes else None,
                        "sha256": f.stored_sha256,
                        "tables": f.counts.tables if f.counts else None,
                    }
                )
        return out


def run_backup(
    spec: ServerSpec,
    locations: Sequence[Location],
    codec: Codec,
    *,
    databases: Sequence[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    parallel: int = 1,
    from_replica: bool = False,
    tags: Sequence[str] = (),
    staging_dir: str | None = None,
    progress: ProgressFn | None = None,
    progress_interval: float = 5.0,
    dump_timeout: float | None = 24 * 3600,
    now: datetime | None = None,
    plan: Plan | None = None,
    log: Callable[[str], None] | None = None,
    encryption_key: bytes | None = None,
) -> BackupResult:
    """Make one logical backup of ``spec`` at every location. See the module docstring.

    ``encryption_key`` (32 bytes): every file is encrypted (AES-256-GCM, chunked) after
    compression, before it leaves the machine; the manifest records the key id, never the key.
    """
    say = log or (lambda _m: None)
    check_backup_parameters(
        locations,
        databases=databases,
        include=include,
        exclude=exclude,
        parallel=parallel,
        staging_dir=staging_dir,
        progress_interval=progress_interval,
        tags=tags,
    )
    # first what killed runs left (staging dumps, scratch servers): before the space check
    reaper.reap([staging_dir], log=say)
    plan = plan or preflight(
        spec,
        locations,
        databases=databases,
        include=include,
        exclude=exclude,
        staging_dir=staging_dir,
        from_replica=from_replica,
    )
    started_at = now or datetime.now(UTC)
    backup_id = ids.new_backup_id(started_at)
    warnings = list(plan.warnings)
    durations: dict[str, float] = {}
    staging_root = private_tempdir(staging_dir, "mysqlops-staging-")
    uploads = _Uploads(
        locations, ids.backup_dir(spec.name, backup_id), plan.estimated_bytes, say, progress_interval
    )
    try:
        t0 = time.monotonic()
        prog = Progress(time.monotonic(), sum(plan.estimated_bytes.values()))
        ticker = _Ticker(prog, progress, progress_interval)
        frozen: FrozenPoint | None = None
        with contextlib.ExitStack() as stack:
            if from_replica:
                frozen = stack.enter_context(frozen_replica(spec, plan))
                say(f"replica SQL thread stopped at source {frozen.source}")
            files, coordinates = _dump_all(
                plan,
                codec,
                staging_root,
                ticker,
                parallel,
                from_replica,
                dump_timeout,
                encryption_key,
                uploads.add,
            )
        dump_ended = time.monotonic()
        durations["dump"] = round(dump_ended - t0, 3)
        ticker.done()
        _check_counts(plan, files)
        if parallel > 1 and not from_replica and len(files) > 1:
            warnings.append(
                f"parallel={parallel} on a primary: each database is consistent on its own and has its own "
                "binlog coordinates; the databases are not at one common point"
            )
        backup_files = [
            sf.to_backup_file(
                os.path.basename(sf.path),
                frozen.tables.get(sf.database, ()) if frozen else (),
                plan.lossy_columns.get(sf.database, ()),
            )
            for sf in files
        ]
        finished_at = datetime.now(UTC)
        base = BackupManifest(
            backup_id=backup_id,
            server=spec.name,
            location="",
            kind=BackupKind.FULL,
            method=BackupMethod.LOGICAL,
            flavor=plan.version.flavor.value,
            server_version=f"{plan.version.major}.{plan.version.minor}.{plan.version.patch}",
            databases=plan.databases,
            files=tuple(backup_files),
            started_at=started_at,
            finished_at=finished_at,
            compression=codec.label,
            coordinates=coordinates,
            source_coordinates=frozen.source if frozen else None,
            durations=durations,
            tools={"dump": plan.tool_version, "mysqlops": _own_version()},
            tags=tuple(tags),
            warnings=tuple(warnings),
            encryption_key_id=key_id(encryption_key) if encryption_key is not None else None,
            non_transactional_tables={
                d: dict(t) for d, t in plan.non_transactional.items() if d in plan.databases
            },
            extra={
                "from_replica": from_replica,
                "parallel": parallel,
                "empty": all(sf.counts.tables == 0 for sf in files),
                "server_identity": plan.identity,
            },
        )
        results = uploads.finish(base, dump_ended, durations)
        first_ok = next((r.location for r in results if r.ok), "")
        manifest = replace(base, location=first_ok, durations=dict(durations))
        return BackupResult(manifest, results, warnings)
    finally:
        uploads.close()  # a dump that failed abandons every upload: nothing becomes visible
        shutil.rmtree(staging_root, ignore_errors=True)


def _own_version() -> str:
    try:
        from importlib.metadata import version

        return version("mysqlops")
    except Exception:  # noqa: BLE001 - metadata missing in a source checkout
        return "dev"


def _dump_all(
    plan: Plan,
    codec: Codec,
    staging: str,
    ticker: _Ticker,
    parallel: int,
    from_replica: bool,
    timeout: float | None,
    key: bytes | None = None,
    on_file: Callable[[StagedFile, Growth], None] | None = None,
) -> tuple[list[StagedFile], BinlogCoordinates | None]:
    dialect = plan.dialect
    if not plan.databases:
        return [], _coords_from_header(dialect, "")
    if parallel == 1 or len(plan.databases) == 1:
        single, scanner = _dump_stream(
            plan, plan.databases, codec, staging, ticker, timeout, None, key, on_file
        )
        return single, _coords_from_header(dialect, scanner.coordinates_text)
    cancel = threading.Event()

    def one(database: str) -> tuple[list[StagedFile], DumpScanner]:
        try:
            return _dump_stream(plan, [database], codec, staging, ticker, timeout, cancel, key, on_file)
        except BaseException:
            cancel.set()  # one failure stops the others: nothing is published anyway
            raise

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="dump") as pool:
        outcomes = list(pool.map(one, plan.databases))
    files: list[StagedFile] = []
    coords: list[BinlogCoordinates] = []
    for staged, scanner in outcomes:
        c = _coords_from_header(dialect, scanner.coordinates_text)
        for sf in staged:
            sf.coordinates = c
            files.append(sf)
        if c:
            coords.append(c)
    if from_replica and coords:
        return files, coords[0]  # all equal: the replica was frozen
    # different points per database: the earliest is where binlog replay would have to start
    earliest = min(coords, key=lambda c: (c.sequence, c.position)) if coords else None
    return files, earliest


def _coords_from_header(dialect: Dialect, header: str) -> BinlogCoordinates | None:
    if not header:
        return None
    file, position, gtid = dialect.parse_dump_coordinates(header)
    if not file or position is None:
        return None
    return BinlogCoordinates(file=file, position=int(position), gtid=gtid)


class _Gate:
    """Whether the dump was proven good. Uploads wait here before publishing anything."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._failure: str | None = None

    def open(self) -> None:
        self._event.set()

    def abort(self, reason: str) -> None:
        if not self._event.is_set():
            self._failure = reason
            self._event.set()

    def wait(self) -> None:
        self._event.wait()
        if self._failure is not None:
            raise BackupAborted(self._failure)


class _Lane:
    """One location: follows each staged file while it is written, publishes behind the gate,
    reads every stored copy back, then writes the manifest."""

    def __init__(self, location: Location, directory: str, gate: _Gate, streams: int) -> None:
        self.location = location
        self.store = Store(location)
        self.directory = directory
        self.gate = gate
        self.pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix=f"upload-{location.name}"[:40])
        self.jobs: list[Future[None]] = []
        self.lock = threading.Lock()
        self.committed: list[str] = []
        self.error = ""
        self.first_byte: float | None = None
        self.last_commit = 0.0
        self.verify_seconds = 0.0
        self.sent: dict[str, int] = {}  # staged path -> bytes read by the current attempt

    def submit(self, sf: StagedFile, growth: Growth, size_hint: int) -> None:
        job = self.pool.submit(self._one, sf, growth, size_hint)
        with self.lock:
            self.jobs.append(job)

    def _one(self, sf: StagedFile, growth: Growth, size_hint: int) -> None:
        if self.error:
            return  # this location already failed: do not keep uploading to it
        key = f"{self.directory}/{os.path.basename(sf.path)}"

        def ready(written: CountingHash) -> None:
            self.gate.wait()  # the whole dump is proven good, and this file is complete
            if written.size != sf.stored.size or written.hexdigest() != sf.stored.hexdigest():
                raise IntegrityError(
                    f"location {self.location.name!r}: {key} uploaded {written.size} bytes that differ "
                    f"from the staged file ({sf.stored.size} bytes)"
                )

        with self.lock:
            self.first_byte = self.first_byte or time.monotonic()
        try:
            obj = self.store.put_from(
                key,
                lambda: cast(IO[bytes], FollowReader(sf.path, growth, on_read=self._counter(sf.path))),
                size_hint=size_hint,
                before_commit=ready,
                verify=False,
            )
            with self.lock:
                self.committed.append(key)
                self.last_commit = max(self.last_commit, time.monotonic())
            t = time.monotonic()
            self.store.verify(key, obj.sha256, obj.size)
            with self.lock:
                self.verify_seconds += time.monotonic() - t
        except MysqlopsError as exc:
            if not isinstance(exc, BackupAborted):
                self.error = self.error or str(exc)
            raise

    def _counter(self, path: str) -> Callable[[int], None]:
        self.sent[path] = 0  # a new attempt starts from the beginning of the file

        def add(n: int) -> None:
            self.sent[path] += n

        return add

    @property
    def sent_bytes(self) -> int:
        return sum(self.sent.values())

    def finish(self, base: BackupManifest, dump_ended: float) -> LocationResult:
        result = LocationResult(self.location.name, ok=False)
        with self.lock:
            jobs = list(self.jobs)
        for job in jobs:
            with contextlib.suppress(Exception):
                job.result()
        end = self.last_commit or time.monotonic()
        result.seconds_upload = max(0.0, end - (self.first_byte or dump_ended))
        result.seconds_upload_after_dump = max(0.0, end - dump_ended)
        result.seconds_verify = self.verify_seconds
        try:
            if self.error:
                raise StorageError(self.error)
            if len(self.committed) != len(jobs):
                raise StorageError(f"location {self.location.name!r}: some files were not uploaded")
            manifest = replace(
                base,
                location=self.location.name,
                durations={**base.durations, **result.durations()},
            )
            key = f"{self.directory}/{ids.MANIFEST_NAME}"
            self.store.put_bytes(manifest.to_json().encode(), key)  # the commit marker, last
            result.manifest_key = key
            result.ok = True
        except MysqlopsError as exc:
            result.error = str(exc)
            for key in self.committed:  # not a backup without a manifest: leave no garbage either
                with contextlib.suppress(Exception):
                    self.store.delete(key)
            with contextlib.suppress(Exception):
                self.store.abort_stale_uploads(older_than=timedelta(0), prefix=self.directory)
        return result


class _Uploads:
    """Every staged file to every location, each uploaded while the dump is writing it.

    ``STREAMS`` files are followed at once per location (a multi-database dump keeps every
    file open until its end, so later files wait and are read from disk): that bounds the
    memory of open S3 multipart buffers (one part each) whatever the number of databases.
    """

    STREAMS = 2

    def __init__(
        self,
        locations: Sequence[Location],
        directory: str,
        estimates: dict[str, int],
        log: Callable[[str], None] | None = None,
        report_interval: float = 5.0,
    ) -> None:
        self.gate = _Gate()
        self.log = log
        self.report_interval = max(0.2, report_interval)
        self.estimates = estimates
        self.growths: list[Growth] = []
        self.lock = threading.Lock()
        self.lanes: list[_Lane] = []
        try:
            for location in locations:
                self.lanes.append(_Lane(location, directory, self.gate, self.STREAMS))
        except BaseException:
            self.close()
            raise

    def add(self, sf: StagedFile, growth: Growth) -> None:
        with self.lock:
            self.growths.append(growth)
        hint = 2 * self.estimates.get(sf.database, 0)  # compressed is smaller than this
        for lane in self.lanes:
            lane.submit(sf, growth, hint)

    def finish(
        self, base: BackupManifest, dump_ended: float, durations: dict[str, float]
    ) -> list[LocationResult]:
        """Open the gate (the dump is proven good), let every location publish and verify, and
        write each location's manifest once all its files verified."""
        self.gate.open()
        total = sum(f.stored_bytes for f in base.files)
        with ThreadPoolExecutor(max_workers=max(1, len(self.lanes)), thread_name_prefix="publish") as pool:
            futures = [pool.submit(lane.finish, base, dump_ended) for lane in self.lanes]
            # a slow location keeps uploading after the dump: say so, or it looks like a hang
            while wait(futures, timeout=self.report_interval).not_done:
                self._report(total, dump_ended)
            results = [f.result() for f in futures]
        for r in results:
            durations.update(r.durations())
        return results

    def _report(self, total: int, dump_ended: float) -> None:
        if self.log is None:
            return
        parts = [
            f"{lane.location.name} {lane.sent_bytes / 1e6:.1f} of {total / 1e6:.1f} MB"
            f" ({100 * lane.sent_bytes / total if total else 100:.0f}%)"
            for lane in self.lanes
        ]
        self.log(f"dump done {time.monotonic() - dump_ended:.0f}s ago; uploading: " + ", ".join(parts))

    def close(self) -> None:
        self.gate.abort("the backup failed before it was published")
        with self.lock:
            growths = list(self.growths)
        for growth in growths:
            growth.fail("the backup failed before it was published")
        for lane in self.lanes:
            lane.pool.shutdown(wait=True)


def _upload_everywhere(
    base: BackupManifest,
    files: Sequence[StagedFile],
    locations: Sequence[Location],
    durations: dict[str, float],
) -> list[LocationResult]:
    """Upload files that are already complete (physical backups): the same lanes, no overlap."""
    uploads = _Uploads(locations, ids.backup_dir(base.server, base.backup_id), {})
    try:
        for sf in files:
            growth = Growth()
            growth.finish(sf.stored.size)
            uploads.add(sf, growth)
        return uploads.finish(base, time.monotonic(), durations)
    finally:
        uploads.close()
