"""Parallel load of one logical backup file, with secondary indexes and foreign keys deferred.

Works on any logical backup (no index in the manifest needed): the decrypted, decompressed
stream (with renames applied) is split while it streams (:mod:`mysqlops.streams.tablesplit`):

1. the serial part (session settings, ``CREATE DATABASE``, each table's structure, view
   placeholders) runs at once, statement by statement, on one connection; a ``CREATE TABLE``
   runs without its non-unique secondary keys and foreign keys (:func:`mysqlops.sql.ddl.defer_indexes`);
2. each table's rows are spooled to a private file (memory stays flat; at most ``workers``
   units wait on disk besides those loading) and, as soon as the section ends, run on one of
   ``workers`` connections, each with the dump's own session settings (UNIQUE_CHECKS,
   FOREIGN_KEY_CHECKS, SQL_LOG_BIN, SQL_MODE, time zone, character set as the dump sets them).
   The statements of a data section end at ``;`` + newline (data never holds a raw newline),
   so they are sent as they are, without a client process parsing every byte again (as
   myloader does); then that table's deferred keys are added in one ``ALTER TABLE``, and
   ``on_table`` (a per-table verification) runs while other tables still load;
3. when every table is in: the deferred foreign keys (with FOREIGN_KEY_CHECKS=0 as the dump
   loads), then triggers, events, routines and final views in dump order (the dump's view
   placeholders make views on views resolve in any order) through the real client.

Progress is logged per table (name, bytes of SQL, seconds): never row data. Any failure stops
the other loads (their clients are killed) and raises; the caller drops what it created. Every
loading connection has a read timeout (``statement_timeout``): a statement the server does not
answer for that long fails the load instead of hanging it. The stream comes from
:func:`mysqlops.restore.load.iter_raw` (a whole backup file) or from
:mod:`mysqlops.restore.tables` (the sections of a few tables); the real client is driven by
:func:`mysqlops.restore.load.pipe_into_client`.

Over 500 lines as one cohesive concept: the loader's reading thread, serial part, worker
connections and their shared failure state are one state machine, split only at its seams.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from mysqlops import redact
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process
from mysqlops.errors import ProcessError, RestoreError
from mysqlops.model import ServerSpec
from mysqlops.restore.load import STATEMENT_TIMEOUT_SECONDS, default_workers, iter_raw, pipe_into_client
from mysqlops.sql.ddl import NOTHING_TO_DEFER, DeferredTable, add_clauses_sql, defer_indexes
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.sql.script import LAST_SQLSTATE, session_prefix, statements
from mysqlops.streams.checksum import CHUNK, iter_chunks
from mysqlops.streams.crypto import Decryptor, Encryptor
from mysqlops.streams.keys import Keyring, generate_key
from mysqlops.streams.tablesplit import TableSplitter

TableFn = Callable[[str, str], None]  # (database as restored, table): called when a table is fully in
_TABLE_LOCKS = (b"LOCK TABLES ", b"UNLOCK TABLES")
__all__ = [
    "ParallelLoader",
    "ParallelStats",
    "TableFn",
    "default_workers",
    "execute_raw",
    "iter_raw",
    "load_file_parallel",
]


def execute_raw(conn: db.Connection, stmt: bytes) -> None:
    """Run one statement as the dump's bytes (pymysql sends bytes unchanged)."""
    raw: Any = stmt
    with conn.cursor() as cur:
        cur.execute(raw)


#: a table's rows past this many bytes of SQL go on in another unit, which another connection
#: may load at the same time: one big table (a single-table restore) uses every connection
SPLIT_BYTES = 8 << 20


@dataclass
class _Unit:
    """A part of one table's rows, spooled: whole statements, ``first_line`` its first line
    within the table's data section (for error messages)."""

    table: str
    path: str
    use_line: bytes
    size: int = 0
    first_line: int = 1
    lines: int = 0


@dataclass
class _TableLoad:
    """The parts of one table's rows: the one who loads the last of them adds the keys."""

    parts: int = 0  # queued
    done: int = 0
    ended: bool = False  # its data section ended: no more parts
    size: int = 0
    seconds: float = 0.0  # connection-seconds loading its parts


