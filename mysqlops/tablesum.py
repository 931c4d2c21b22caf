"""Table content checksums that are comparable across servers of one flavor.

``CHECKSUM TABLE`` depends on the row format and cannot leave columns out; this checksum is
a query (BIT_XOR and SUM of CRC32 over each row's columns in hex), so FLOAT columns, which a
logical dump rounds, can be excluded and the rest compared exactly. Used at a backup's frozen
point, in restore tests and to compare a replica with its primary (optionally in key chunks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mysqlops.adapters import mysql as db
from mysqlops.manifest import TableStat
from mysqlops.sql import catalog as sqlcat


def content_checksum(
    conn: db.Connection, database: str, table: str, exclude: Sequence[str] = ()
) -> tuple[int, str]:
    """Row count and an order-independent checksum over the table's columns (minus
    ``exclude``), the same on any server of a flavor: BIT_XOR of CRC32 over each row."""
    cols = [
        str(r["c"])
        for r in db.query(
            conn,
            sqlcat.TABLE_COLUMNS,
            [database, table],
        )
        if str(r["c"]) not in exclude
    ]
    if not cols:
        count = int(db.scalar(conn, sqlcat.count_rows(database, table)) or 0)
        return count, "0"
    return checksum_of(db.query(conn, sqlcat.content_checksum(database, table, cols))[0])


def checksum_of(row: Mapping[str, Any]) -> tuple[int, str]:
    """``(rows, checksum)`` of a :func:`mysqlops.sql.catalog.content_checksum` row."""
    return int(row["n"]), f"{int(row['x']):08x}-{int(row['s']):x}"


def table_checksums(
    conn: db.Connection, database: str, lossy: Mapping[str, Sequence[str]] | None = None
) -> dict[str, TableStat]:
    rows = db.query(
        conn,
        sqlcat.BASE_TABLES,
        [database],
    )
    out = {}
    for r in rows:
        table = str(r["t"])
        excluded = tuple((lossy or {}).get(table, ()))
        count, checksum = content_checksum(conn, database, table, excluded)
        out[table] = TableStat(table, count, checksum, excluded)
    return out
