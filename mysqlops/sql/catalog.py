"""What a server is and holds: identity, variables, schemas, tables, columns, grants, and
the table content checksum. The same text on MySQL and MariaDB (version-dependent SQL is in
the per-concern classes of :mod:`mysqlops.sql.dialect`); values travel as ``%s`` placeholders
(the driver quotes them), names through :func:`quote_identifier`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mysqlops.sql.quoting import quote_identifier as q

VERSION = "SELECT VERSION() AS v, @@version_comment AS c"
GLOBAL_VARIABLES = "SHOW GLOBAL VARIABLES"
SCHEMAS = "SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME"
SERVER_FACTS = "SELECT @@server_id AS sid, @@read_only AS ro, @@log_bin AS lb"
IDENTITY = "SELECT @@hostname AS h, @@port AS p, @@server_id AS s"  # where a server really is
READ_ONLY = "SELECT @@GLOBAL.read_only"
SERVER_UUID = "SELECT @@server_uuid"
BINLOG_FACTS = "SELECT @@log_bin AS lb, @@server_id AS sid"
PHYSICAL_FACTS = "SELECT @@datadir AS d, @@hostname AS h, @@port AS p, @@server_id AS s, @@log_bin AS lb"
CURRENT_GRANTS = "SHOW GRANTS FOR CURRENT_USER()"
PING = "SELECT 1"
BINLOG_DUMP_THREADS = "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'"


def kill(connection_id: int) -> str:
    return f"KILL {int(connection_id)}"


# tables, views, routines, triggers and events of one database (the database 5 times)
OBJECT_COUNTS = """
        SELECT
          (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED','SEQUENCE')) AS tables_,
          (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='VIEW') AS views_,
          (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s) AS routines_,
          (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s) AS triggers_,
          (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s) AS events_
        """
FLOAT_COLUMNS = (
    "SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA=%s AND DATA_TYPE='float' ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
TABLE_COLUMNS = (
    "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
    "ORDER BY ORDINAL_POSITION"
)
DATABASE_COLUMNS = (
    "SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS d, COLUMN_KEY AS k FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
BASE_TABLES = (
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
    "AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_NAME"
)
BASE_TABLES_WITH_ENGINE = (
    "SELECT TABLE_NAME AS t, ENGINE AS e, TABLE_ROWS AS n FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_NAME"
)
SCHEMA_EXISTS = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s"
NO_FOREIGN_KEY_CHECKS = "SET FOREIGN_KEY_CHECKS=0"  # this session: drop tables in any order
SCHEMA_TABLES = "SELECT TABLE_NAME AS t, TABLE_TYPE AS k FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s"
TABLE_FOREIGN_KEYS = "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA=%s AND TABLE_NAME=%s"
TABLE_TYPE = "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s"
# tables, routines and events of one database (the database 3 times): 0 is an empty database
DATABASE_OBJECTS = (
    "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s)"
    " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s)"
    " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s)"
)


def tables_not_in_engines(databases: int, engines: int) -> str:
    """``d``, ``t``, ``e`` of the base tables of ``databases`` databases whose engine is not one
    of ``engines`` engines (both as placeholders, databases first)."""
    return (
        "SELECT TABLE_SCHEMA AS d, TABLE_NAME AS t, ENGINE AS e FROM information_schema.TABLES"
        f" WHERE TABLE_SCHEMA IN ({', '.join(['%s'] * databases)}) AND TABLE_TYPE = 'BASE TABLE'"
        f" AND ENGINE IS NOT NULL AND ENGINE NOT IN ({', '.join(['%s'] * engines)})"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME"
    )


def database_sizes(count: int) -> str:
    """Estimated bytes (data + index) per database of ``count`` databases (as placeholders)."""
    marks = ",".join(["%s"] * count)
    return (
        f"SELECT TABLE_SCHEMA AS s, COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS b "
        f"FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({marks}) GROUP BY TABLE_SCHEMA"
    )


def count_rows(database: str, table: str) -> str:
    return f"SELECT COUNT(*) FROM {q(database)}.{q(table)}"


def key_range(database: str, table: str, key: str) -> str:
    """``lo``/``hi``: the smallest and largest value of an integer primary key."""
    return f"SELECT MIN({q(key)}) AS lo, MAX({q(key)}) AS hi FROM {q(database)}.{q(table)}"


def drop_database(database: str, *, if_exists: bool = False) -> str:
    return f"DROP DATABASE {'IF EXISTS ' if if_exists else ''}{q(database)}"


def create_database(database: str) -> str:
    return f"CREATE DATABASE {q(database)}"


def drop_table(database: str, table: str) -> str:
    return f"DROP TABLE IF EXISTS {q(database)}.{q(table)}"


def drop_view(database: str, view: str) -> str:
    return f"DROP VIEW IF EXISTS {q(database)}.{q(view)}"


def use_database(database: str) -> str:
    """The ``USE`` line a loaded stream starts with (a statement of its own)."""
    return f"USE {q(database)};\n"


def content_checksum(database: str, table: str, columns: Sequence[str], where: Sequence[str] = ()) -> str:
    """Row count ``n`` and an order-independent checksum (``x``: BIT_XOR of CRC32 per row,
    ``s``: SUM of another CRC32) over ``columns``, the same on any server of a flavor.
    ``where``: conditions with ``%s`` placeholders (a primary-key range), joined by AND."""
    parts = ", ".join(f"HEX({q(c)}), ISNULL({q(c)})" for c in columns) or "''"
    sql = (
        f"SELECT COUNT(*) AS n, COALESCE(BIT_XOR(CAST(CRC32(CONCAT_WS('#', {parts})) AS UNSIGNED)), 0) AS x, "
        f"COALESCE(SUM(CAST(CRC32(CONCAT_WS('|', {parts})) AS UNSIGNED)), 0) AS s "
        f"FROM {q(database)}.{q(table)}"
    )
    return f"{sql} WHERE {' AND '.join(where)}" if where else sql