@dataclass
class ParallelStats:
    tables: int = 0
    deferred_tables: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # table -> why its keys were not deferred
    deferred: list[str] = field(default_factory=list)  # `db`.`table` whose keys were added after the rows
    seconds: dict[str, float] = field(default_factory=dict)  # table -> load + index seconds


class ParallelLoader:
    """Load one dump file in parallel (see the module doc). One instance per file."""

    def __init__(
        self,
        target: ServerSpec,
        program: Any,
        spool_dir: str,
        *,
        workers: int | None = None,
        timeout: float | None = None,
        on_table: TableFn | None = None,
        log: Callable[[str], None] | None = None,
        defer: bool = True,
        seal_spool: bool = False,
        statement_timeout: float | None = STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        self.target = target
        self.program = program
        self.spool_dir = spool_dir
        self.workers = max(1, workers or default_workers())
        self.timeout = timeout
        self.on_table = on_table
        self.say = log or (lambda _m: None)
        self.defer = defer
        self.statement_timeout = statement_timeout  # seconds one statement may go unanswered
        # an encrypted backup's rows never rest on disk in clear: the spool is sealed with a
        # key that lives in this process's memory only
        self._spool_key = generate_key() if seal_spool else None
        self._sealer: Encryptor | None = None
        self.stats = ParallelStats()
        self._serial = bytearray()
        self._post: IO[bytes] | None = None
        self._spool: IO[bytes] | None = None
        self._unit: _Unit | None = None
        self._pending_table = ""
        self._deferred: dict[tuple[bytes, str], DeferredTable] = {}  # (use line, table)
        self._queue: queue.Queue[_Unit | None] = queue.Queue(maxsize=self.workers)  # None: stop
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._pipes: dict[int, process.Pipeline] = {}
        self._conn: db.Connection | None = None
        self._prefix = b""
        self._splitter = TableSplitter(
            on_serial=self._serial_bytes,
            on_post=self._post_bytes,
            on_data=self._data_bytes,
            on_table=self._table_starts,
            on_data_start=self._data_starts,
            on_data_end=self._data_ends,
            on_post_start=self._post_starts,
        )
        self._units = 0
        self._loads: dict[tuple[bytes, str], _TableLoad] = {}

    # -- splitter callbacks (the reading thread) -----------------------------------------------
    def _serial_bytes(self, data: memoryview) -> None:
        self._serial += data
        cut = self._serial.rfind(b";\n")
        if cut >= 0:
            text = bytes(self._serial[: cut + 2])
            del self._serial[: cut + 2]
            self._run_serial(text)

    def _post_bytes(self, data: memoryview) -> None:
        if self._post is None:
            self._post = open(os.path.join(self.spool_dir, "post.sql"), "wb")  # noqa: SIM115
        self._post.write(data)

    def _post_starts(self, use_line: bytes) -> None:
        self._post_bytes(memoryview(use_line))

    def _table_starts(self, name: str) -> None:
        self._pending_table = name

    def _data_starts(self, name: str) -> None:
        self._flush_serial()
        if not self._prefix:  # the header is complete once a section starts
            self._prefix = session_prefix(bytes(self._splitter.header))
        self._loads[(self._splitter.use_line, name)] = _TableLoad()
        self._open_part(name, 1)

    def _open_part(self, name: str, first_line: int) -> None:
        self._units += 1
        path = os.path.join(self.spool_dir, f"unit-{self._units}.sql")
        self._spool = open(path, "wb")  # noqa: SIM115
        self._sealer = Encryptor(self._spool_key) if self._spool_key is not None else None
        self._unit = _Unit(name, path, self._splitter.use_line, first_line=first_line)

    def _spool_bytes(self, data: memoryview) -> None:
        assert self._spool is not None and self._unit is not None
        self._spool.write(self._sealer.update(data) if self._sealer is not None else data)
        self._unit.size += len(data)
        self._unit.lines += bytes(data).count(b"\n")

    def _data_bytes(self, data: memoryview) -> None:
        assert self._unit is not None
        if self._unit.size + len(data) < SPLIT_BYTES:
            self._spool_bytes(data)
            return
        cut = bytes(data).rfind(b";\n")  # the last statement end: the next part starts a statement
        if cut < 0:
            self._spool_bytes(data)
            return
        self._spool_bytes(data[: cut + 2])
        unit = self._unit
        self._queue_part(last=False)
        self._open_part(unit.table, unit.first_line + unit.lines)
        if cut + 2 < len(data):
            self._spool_bytes(data[cut + 2 :])

    def _data_ends(self, _name: str) -> None:
        self._queue_part(last=True)

    def _queue_part(self, *, last: bool) -> None:
        assert self._spool is not None and self._unit is not None
        if self._sealer is not None:
            self._spool.write(self._sealer.finalize())
        self._spool.close()
        unit, self._spool, self._unit = self._unit, None, None
        with self._lock:
            load = self._loads[(unit.use_line, unit.table)]
            load.parts += 1
            load.size += unit.size
            load.ended = last
        while True:  # bounded: at most `workers` units wait on disk besides those loading
            self._check()
            try:
                self._queue.put(unit, timeout=0.5)
                return
            except queue.Full:
                continue

    # -- serial part ---------------------------------------------------------------------------
    def _connect(self) -> db.Connection:
        return db.connect(self.target, read_timeout=self.statement_timeout)

    def _session(self) -> db.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _no_answer(self, code: Any) -> str:
        """What a lost connection means when the statement timeout is set."""
        if code == 2013 and self.statement_timeout is not None:
            return (
                f" (no answer within the load's statement timeout of {self.statement_timeout:.0f}s: a hung server, "
                "or raise load_timeout_s if the statement is just slow)"
            )
        return ""

    def _flush_serial(self) -> None:
        if self._serial.strip():
            text = bytes(self._serial)
            self._serial.clear()
            self._run_serial(text)

    def _run_serial(self, text: bytes) -> None:
        conn = self._session()
        for stmt in statements(text):
            label = "a statement of the dump's header or structure"
            if stmt.startswith(b"CREATE TABLE ") and self._pending_table:
                label = f"the structure of table {q(self._pending_table)}"
                if self.defer:
                    split = defer_indexes(stmt.decode("utf-8", "surrogateescape"))
                    if split.deferred:
                        self._deferred[(self._splitter.use_line, self._pending_table)] = split
                        stmt = split.create.encode("utf-8", "surrogateescape")
                    elif split.kept_reason != NOTHING_TO_DEFER:
                        self.stats.kept[self._pending_table] = split.kept_reason
            try:
                execute_raw(conn, stmt)
            except Exception as exc:  # noqa: BLE001 - reported with what was running, no values
                code = exc.args[0] if exc.args else "?"
                raise RestoreError(
                    f"{label} failed on {self.target.name}: error {code}{self._no_answer(code)}"
                ) from None

    # -- workers -------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
            for pipe in list(self._pipes.values()):
                pipe.cancel()

    def _client(self, name: str, prefix: bytes, path: str) -> None:
        """Pipe ``prefix`` and the spooled ``path`` into the real client (cancelled when another
        part of the load fails). A failure names the line and what it was loading, never a value."""

        def opened(pipe: process.Pipeline) -> None:
            with self._lock:
                if self._error is not None:
                    pipe.cancel()
                self._pipes[id(pipe)] = pipe

        def closed(pipe: process.Pipeline) -> None:
            with self._lock:
                self._pipes.pop(id(pipe), None)

        def chunks() -> Iterator[bytes]:
            yield prefix
            with open(path, "rb") as src:
                yield from iter_chunks(src, CHUNK)

        pipe_into_client(
            self.target,
            self.program,
            chunks(),
            name=name,
            timeout=self.timeout,
            on_open=opened,
            on_close=closed,
        )

    def _load_unit(self, conn: db.Connection, unit: _Unit) -> None:
        """Run a table's data section over ``conn`` (which has the dump's session settings).

        A data section is LOCK TABLES, INSERTs, UNLOCK TABLES: a statement ends at ``;`` and a
        newline, which data never holds raw (mysqldump escapes it), so the statements are found
        with one bytes search and sent as they are: no client process parsing every byte again.
        ``LOCK TABLES``/``UNLOCK TABLES`` are left out: the parts of one table load over several
        connections at once (a lock held by one would stop the others), and nothing else writes
        to a table being restored. A failure names the line and the table, with the server's
        message without values."""
        execute_raw(conn, unit.use_line.rstrip().rstrip(b";"))
        pending = bytearray()
        line = unit.first_line  # of the first statement in `pending`

        def run(block: bytes) -> None:
            nonlocal line
            pos = 0
            while pos < len(block):
                end = block.find(b";\n", pos)
                if end < 0:
                    end = len(block)
                stmt = block[pos:end]
                at = line
                while stmt.startswith((b"--", b"\n", b"\r")):  # leading comment or blank lines
                    cut = stmt.find(b"\n")
                    stmt = b"" if cut < 0 else stmt[cut + 1 :]
                    at += 1
                if stmt.strip() and not stmt.startswith(_TABLE_LOCKS):
                    self._execute_data(conn, stmt, unit.table, at)
                line += block.count(b"\n", pos, end + 2)
                pos = end + 2

        for chunk in self._unit_chunks(unit.path):
            if self._error is not None:
                raise RestoreError("stopped: another table failed")
            pending += chunk
            cut = pending.rfind(b";\n")
            if cut >= 0:
                block = bytes(pending[: cut + 2])
                del pending[: cut + 2]
                run(block)
        if bytes(pending).strip():
            run(bytes(pending))

    def _unit_chunks(self, path: str) -> Iterator[bytes]:
        """The spooled bytes of a unit, unsealed when the spool is sealed."""
        opener = Decryptor(Keyring(self._spool_key)) if self._spool_key is not None else None
        with open(path, "rb") as src:
            for chunk in iter_chunks(src, CHUNK):
                yield opener.update(chunk) if opener is not None else chunk
        if opener is not None:
            yield opener.finalize()

    def _execute_data(self, conn: db.Connection, stmt: bytes, table: str, line: int) -> None:
        try:
            execute_raw(conn, stmt)
        except Exception as exc:  # noqa: BLE001 - reported value-free below
            code = exc.args[0] if exc.args else "?"
            message = str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__
            state = "HY000"
            with contextlib.suppress(Exception):
                execute_raw(conn, LAST_SQLSTATE[0].encode())
                state = str(db.scalar(conn, LAST_SQLSTATE[1]) or state)
            text = redact.client_stderr(
                f"ERROR {code} ({state}) at line {line}: {message}"
            ) + self._no_answer(code)
            raise ProcessError(
                f"load of table {q(table)} failed at line {line} (INSERT INTO: data of table {q(table)}): {text}",
                returncode=1,
                stderr_tail=text,
            ) from None

    def _alter(self, conn: db.Connection, use_line: bytes, sql: str, what: str) -> None:
        try:
            execute_raw(conn, use_line.rstrip().rstrip(b";"))
            execute_raw(conn, sql.encode("utf-8", "surrogateescape"))
        except Exception as exc:  # noqa: BLE001
            code = exc.args[0] if exc.args else "?"
            message = redact.client_stderr(str(exc.args[1])) if len(exc.args) > 1 else ""
            raise RestoreError(
                f"{what} failed on {self.target.name}: error {code} {message}".rstrip()
                + self._no_answer(code)
            ) from None

    def _worker(self) -> None:
        conn: db.Connection | None = None
        try:
            while True:
                try:
                    unit = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if self._done.is_set():
                        return  # the stream is read and nothing waits: finished
                    continue
                if unit is None:
                    return  # the stop mark: the stream is read and nothing waits
                if self._error is not None:  # failing: drop what waits
                    with contextlib.suppress(OSError):
                        os.unlink(unit.path)
                    continue
                t0 = time.monotonic()
                if conn is None:
                    conn = self._session_conn()
                try:
                    self._load_unit(conn, unit)
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(unit.path)
                with self._lock:
                    load = self._loads[(unit.use_line, unit.table)]
                    load.done += 1
                    load.seconds += time.monotonic() - t0
                    if not (load.ended and load.done == load.parts):
                        continue  # another part of the table is still loading: its last one goes on
                    loaded = load.seconds
                t0 = time.monotonic()
                split = self._deferred.get((unit.use_line, unit.table))
                if split is not None and split.keys:
                    self._alter(
                        conn,
                        unit.use_line,
                        add_clauses_sql(q(unit.table), split.keys),
                        f"adding the deferred keys of {q(unit.table)}",
                    )
                keyed = time.monotonic() - t0
                database = _use_name(unit.use_line)
                if self.on_table is not None:
                    self.on_table(database, unit.table)
                self.stats.seconds[unit.table] = round(loaded + keyed, 3)
                self.say(
                    f"table {q(database)}.{q(unit.table)}: {load.size} bytes of SQL loaded in {loaded:.1f}s"
                    + (f" (in {load.parts} parts)" if load.parts > 1 else "")
                    + (
                        f", {len(split.keys)} deferred key(s) added in {keyed:.1f}s"
                        if split and split.keys
                        else ""
                    )
                )
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._fail(exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _session_conn(self) -> db.Connection:
        conn = self._connect()
        for stmt in statements(self._prefix):
            execute_raw(conn, stmt)
        return conn

    # -- the whole file ------------------------------------------------------------------------
    def load(self, raw: Iterable[bytes]) -> ParallelStats:
        threads = [
            threading.Thread(target=self._worker, name=f"load-{i}", daemon=True) for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        try:
            try:
                for data in raw:
                    self._check()
                    if data:
                        self._splitter.feed(data)
                self._splitter.finish()
                self._flush_serial()
            except BaseException as exc:  # noqa: BLE001 - stops the workers, raised below
                self._fail(exc)
            finally:
                self._done.set()  # the workers finish what waits, then stop
                for _t in threads:  # one stop mark each, after what waits: no worker idles in a poll
                    while any(t.is_alive() for t in threads):
                        try:
                            self._queue.put(None, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                for t in threads:
                    t.join()
            self._check()
            self.stats.tables = len(self._splitter.tables)
            self.stats.deferred_tables = len(self._deferred)
            self.stats.deferred = [f"{q(_use_name(u))}.{q(t)}" for u, t in self._deferred]
            self._foreign_keys()
            self._run_post()
            return self.stats
        finally:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            for f in (self._spool, self._post):
                if f is not None:
                    f.close()

    def _foreign_keys(self) -> None:
        todo = [(k, s) for k, s in self._deferred.items() if s.foreign_keys]
        if not todo:
            return
        t0 = time.monotonic()
        conn = self._session_conn()  # FOREIGN_KEY_CHECKS=0 as the dump loads: no re-check, in place
        try:
            for (use_line, table), split in todo:
                self._alter(
                    conn,
                    use_line,
                    add_clauses_sql(q(table), split.foreign_keys),
                    f"adding the foreign keys of {q(table)}",
                )
        finally:
            conn.close()
        self.say(
            f"{sum(len(s.foreign_keys) for _k, s in todo)} foreign key(s) added in {time.monotonic() - t0:.1f}s"
        )

    def _run_post(self) -> None:
        if self._post is None:
            return
        self._post.close()
        if not self._prefix:
            self._prefix = session_prefix(bytes(self._splitter.header))
        path = self._post.name
        try:
            self._client("load of triggers, routines, events and views", self._prefix, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _use_name(use_line: bytes) -> str:
    text = use_line.decode("utf-8", "surrogateescape").strip().rstrip(";").strip()
    if text.startswith("USE `") and text.endswith("`"):
        return text[5:-1].replace("``", "`")
    return ""


def load_file_parallel(
    path: str,
    compression: str,
    target: ServerSpec,
    program: Any,
    rename: Mapping[str, str],
    spool_dir: str,
    *,
    on_bytes: Callable[[int], None] | None = None,
    timeout: float | None = None,
    keyring: Keyring | None = None,
    workers: int | None = None,
    on_table: TableFn | None = None,
    log: Callable[[str], None] | None = None,
    statement_timeout: float | None = STATEMENT_TIMEOUT_SECONDS,
) -> ParallelStats:
    """Load one stored backup file into ``target`` over ``workers`` connections;
    ``statement_timeout``: seconds one statement may go without an answer."""
    loader = ParallelLoader(
        target,
        program,
        spool_dir,
        workers=workers,
        timeout=timeout,
        on_table=on_table,
        log=log,
        seal_spool=keyring is not None,
        statement_timeout=statement_timeout,
    )
    name = os.path.basename(path)
    try:
        return loader.load(iter_raw(path, compression, keyring, rename, on_bytes))
    except ProcessError as exc:
        raise type(exc)(
            f"loading {name} into {target.name} failed: {exc}",
            returncode=exc.returncode,
            stderr_tail=exc.stderr_tail,
        ) from None
