"""Replica SQL used while provisioning."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mysqlops.sql.dialect import Dialect
from mysqlops.sql.quoting import quote_string

if TYPE_CHECKING:
    pass

# --------------------------------------------------------------------------------------------
# SQL that dialect.py does not have yet (same on both flavors unless noted)

_NO_BINLOG = "SET SESSION sql_log_bin = 0"
_BINLOG = "SET SESSION sql_log_bin = 1"


def _start_until(dialect: Dialect, gtid: str) -> str:
    """Start the (stopped) replica so it stops right after ``gtid``."""
    value = quote_string(dialect.check_gtid(gtid))
    if dialect.is_mariadb:  # needs both threads stopped (error 1254 otherwise, measured)
        return f"{dialect.start_replica()} UNTIL master_gtid_pos = {value}"
    return f"{dialect.start_replica_sql_thread()} UNTIL SQL_AFTER_GTIDS = {value}"


def _freeze(dialect: Dialect) -> str:
    return dialect.stop_replica() if dialect.is_mariadb else dialect.stop_replica_sql_thread()


def _empty_position(dialect: Dialect, *, reset_binlog: bool) -> list[str]:
    """Statements for a replica of a primary that has no GTID history yet."""
    out = []
    if reset_binlog:
        out.append(
            "RESET BINARY LOGS AND GTIDS"
            if not dialect.is_mariadb and dialect.version.at_least(8, 2)
            else "RESET MASTER"
        )
    if dialect.is_mariadb:
        out.append("SET GLOBAL gtid_slave_pos = ''")
    return out
