"""Split a mysqldump/mariadb-dump SQL stream into what can load in parallel (pure, no I/O).

One pass over the decompressed dump in chunks, memory bounded whatever the size, relying on
the property :mod:`mysqlops.streams.dumpscan` relies on: a newline inside data is always
escaped, so every raw newline starts a real line. The stream is routed, in order, to:

- ``serial``: the header, ``CREATE DATABASE``/``USE``, every table's structure section and the
  view placeholders: statements to run one after another before the table's rows;
- ``data`` of table *t*: the dump's ``-- Dumping data for table `t``` section (LOCK TABLES,
  INSERTs, UNLOCK TABLES): one unit that can load on its own connection;
- ``post``: triggers (which a dump writes right after their table's rows), events, routines,
  the final view definitions and the footer: run after every table is loaded.

The consumer gets the pieces through callbacks, as zero-copy memoryviews valid during the
call. Lines in a data section start with ``INSERT`` or ``(`` (MariaDB writes one row per
line): the scan looks only at lines that do not, so it is as fast as a regular-expression
search over the data.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mysqlops.streams.lines import LineChunks

_HEADER_LIMIT = 256 * 1024
_LINE_RE = re.compile(rb"\n(?![(I])")  # a line start that is not a row of data
_NAME_RE = re.compile(rb"`((?:[^`]|``)+)`")

_TO_SERIAL = (
    b"-- Table structure for table ",
    b"-- Sequence structure for ",
    b"-- Temporary table structure for view ",
    b"-- Temporary view structure for view ",
    b"-- Current Database: ",
)
_TO_POST = (
    b"-- Final view structure for view ",
    b"-- Dumping events for database ",
    b"-- Dumping routines for database ",
    b"-- Dump completed",
)
_DATA_MARK = b"-- Dumping data for table "
# lines that belong to a data section (rows are not even looked at: see _LINE_RE)
_DATA_LINES = (
    b"INSERT ",
    b"REPLACE ",
    b"(",
    b"LOCK TABLES ",
    b"UNLOCK TABLES",
    b"/*!40000 ALTER TABLE ",
    b"--",
    b"SELECT SETVAL(",  # MariaDB sequences
    b"\n",
    b"\r",
)


def table_name(line: bytes) -> str:
    """The backquoted name in a marker line: ``-- ... for table `a``b` `` -> ``a`b``."""
    m = _NAME_RE.search(line)
    return m.group(1).replace(b"``", b"`").decode("utf-8", "surrogateescape") if m else ""


class TableSplitter:
    """Feed decompressed dump bytes; the callbacks get them routed (see the module doc).

    ``on_serial(data)``, ``on_post(data)``: bytes for the serial part and the post part;
    ``on_table(name)``: a table's structure section starts (its CREATE TABLE follows in serial),
    or ``""`` when another serial section (a view placeholder, a database) starts;
    ``on_data_start(name)``, ``on_data(data)``, ``on_data_end(name)``: a table's data unit;
    ``on_post_start(use_line)``: the post part resumes (with the last ``USE`` line seen, so
    what follows runs in the right database).
    """

    def __init__(
        self,
        on_serial: Callable[[memoryview], None],
        on_post: Callable[[memoryview], None],
        on_data: Callable[[memoryview], None],
        on_table: Callable[[str], None] = lambda _n: None,
        on_data_start: Callable[[str], None] = lambda _n: None,
        on_data_end: Callable[[str], None] = lambda _n: None,
        on_post_start: Callable[[bytes], None] = lambda _u: None,
    ) -> None:
        self._on = {"serial": on_serial, "post": on_post, "data": on_data}
        self._on_table = on_table
        self._on_data_start = on_data_start
        self._on_data_end = on_data_end
        self._on_post_start = on_post_start
        self.route = "serial"
        self.table = ""  # the table whose data section is open
        self.header = bytearray()  # the serial bytes before the first marker: session settings
        self.use_line = b""  # the last USE line, with its newline
        self.tables: list[str] = []  # data sections seen, in order
        self._seen_marker = False
        self._lines = LineChunks(self._run)

    # -- public ------------------------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return self._lines.total_bytes

    def feed(self, chunk: bytes) -> None:
        self._lines.feed(chunk)

    def finish(self) -> None:
        self._lines.finish()
        if self.route == "data":
            self._on_data_end(self.table)
            self.route = "post"

    # -- internals ---------------------------------------------------------------------------
    def _run(self, buf: bytes, lo: int, hi: int, starts_at_line: bool, _ends_at_line: bool) -> None:
        self._block(buf, lo, hi, starts_at_line)

    def _emit(self, buf: bytes, lo: int, hi: int) -> None:
        if lo >= hi:
            return
        data = memoryview(buf)[lo:hi]
        if self.route == "serial" and not self._seen_marker and len(self.header) < _HEADER_LIMIT:
            self.header += data[: _HEADER_LIMIT - len(self.header)]
        self._on[self.route](data)

    def _block(self, buf: bytes, lo: int, hi: int, starts_at_line: bool) -> None:
        """Route ``buf[lo:hi]``: complete lines (or a piece of an enormous one)."""
        pos = lo
        if starts_at_line:
            self._line(buf, lo, hi)
        for m in _LINE_RE.finditer(buf, lo, hi):
            start = m.start() + 1
            if start >= hi:
                break
            self._emit(buf, pos, start)
            pos = start
            self._line(buf, start, hi)
        self._emit(buf, pos, hi)

    def _switch(self, route: str) -> None:
        if route == self.route:
            return
        if self.route == "data":
            self._on_data_end(self.table)
        self.route = route
        if route == "post":
            self._on_post_start(self.use_line)

    def _line(self, buf: bytes, start: int, hi: int) -> None:
        """Look at the line starting at ``start`` and switch route before its bytes go out."""
        first = buf[start : start + 1]
        if first == b"-":
            end = buf.find(b"\n", start, hi)
            line = bytes(buf[start : hi if end < 0 else end])
            if line.startswith(_DATA_MARK):
                self._seen_marker = True
                self._switch("serial")  # ends a previous data section, if any
                self.table = table_name(line[len(_DATA_MARK) :])
                self.tables.append(self.table)
                self.route = "data"
                self._on_data_start(self.table)
                return
            if line.startswith(_TO_SERIAL):
                self._seen_marker = True
                self._switch("serial")
                self._on_table(table_name(line) if line.startswith(_TO_SERIAL[:2]) else "")
                return
            if line.startswith(_TO_POST):
                self._seen_marker = True
                self._switch("post")
                return
        elif first == b"U" and buf.startswith(b"USE `", start):
            end = buf.find(b"\n", start, hi)
            self.use_line = bytes(buf[start : hi if end < 0 else end]).rstrip(b"\r") + b"\n"
            if self.route == "data":
                self._switch("serial")
            return
        if self.route == "data" and not buf.startswith(_DATA_LINES, start):
            self._switch("post")  # a trigger after the rows, or anything unexpected: run it last
