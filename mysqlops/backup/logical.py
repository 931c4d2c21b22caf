"""Logical backups: pre-flight, consistent dump, stream → compress → sha256 → staging,
upload to every location with read-back verification, manifest last.

Upload overlaps the dump: every location follows each staging file while it grows (a multipart
upload on S3, a temp file on disk) and holds the last step, the one that makes the object
visible, until the whole dump has been proven complete (trailer, object counts). A dump that
fails abandons every upload, so nothing is ever published for it; each stored copy is then read
back and its sha256 checked, and the manifest is written last.

The flow (flows/backup.py) calls :func:`mysqlops.backup.run`, which calls :func:`run_backup`
with the request and the run context.

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
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mysqlops import layout, redact
from mysqlops.adapters import process, reaper
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.backup.freeze import FrozenPoint, frozen_replica
from mysqlops.backup.preflight import Plan, preflight
from mysqlops.backup.staging import READ_CHUNK, StagedFile, _Sink
from mysqlops.backup.uploads import LocationResult, _Uploads, as_uploaded
from mysqlops.errors import (
    DumpIncomplete,
)
from mysqlops.manifest import BackupManifest
from mysqlops.model import (
    BackupKind,
    BackupMethod,
    BinlogCoordinates,
)
from mysqlops.progress import Progress, Ticker
from mysqlops.sql.dialect import Dialect
from mysqlops.streams.compression import Codec
from mysqlops.streams.dumpscan import DumpScanner
from mysqlops.streams.follow import Growth
from mysqlops.streams.keys import key_id
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv
from mysqlops.units import human_bytes

if TYPE_CHECKING:
    from mysqlops.backup.request import BackupRequest
    from mysqlops.runs import RunContext


def _dump_stream(
    plan: Plan,
    databases: Sequence[str],
    codec: Codec,
    staging: str,
    ticker: Ticker,
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
            name = layout.data_file_name(database, codec.extension)
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

    def on_section(kind: str, table: str | None) -> None:
        if scanner.current is not None:  # table index: each section its own frame
            sink_for(scanner.current).begin_section(kind, table)

    scanner = DumpScanner(on_data, on_section, flavor=plan.version.flavor)
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
                    sink.begin_section("other", None)
                    sink.write(scanner.footer)
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


def plan_backup(request: BackupRequest, ctx: RunContext) -> Plan:
    """The logical pre-flight (nothing is written when it fails), reported."""
    checked = preflight(
        request.server,
        request.locations,
        databases=request.databases,
        include=request.include,
        exclude=request.exclude,
        staging_dir=ctx.staging_dir,
        from_replica=request.from_replica,
    )
    ctx.reporter.info(
        f"pre-flight ok: {checked.version}, {len(checked.databases)} database(s) "
        f"({human_bytes(sum(checked.estimated_bytes.values()))} estimated), "
        f"locations {', '.join(loc.name for loc in request.locations)}"
    )
    for warning in checked.warnings:
        ctx.reporter.warning(warning)
    return checked


def run_backup(request: BackupRequest, ctx: RunContext, *, plan: Plan | None = None) -> BackupResult:
    """Make one logical backup of ``request.server`` at every location. See the module docstring.

    ``plan``: a pre-flight already made (tests that change it); without it the pre-flight runs
    here, after what killed runs left was removed. With ``ctx.keyring`` every file is encrypted
    (AES-256-GCM, chunked) after compression, before it leaves the machine; the manifest
    records the key id, never the key.
    """
    request.check(ctx)  # every parameter, before anything connects
    spec, locations, codec = request.server, request.locations, request.codec
    say = ctx.reporter.info
    encryption_key = ctx.encryption_key
    # first what killed runs left (staging dumps, scratch servers): before the space check
    reaper.reap([ctx.staging_dir], log=say)
    plan = plan or plan_backup(request, ctx)
    started_at = datetime.now(UTC)
    backup_id = layout.new_backup_id(started_at)
    warnings = list(plan.warnings)
    durations: dict[str, float] = {}
    staging_root = private_tempdir(ctx.staging_dir, "mysqlops-staging-")
    uploads = _Uploads(
        locations, layout.backup_dir(spec.name, backup_id), plan.estimated_bytes, say, ctx.progress_interval
    )
    try:
        t0 = time.monotonic()
        prog = Progress(time.monotonic(), sum(plan.estimated_bytes.values()))
        ticker = Ticker(prog, ctx.reporter.transfer, ctx.progress_interval)
        frozen: FrozenPoint | None = None
        with contextlib.ExitStack() as stack:
            if request.from_replica:
                frozen = stack.enter_context(frozen_replica(spec, plan))
                say(f"replica SQL thread stopped at source {frozen.source}")
            files, coordinates = _dump_all(
                plan,
                codec,
                staging_root,
                ticker,
                request.parallel,
                request.from_replica,
                ctx.timeout,
                encryption_key,
                uploads.add,
            )
        dump_ended = time.monotonic()
        durations["dump"] = round(dump_ended - t0, 3)
        ticker.done()
        _check_counts(plan, files)
        if request.parallel > 1 and not request.from_replica and len(files) > 1:
            warnings.append(
                f"parallel={request.parallel} on a primary: each database is consistent on its own and has its own "
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
            tools={"dump": plan.tool_version, **plan.tool_build, "mysqlops": _own_version()},
            tags=tuple(request.tags),
            warnings=tuple(warnings),
            encryption_key_id=key_id(encryption_key) if encryption_key is not None else None,
            non_transactional_tables={
                d: dict(t) for d, t in plan.non_transactional.items() if d in plan.databases
            },
            extra={
                "from_replica": request.from_replica,
                "parallel": request.parallel,
                "empty": all(sf.counts.tables == 0 for sf in files),
                "server_identity": plan.identity,
            },
        )
        results = uploads.finish(base, dump_ended, durations)
        return BackupResult(as_uploaded(base, results, durations), results, warnings)
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
    ticker: Ticker,
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
    file, position, gtid = dialect.dump.parse_dump_coordinates(header)
    if not file or position is None:
        return None
    return BinlogCoordinates(file=file, position=int(position), gtid=gtid)
