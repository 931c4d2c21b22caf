"""Which statements a binlog window holds, and whether a replay filtered to one database is
exact (pure).

``mysqlbinlog --database=D`` / ``mariadb-binlog --database=D`` keep the row events of D's
tables, and the statements (DDL, statement-logged DML) whose DEFAULT database was D. A
statement run from another default database (or none: ``ALTER TABLE shop.orders ...`` on a
fresh connection) is dropped even when it changes D, and a statement run from D that changes
another database is kept. Measured on MariaDB 10.11: ``ALTER TABLE shop.orders ADD COLUMN``
without a default database was filtered out, and the following row events were applied to
the narrower table without an error; the replayed table silently lacked the column.

:func:`database_filter_problem` reads the Query events of the window (their default database
and text; never logged: statement-logged DML quotes row data) and answers whether the filter
is exact, judged conservatively by names: a statement from another default database that
mentions D, or one from D that mentions another database, or an event it cannot read
(compressed, encrypted) makes it answer no, with the first reason.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from mysqlops.binlog.format import (
    _CHECKSUM_CRC32,
    _HEADER,
    FORMAT_DESCRIPTION_EVENT,
    HEADER_LEN,
    MAGIC,
    MARIADB_GTID_EVENT,
    MYSQL_GTID_EVENT,
)
from mysqlops.errors import IntegrityError

QUERY_EVENT = 2
TABLE_MAP_EVENT = 19
TRANSACTION_STARTS = {MARIADB_GTID_EVENT, MYSQL_GTID_EVENT, 34}  # 34: MySQL's anonymous GTID
# events whose statements cannot be read here: MariaDB compressed query/row events and the
# start of its encrypted events, MySQL's compressed transaction payload
UNREADABLE = {
    164: "an encrypted event stream",
    165: "a compressed query event",
    40: "a compressed transaction payload",
}
_QUERY_POST_HEADER = struct.Struct("<IIBHH")  # thread_id, exec_time, db_len, error_code, status_vars_len


@dataclass(frozen=True)
class Statement:
    """One Query event: where it is, its default database ('' for none), its text. ``text`` is
    None for an event that cannot be read (``unreadable`` says why)."""

    file: str
    position: int
    database: str
    text: str | None
    unreadable: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.position}"


@dataclass(frozen=True)
class Transaction:
    """The tables (``db.table``) whose rows one transaction (a GTID event to the next) changed."""

    file: str
    position: int
    tables: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.position}"


def read_statements(
    path: str, *, start: int = 4, stop_position: int | None = None, stop_time: datetime | None = None
) -> Iterator[Statement | Transaction]:
    """The Query (and unreadable) events of the binlog file ``path`` from ``start`` up to before
    ``stop_position`` or the first event at or after ``stop_time``, and after each transaction
    that changed rows, the tables it changed."""
    current: Transaction | None = None  # the transaction being read, with the tables so far
    for item in _events(path, start, stop_position, stop_time):
        if not isinstance(item, Transaction):
            yield item
        elif item.tables and current is not None:
            current = Transaction(current.file, current.position, current.tables | item.tables)
        else:  # a transaction starts (or a table map before any GTID event of the window)
            if current is not None and current.tables:
                yield current
            current = item
    if current is not None and current.tables:
        yield current


def _events(
    path: str, start: int, stop_position: int | None, stop_time: datetime | None
) -> Iterator[Statement | Transaction]:
    name = os.path.basename(path)
    stop_ts = int(stop_time.timestamp()) if stop_time is not None else None
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        if view[:4] != MAGIC:
            raise IntegrityError(f"{name} is not a binary log (bad magic number)")
        size, pos, checksum = len(view), len(MAGIC), False
        while pos + HEADER_LEN <= size:
            ts, etype, _sid, length, _next, _flags = _HEADER.unpack_from(view, pos)
            if length < HEADER_LEN or pos + length > size:
                raise IntegrityError(f"{name} is truncated or corrupt at offset {pos}")
            end = pos + length
            if etype == FORMAT_DESCRIPTION_EVENT:
                checksum = length >= HEADER_LEN + 57 + 5 and view[end - 5] == _CHECKSUM_CRC32
            elif pos >= start:
                if (stop_position is not None and pos >= stop_position) or (
                    stop_ts is not None and ts >= stop_ts
                ):
                    return
                if etype == QUERY_EVENT:
                    yield _query(view, pos, end - 4 if checksum else end, name)
                elif etype in TRANSACTION_STARTS:
                    yield Transaction(name, pos, frozenset())
                elif etype == TABLE_MAP_EVENT:  # post-header: table id (6), flags (2)
                    at = pos + HEADER_LEN + 8
                    db_len = view[at]
                    table_at = at + 1 + db_len + 1
                    table = bytes(view[table_at + 1 : table_at + 1 + view[table_at]])
                    db = bytes(view[at + 1 : at + 1 + db_len])
                    yield Transaction(
                        name,
                        pos,
                        frozenset({f"{db.decode(errors='replace')}.{table.decode(errors='replace')}"}),
                    )
                elif etype in UNREADABLE:
                    yield Statement(name, pos, "", None, UNREADABLE[etype])
                    if etype == 164:
                        return  # nothing after it is readable
            pos = end


def _query(view: mmap.mmap, pos: int, body_end: int, name: str) -> Statement:
    at = pos + HEADER_LEN
    _tid, _secs, db_len, _err, status_len = _QUERY_POST_HEADER.unpack_from(view, at)
    db_at = at + _QUERY_POST_HEADER.size + status_len
    database = view[db_at : db_at + db_len].decode("utf-8", "replace")
    text = view[db_at + db_len + 1 : body_end].decode("utf-8", "replace")
    return Statement(name, pos, database, text)


DML = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b", re.IGNORECASE)
CONTROL = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|XA\s|SAVEPOINT|RELEASE\s+SAVEPOINT)\b", re.IGNORECASE)


def _names(text: str, name: str) -> bool:
    """Does ``text`` mention the identifier ``name`` (any case, quoted or not)? Conservative:
    a match inside a string literal or a comment counts too."""
    return re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text, re.IGNORECASE) is not None


def database_filter_problem(
    statements: Sequence[Statement | Transaction], database: str, others: Iterable[str]
) -> str | None:
    """None when replaying with ``--database=database`` onto a server holding only
    ``database`` applies exactly its changes (see the module docstring); else why not.
    ``others``: the other databases' names (of the base backup; the default databases the
    window's statements ran from are added)."""
    other = ({*others} | {s.database for s in statements if isinstance(s, Statement) and s.database}) - {
        database
    }
    for s in statements:
        if isinstance(s, Transaction):
            continue
        if s.text is None:
            return f"{s.where} is {s.unreadable}: its statements cannot be checked"
        if CONTROL.match(s.text):
            continue
        if s.database != database:
            if _names(s.text, database):
                by = f"default database {s.database!r}" if s.database else "no default database"
                return f"a statement at {s.where} run with {by} names {database!r} (--database would drop it)"
        else:
            hit = next((o for o in sorted(other) if _names(s.text, o)), None)
            if hit is not None:
                return f"a statement at {s.where} run from {database!r} names the database {hit!r}"
    return None


