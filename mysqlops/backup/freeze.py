"""A frozen replica: one consistent point across databases."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mysqlops.adapters import mysql as db
from mysqlops.backup.preflight import Plan
from mysqlops.manifest import TableStat
from mysqlops.model import (
    BinlogCoordinates,
    ServerSpec,
)
from mysqlops.tablesum import table_checksums


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
        db.execute(conn, dialect.replica.stop_replica_sql_thread())
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
            db.execute(conn, dialect.replica.start_replica_sql_thread())
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
