"""Sample data for the demo, the tests and the benchmarks: runs the statements of
:mod:`mysqlops.sql.sampledata` (what each database holds is described there).
"""

from __future__ import annotations

from mysqlops.adapters import mysql as db
from mysqlops.sql import sampledata as sql
from mysqlops.sql.sampledata import AWKWARD_DB_SUFFIX, AWKWARD_TABLE

__all__ = [
    "AWKWARD_DB_SUFFIX",
    "AWKWARD_TABLE",
    "create_awkward_database",
    "create_bulk_table",
    "create_indexed_database",
]


def _run(conn: db.Connection, statements: list[sql.Statement]) -> None:
    with conn.cursor() as cur:
        for text, params in statements:
            cur.execute(text, params)


def create_awkward_database(conn: db.Connection, database: str = "shop") -> dict[str, int]:
    """Create ``database`` with awkward data and every object kind; returns expected counts."""
    _run(conn, sql.awkward_database(database))
    return dict(sql.AWKWARD_COUNTS)


def create_bulk_table(
    conn: db.Connection, database: str, table: str, rows: int, payload_bytes: int = 200
) -> None:
    """A table of ``rows`` rows with mixed columns, generated server-side (fast)."""
    _run(conn, sql.bulk_table(database, table, rows, payload_bytes))


def create_indexed_database(conn: db.Connection, database: str = "ix", rows: int = 2000) -> dict[str, int]:
    """Tables with secondary indexes, foreign keys, FULLTEXT, partitions, views on views and
    every object kind (:func:`mysqlops.sql.sampledata.indexed_database`); returns expected counts."""
    _run(conn, sql.indexed_database(database, rows))
    return dict(sql.INDEXED_COUNTS)