def table_filter_problem(
    statements: Sequence[Statement | Transaction], database: str, table: str, other_tables: Iterable[str]
) -> str | None:
    """None when, on top of the database filter being exact (:func:`database_filter_problem`),
    replaying with ``--table=table`` onto a server holding only that table applies exactly its
    changes: no statement run from ``database`` names another of its tables (``--table``
    filters row events only; such a statement would run against a table that is not there),
    no row change was logged as a statement (it could fire triggers that reach other tables),
    and no transaction changed rows of the table and of another table: measured on MariaDB
    10.11, ``mariadb-binlog --table`` then prints the table's row events without their
    ``BINLOG '`` head (an UPDATE whose trigger writes to another table), invalid SQL."""
    others = sorted({t for t in other_tables if t.lower() != table.lower()})
    name = f"{database}.{table}"
    for s in statements:
        if isinstance(s, Transaction):
            if name in s.tables and len(s.tables) > 1:
                return (
                    f"the transaction at {s.where} changed {name} and {sorted(s.tables - {name})[0]} together"
                )
            continue
        if s.text is None:
            return f"{s.where} is {s.unreadable}: its statements cannot be checked"
        if s.database != database or CONTROL.match(s.text):
            continue
        if DML.match(s.text):
            return f"a row change at {s.where} was logged as a statement (binlog_format was not ROW for it)"
        hit = next((o for o in others if _names(s.text, o)), None)
        if hit is not None:
            return f"a statement at {s.where} names the table {database}.{hit}"
    return None
