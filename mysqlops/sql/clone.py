"""The statements of MySQL's CLONE plugin and what a CLONE backup reads around it."""

from __future__ import annotations

from mysqlops.sql.quoting import quote_string

CLONE_PLUGIN_LIBRARY = "mysql_clone.so"
INSTALL_PLUGIN = f"INSTALL PLUGIN clone SONAME '{CLONE_PLUGIN_LIBRARY}';"  # advice, run by an administrator
PLUGIN_STATUS = "SELECT PLUGIN_STATUS AS s FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'"
PLUGIN_DIR = "SELECT @@plugin_dir"
# one consistent read of the binlog position and gtid_executed (BACKUP_ADMIN)
LOG_STATUS = "SELECT LOCAL AS l FROM performance_schema.log_status"
CONNECTION_ID = "SELECT CONNECTION_ID()"
CLONE_STATUS = (
    "SELECT STATE, ERROR_NO, ERROR_MESSAGE, BINLOG_FILE, BINLOG_POSITION, GTID_EXECUTED "
    "FROM performance_schema.clone_status"
)


def clone_local(directory: str) -> str:
    """``CLONE LOCAL DATA DIRECTORY = '<directory>'`` (the directory must not exist yet)."""
    return f"CLONE LOCAL DATA DIRECTORY = {quote_string(directory)}"


def grant_backup_admin(user: str) -> str:
    """The GRANT a CLONE backup account needs (advice; the host part left for the reader)."""
    return f"GRANT BACKUP_ADMIN ON *.* TO {quote_string(user)}@'<host>';"


def kill_query(connection_id: int) -> str:
    return f"KILL QUERY {int(connection_id)}"


def tables_not_innodb(databases: int) -> str:
    """``d``, ``t``, ``e`` of the base tables of ``databases`` databases (placeholders) whose
    engine is not InnoDB: CLONE copies InnoDB data only."""
    return (
        "SELECT TABLE_SCHEMA AS d, TABLE_NAME AS t, ENGINE AS e FROM information_schema.TABLES"
        f" WHERE TABLE_SCHEMA IN ({', '.join(['%s'] * databases)})"
        " AND TABLE_TYPE = 'BASE TABLE' AND ENGINE IS NOT NULL AND ENGINE <> 'InnoDB'"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME"
    )
