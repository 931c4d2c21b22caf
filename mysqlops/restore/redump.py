"""The restore test's re-dump hash, table by table, while the other tables still load.

A logical backup records one content hash per database (``BackupFile.content_sha256``,
:mod:`mysqlops.streams.dumpscan`): sha256 over its statements without comments. The restore
test proves the restored data equal what was dumped by dumping the restored database again
and comparing. Here the same statements are hashed per piece (each table's structure, rows and
triggers; the database's other statements together: ``CREATE DATABASE``, views, routines,
events), so the rows of each table can be re-dumped as soon as that table is loaded:

- expected: the pieces of the verified copy itself (:func:`scan_copy`, while the scratch server
  starts); its whole content hash, computed in the same pass, must equal the manifest's, so the
  pieces are of exactly the content the backup recorded (else the caller falls back to the
  whole re-dump);
- restored: each table's rows (``--no-create-info --skip-triggers`` of that table) re-dumped by
  :class:`TableRedumps` (``restore_backup(on_table=...)``) in background threads from the
  load's tail on (while the last tables load), then over one thread per core; structures,
  triggers and the rest in one ``--no-data`` re-dump after the load (foreign keys and
  triggers only exist then). Between a table's re-dump and the end of the load the loader
  writes no rows (it adds keys and foreign keys, then triggers, routines, events and views),
  and restored events never run: scratch servers start with the event scheduler off.

Every piece equal ⇔ the statements are equal piece by piece, the same verdict as the whole
re-dump; a piece that differs names its table (:func:`compare_pieces`), and the caller confirms
a difference with the whole re-dump (a tool that laid its pieces out otherwise never fails a
good copy). Measured on 2 shared cores (300 MB of SQL): the verify phase after the load is
about what the whole re-dump took (the re-dumps cost the same CPU, the cores are busy
loading); the gain is the table named, and overlap where cores are idle.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mysqlops import layout, redact
from mysqlops.adapters import process
from mysqlops.adapters.storage import Store
from mysqlops.errors import MysqlopsError
from mysqlops.manifest import BackupManifest, Check
from mysqlops.model import Location, ServerSpec
from mysqlops.restore.fetch import fetch_verified
from mysqlops.restore.load import iter_raw
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.streams.checksum import CHUNK
from mysqlops.streams.dumpscan import MARKER, DumpScanner
from mysqlops.streams.keys import Keyring
from mysqlops.tools.client import DumpOptions, Program, client_option_file, dump_argv, table_data_dump_argv

Piece = tuple[str, str, str]  # (database, kind: structure/data/triggers/other, table or "")
_BATCH = 200  # tables per re-dump at most (argv length)
_BATCH_BYTES = 8 << 20  # small tables share a re-dump up to this many bytes of rows


@dataclass
class CopyContent:
    """The content of one database of a stored copy: whole hash and pieces."""

    database: str
    content_sha256: str
    pieces: dict[Piece, str] = field(default_factory=dict)
    sizes: dict[Piece, int] = field(default_factory=dict)  # bytes of dump text per piece


def scan_copy(
    path: str, compression: str, keyring: Keyring | None, flavor: str | None
) -> dict[str, CopyContent]:
    """Content hash, pieces and piece sizes of each database in a fetched (sha256-checked)
    backup file."""
    sizes: dict[Piece, int] = {}
    where: list[Piece] = []

    def on_section(kind: str, table: str | None) -> None:
        where[:] = [(scanner.current or "", kind, table or "")]

    def on_data(_db: str | None, data: bytes | memoryview) -> None:
        if where:
            sizes[where[0]] = sizes.get(where[0], 0) + len(data)

    scanner = DumpScanner(on_data, on_section, flavor=flavor, piece_hashes=True)
    for chunk in iter_raw(path, compression, keyring, {}):
        scanner.feed(chunk)
    scanner.finish()
    pieces = scanner.piece_sha256()
    return {
        name: CopyContent(
            name,
            stats.content_sha256,
            {k: v for k, v in pieces.items() if k[0] == name},
            {k: v for k, v in sizes.items() if k[0] == name},
        )
        for name, stats in scanner.sections.items()
    }


@dataclass
class FetchedCopy:
    """The copy fetched and checked before the load: a local location over the verified files
    (the load reads them there), and the content per piece of the databases compared by re-dump."""

    location: Location
    content: dict[str, CopyContent]


def fetch_copy(
    location: Location, manifest: BackupManifest, root: str, keyring: Keyring | None
) -> FetchedCopy:
    """Every file of the copy at ``location`` into ``root``, laid out as at a location, size and
    sha256 checked (:func:`~mysqlops.restore.fetch.fetch_verified`), then hashed per piece
    (:func:`scan_copy`) for the databases whose re-dump hash is compared
    (a content hash and no per-table stats). A copy that cannot be scanned is compared whole."""
    local = Location(location.name, f"file://{root}")
    source, here = Store(location), Store(local)
    content: dict[str, CopyContent] = {}
    for f in manifest.files:
        key = layout.data_key(manifest.server, manifest.backup_id, f.path)
        dest = here.path(key)
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        fetch_verified(source, key, f, dest)
        if f.database and f.content_sha256 and not f.tables:
            with contextlib.suppress(MysqlopsError):
                content.update(
                    scan_copy(
                        dest,
                        manifest.compression,
                        keyring if manifest.encryption_key_id else None,
                        manifest.flavor,
                    )
                )
    return FetchedCopy(local, content)


def scan_redump(
    spec: ServerSpec, argv: tuple[str, ...], what: str, flavor: str | None, database: str | None = None
) -> DumpScanner:
    """Run one re-dump and scan it (content hash and pieces). ``database``: the dump carries
    no ``Current Database`` line (one table's dump): its content counts as that database's."""
    scanner = DumpScanner(flavor=flavor, piece_hashes=True)
    if database is not None:
        scanner.feed(MARKER + q(database).encode() + b"\n")
    with process.Pipeline(
        [argv],
        credentials=client_option_file(spec),
        stdout=process.PIPE,
        name=what,
        stderr_filter=redact.client_stderr,
    ) as pipe:
        for chunk in iter(lambda: pipe.stdout_pipe.read(CHUNK), b""):
            scanner.feed(chunk)
        scanner.finish()
        pipe.wait()
    return scanner


def redump_rest(spec: ServerSpec, database: str, program: Program, flavor: str | None) -> dict[Piece, str]:
    """Every piece but the rows: ``--no-data`` re-dump of ``database`` with the backup's options."""
    argv = dump_argv(program, database, DumpOptions(extra=("--no-data",)))
    pieces = scan_redump(spec, argv, f"re-dump of {database} (no data)", flavor).piece_sha256()
    return {k: v for k, v in pieces.items() if k[1] != "data"}


class TableRedumps:
    """``on_table`` callback: re-dump each loaded table's rows in background threads.

    Tables of the databases in ``tables`` (database -> how many tables it loads) only. The
    re-dumps wait until at most ``busy`` tables of that database still load (the load's tail,
    where a loading connection is idle: measured on 2 cores, re-dumps beside a saturated load
    slow it by about what they take). Largest table first (``sizes``: bytes of its rows in the
    dump); small tables loaded meanwhile share one re-dump (one process, one connection). The
    results (:attr:`got`, :attr:`errors`) are read after :meth:`wait`; :meth:`close` stops
    without waiting for what is pending (a failed load)."""

    def __init__(
        self,
        target: ServerSpec,
        program: Program,
        flavor: str | None,
        tables: Mapping[str, int],
        busy: int = 0,
        sizes: Mapping[Piece, int] | None = None,
    ) -> None:
        self.target, self.program, self.flavor = target, program, flavor
        self.databases = set(tables)
        self.sizes = dict(sizes or {})
        self.got: dict[Piece, str] = {}
        self.errors: dict[Piece, str] = {}
        self.early: set[Piece] = set()  # re-dumped while the load ran
        self.seconds = 0.0
        self.batches: list[tuple[float, float, int, bool]] = []  # (start, seconds, tables, while loading)
        self._start_at = {d: max(0, n - busy) for d, n in tables.items()}
        self._reported: dict[str, int] = {}
        self._created = time.monotonic()
        self._pending: list[Piece] = []
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._loading = True
        self._closing = False
        self._stop = False

    def __call__(self, database: str, table: str) -> None:
        if database not in self.databases:
            return
        with self._cond:
            self._pending.append((database, "data", table))
            reported = self._reported[database] = self._reported.get(database, 0) + 1
            if not self._threads and reported >= self._start_at[database]:
                self._start(1)
            self._cond.notify()

    def _start(self, n: int) -> None:
        for _ in range(n):
            t = threading.Thread(target=self._run, name=f"redump-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()

    def _take(self) -> list[Piece]:
        """The largest pending table, or as many small ones as fit in one batch (lock held)."""
        self._pending.sort(key=lambda k: self.sizes.get(k, 0), reverse=True)
        batch = [self._pending.pop(0)]
        total = self.sizes.get(batch[0], 0)
        while self._pending and len(batch) < _BATCH:
            size = self.sizes.get(self._pending[-1], 0)
            if total + size > _BATCH_BYTES:
                break
            batch.append(self._pending.pop())
            total += size
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing and not self._stop:
                    self._cond.wait()
                if self._stop or not self._pending:
                    return
                batch = self._take()
                loading = self._loading
            for database in dict.fromkeys(k[0] for k in batch):
                self._dump(database, [k for k in batch if k[0] == database], loading)

    def _dump(self, database: str, keys: list[Piece], loading: bool) -> None:
        keys = [k for k in dict.fromkeys(keys) if k not in self.got and k not in self.errors]
        if not keys:
            return
        t0 = time.monotonic()
        try:
            scanner = scan_redump(
                self.target,
                table_data_dump_argv(self.program, database, [k[2] for k in keys]),
                f"re-dump of {len(keys)} table(s) of {database}",
                self.flavor,
                database,
            )
            pieces, problem = scanner.piece_sha256(), "the re-dump holds no rows section for it"
        except MysqlopsError as exc:
            pieces, problem = {}, str(exc)
        with self._cond:
            self.seconds += time.monotonic() - t0
            self.batches.append(
                (round(t0 - self._created, 2), round(time.monotonic() - t0, 2), len(keys), loading)
            )
            for key in keys:
                if key in pieces:
                    self.got[key] = pieces[key]
                    if loading:
                        self.early.add(key)
                else:
                    self.errors[key] = problem

    def drain(self, missing: Iterable[tuple[str, str]], workers: int) -> None:
        """The load is over: add the tables no load reported (``missing``) and re-dump what is
        pending over ``workers`` threads, without waiting (:meth:`wait`)."""
        with self._cond:
            self._loading = False
            self._pending += [(d, "data", t) for d, t in missing]
            self._start(max(0, workers - len(self._threads)))
            self._cond.notify_all()

    def wait(self) -> None:
        """Wait until everything pending is re-dumped (after :meth:`drain`; idempotent)."""
        with self._cond:
            self._closing = True
            threads, self._threads = self._threads, []
            self._cond.notify_all()
        for t in threads:
            t.join()

    def close(self) -> None:
        """Stop: what is pending is dropped, a re-dump under way ends."""
        with self._cond:
            self._stop = True
        self.wait()


def _what(piece: Piece) -> str:
    _db, kind, table = piece
    if kind == "other":
        return "views, routines, events and the database's own statements"
    return {"data": "rows", "structure": "structure", "triggers": "triggers"}.get(
        kind, kind
    ) + f" of {q(table)}"


def compare_pieces(
    name: str,
    expected: CopyContent,
    restored: Mapping[Piece, str],
    errors: Mapping[Piece, str],
    early: int,
) -> list[Check]:
    """The database's re-dump check from its pieces, and one failed check per table that differs."""
    differs: dict[str, list[str]] = {}
    for piece, want in expected.pieces.items():
        got = restored.get(piece)
        if got != want:
            why = errors.get(piece) or (
                f"sha256 {got[:16]}… differs from the backup's {want[:16]}…"
                if got
                else "absent after restore"
            )
            differs.setdefault(piece[2], []).append(f"{_what(piece)}: {why}")
    for piece in restored.keys() - expected.pieces.keys():
        differs.setdefault(piece[2], []).append(f"{_what(piece)}: not in the backup")
    if not differs:
        tables = len({p[2] for p in expected.pieces if p[1] == "data"})
        return [
            Check(
                f"{name}: re-dump content hash",
                True,
                f"sha256 {expected.content_sha256[:16]}… equals the backup's, piece by piece: the rows of "
                f"{tables} table(s) re-dumped as each was loaded ({early} while others loaded), structures, "
                "triggers, views, routines and events after the load",
            )
        ]
    checks = [
        Check(
            f"{name}: re-dump content hash",
            False,
            "differs from the backup's in "
            + "; ".join(f"{q(t)}" if t else "the database's other objects" for t in sorted(differs))
            + f" (the backup's {expected.content_sha256[:16]}…)",
        )
    ]
    for table, reasons in sorted(differs.items()):
        label = f"{name}.{table}" if table else f"{name} (views, routines, events)"
        checks.append(Check(f"{label}: re-dump content hash", False, "; ".join(reasons)[:500]))
    return checks
