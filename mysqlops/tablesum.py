"""Table content checksums that are comparable across servers of one flavor.

``CHECKSUM TABLE`` depends on the row format and cannot leave columns out; this checksum is
a query (BIT_XOR and SUM of CRC32 over each row's columns in hex), so FLOAT columns, which a
logical dump rounds, can be excluded and the rest compared exactly. Used at a backup's frozen
point, in restore tests and to compare a replica with its primary (optionally in key chunks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mysqlops.adapters import mysql as db
from mysqlops.manifest import TableStat
from mysqlops.sql.quoting import quote_identifier as q


def content_checksum(
    conn: db.Connection, database: str, table: str, exclude: Sequence[str] = ()
) -> tuple[int, str]:
    """Row count and an order-independent checksum over the table's columns (minus
    ``exclude``), the same on any server of a flavor: BIT_XOR of CRC32 over each row."""
    cols = [
        str(r["c"])
        for r in db.query(
            conn,
            "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
            "ORDER BY ORDINAL_POSITION",
            [database, table],
        )
        if str(r["c"]) not in exclude
    ]
    if not cols:
        count = int(db.scalar(conn, f"SELECT COUNT(*) FROM {q(database)}.{q(table)}") or 0)
        return count, "0"
    parts = ", ".join(f"HEX({q(c)}), ISNULL({q(c)})" for c in cols)
    row = db.query(
        conn,
        f"SELECT COUNT(*) AS n, COALESCE(BIT_XOR(CAST(CRC32(CONCAT_WS('#', {parts})) AS UNSIGNED)), 0) AS x, "
        f"COALESCE(SUM(CAST(CRC32(CONCAT_WS('|', {parts})) AS UNSIGNED)), 0) AS s "
        f"FROM {q(database)}.{q(table)}",
    )[0]
    return int(row["n"]), f"{int(row['x']):08x}-{int(row['s']):x}"


def table_checksums(
    conn: db.Connection, database: str, lossy: Mapping[str, Sequence[str]] | None = None
) -> dict[str, TableStat]:
    rows = db.query(
        conn,
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
        "AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_NAME",
        [database],
    )
    out = {}
    for r in rows:
        table = str(r["t"])
        excluded = tuple((lossy or {}).get(table, ()))
        count, checksum = content_checksum(conn, database, table, excluded)
        out[table] = TableStat(table, count, checksum, excluded)
    return out
