"""The server side of binlog archiving: close the active binary log when it holds transactions
(FLUSH BINARY LOGS) and list the server's binary logs with their sizes and identity."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from mysqlops.adapters import mysql as db
from mysqlops.binlog.plan import (
    BinlogError,
)
from mysqlops.errors import (
    ConfigError,
)
from mysqlops.model import Flavor, ServerSpec, ServerVersion
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.binlog import BINLOG_HEADER_EVENTS
from mysqlops.sql.dialect import Dialect, dialect_for


# =========================================================================== server side
@dataclass(frozen=True)
class ServerBinlogs:
    """The server's binlogs right after the rotation."""

    version: ServerVersion
    server_id: int
    server_uuid: str | None
    logs: tuple[tuple[str, int], ...]  # (file, size) as SHOW BINARY LOGS lists them
    active: str
    rotated: bool = False  # False when asked not to, or when the active binlog held no transaction

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.logs)


def _privilege_hint(version: ServerVersion) -> str:
    return dialect_for(version).binlog.archive_grant_hint()


def rotate_and_list(spec: ServerSpec, *, rotate: bool = True) -> ServerBinlogs:
    """``FLUSH BINARY LOGS`` (closing the current file), then list the binlogs.

    An idle server is not rotated: when the active binlog holds nothing but the events every
    binlog starts with, closing it would only add an empty file (one per run, hundreds a day
    on a schedule) and archive it. Its transactions, once there are some, close it next time."""
    with db.session(spec) as conn:
        version = db.server_version(conn)
        dialect = dialect_for(version)
        try:
            row = db.query(conn, sqlcat.BINLOG_FACTS)[0]
            if not int(row["lb"] or 0):
                raise ConfigError(
                    f"server {spec.name!r} has binary logging off: nothing to archive and no "
                    "point-in-time recovery; add log_bin (and server_id) to [mysqld] and restart"
                )
            uuid = None
            if version.flavor is Flavor.MYSQL:
                uuid = str(db.scalar(conn, sqlcat.SERVER_UUID))
            rotated = False
            if rotate:
                before = db.query(conn, dialect.binlog.binlog_status_query())
                if before and _holds_transactions(conn, dialect, str(before[0]["File"])):
                    db.execute(conn, dialect.binlog.flush_binary_logs())
                    rotated = True
            status = db.query(conn, dialect.binlog.binlog_status_query())
            logs = db.query(conn, dialect.binlog.show_binary_logs())
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            detail = exc.args[1] if len(exc.args) > 1 else str(exc)
            hint = f"; {_privilege_hint(version)}" if code in (1227, 1045, 1142, 1044) else ""
            raise BinlogError(f"server {spec.name!r}: cannot rotate/list binlogs: {detail}{hint}") from None
    if not status:
        raise BinlogError(f"server {spec.name!r}: {dialect.binlog.binlog_status_query()} returned nothing")
    return ServerBinlogs(
        version=version,
        server_id=int(row["sid"]),
        server_uuid=uuid,
        logs=tuple((str(r["Log_name"]), int(r["File_size"])) for r in logs),
        active=str(status[0]["File"]),
        rotated=rotated,
    )


def _holds_transactions(conn: db.Connection, dialect: Dialect, file: str) -> bool:
    """Whether binlog ``file`` has any event besides the ones every binlog starts with."""
    events = db.query(conn, dialect.binlog.show_binlog_events(file, len(BINLOG_HEADER_EVENTS) + 1))
    return any(str(e.get("Event_type")) not in BINLOG_HEADER_EVENTS for e in events)
