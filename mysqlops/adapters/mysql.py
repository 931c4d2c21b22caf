"""PyMySQL connections and the queries every flow needs.

Errors are translated to :class:`ConnectionProblem` naming the server and the cause, never
the password.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from mysqlops.errors import ConnectionProblem
from mysqlops.model import ObjectCounts, ServerSpec, ServerVersion
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql import sizes as sizes_sql

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
Connection = pymysql.connections.Connection
Error = pymysql.err.MySQLError  # what a query raises (args[0] is the server error number)


def _ssl_context(spec: ServerSpec) -> ssl.SSLContext | None:
    tls = spec.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(cafile=tls.ca) if tls.ca else ssl.create_default_context()
    if tls.cert:
        ctx.load_cert_chain(tls.cert, tls.key)
    ctx.check_hostname = bool(tls.verify_identity)
    if not (tls.verify_cert and tls.ca):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(
    spec: ServerSpec,
    database: str | None = None,
    *,
    connect_timeout: float = 10,
    read_timeout: float | None = None,
    autocommit: bool = True,
) -> Connection:
    """Open a connection (TCP or socket, TLS when configured) with dict rows and utf8mb4."""
    kwargs: dict[str, Any] = {
        "user": spec.user,
        "password": spec.password or "",
        "database": database,
        "charset": "utf8mb4",
        "autocommit": autocommit,
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "cursorclass": pymysql.cursors.DictCursor,
    }
    if spec.socket:
        kwargs["unix_socket"] = spec.socket
    else:
        kwargs["host"] = spec.host
        kwargs["port"] = int(spec.port)
    try:
        context = _ssl_context(spec)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionProblem(f"server {spec.name!r} ({spec.endpoint}): TLS files unusable: {exc}") from exc
    if context is not None:
        kwargs["ssl"] = context
    try:
        return pymysql.connect(**kwargs)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        cause = exc.args[1] if len(exc.args) > 1 else str(exc)
        hint = ""
        if code == 1045:
            hint = " (wrong user or password: check the MySQLServer block's user/password)"
        elif code in (2003, 2002, 2013):
            hint = " (is the server running and the host/port/socket right?)"
        elif code == 1049:
            hint = " (unknown database)"
        raise ConnectionProblem(
            f"cannot connect to server {spec.name!r} at {spec.endpoint} as {spec.user!r}: {cause}{hint}"
        ) from None
    except (pymysql.err.MySQLError, OSError, ssl.SSLError) as exc:
        raise ConnectionProblem(
            f"cannot connect to server {spec.name!r} at {spec.endpoint} as {spec.user!r}: {exc}"
        ) from None


@contextlib.contextmanager
def session(spec: ServerSpec, database: str | None = None, **kwargs: Any) -> Iterator[Connection]:
    conn = connect(spec, database, **kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def query(conn: Connection, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())  # type: ignore[arg-type]


def execute(conn: Connection, sql: str, args: Sequence[Any] | None = None) -> int:
    with conn.cursor() as cur:
        return int(cur.execute(sql, args))


def scalar(conn: Connection, sql: str, args: Sequence[Any] | None = None) -> Any:
    rows = query(conn, sql, args)
    if not rows:
        return None
    return next(iter(rows[0].values()))


def server_version(conn: Connection) -> ServerVersion:
    row = query(conn, sqlcat.VERSION)[0]
    return ServerVersion.parse(str(row["v"]), str(row["c"] or ""))


def global_variables(conn: Connection, names: Sequence[str] | None = None) -> dict[str, str]:
    """``SHOW GLOBAL VARIABLES`` as a dict with lowercase names."""
    rows = query(conn, sqlcat.GLOBAL_VARIABLES)
    wanted = {n.lower() for n in names} if names else None
    out = {str(r["Variable_name"]).lower(): str(r["Value"]) for r in rows}
    return {k: v for k, v in out.items() if wanted is None or k in wanted}


def user_databases(conn: Connection, system: frozenset[str] = SYSTEM_SCHEMAS) -> list[str]:
    rows = query(conn, sqlcat.SCHEMAS)
    return [str(r["s"]) for r in rows if str(r["s"]).lower() not in system]


def object_counts(conn: Connection, database: str) -> ObjectCounts:
    """Tables, views, routines, triggers and events of one database, from information_schema."""
    row = query(
        conn,
        sqlcat.OBJECT_COUNTS,
        [database] * 5,
    )[0]
    return ObjectCounts(
        tables=int(row["tables_"]),
        views=int(row["views_"]),
        routines=int(row["routines_"]),
        triggers=int(row["triggers_"]),
        events=int(row["events_"]),
    )


def database_sizes(
    conn: Connection, databases: Sequence[str], is_mariadb: bool | None = None
) -> dict[str, int]:
    """Estimated bytes per database, for progress estimates and disk checks: the larger of the
    table statistics (data + index) and the InnoDB tablespace files (``sql.sizes``), since the
    statistics are stale after a bulk load. ``is_mariadb`` None: statistics only."""
    if not databases:
        return {}
    rows = query(conn, sqlcat.database_sizes(len(databases)), list(databases))
    sizes = {d: 0 for d in databases}
    sizes.update({str(r["s"]): int(r["b"]) for r in rows})
    if is_mariadb is None:
        return sizes
    prefixes = {p: d for d in databases if (p := sizes_sql.tablespace_prefix(d)) is not None}
    if not prefixes:
        return sizes
    try:
        files = query(conn, sizes_sql.tablespace_sql(is_mariadb, len(prefixes)), list(prefixes))
    except pymysql.MySQLError as exc:  # no PROCESS privilege: statistics are all there is
        log.debug("tablespace sizes not readable (%s): table statistics used", exc)
        return sizes
    for r in files:
        database = prefixes.get(str(r["s"]))
        if database is not None:
            sizes[database] = max(sizes[database], int(r["b"]))
    return sizes


def float_columns(conn: Connection, database: str) -> list[str]:
    """``table.column`` of FLOAT columns: a logical dump rounds them (mariadb-dump on MariaDB
    10.11 writes 6 significant digits: 123456789 becomes 123457000)."""
    rows = query(conn, sqlcat.FLOAT_COLUMNS, [database])
    return [f"{r['t']}.{r['c']}" for r in rows]


@dataclass(frozen=True)
class ServerInfo:
    name: str
    endpoint: str
    version: ServerVersion
    server_id: int
    read_only: bool
    log_bin: bool


def server_info(spec: ServerSpec) -> ServerInfo:
    with session(spec) as conn:
        version = server_version(conn)
        row = query(conn, sqlcat.SERVER_FACTS)[0]
    return ServerInfo(spec.name, spec.endpoint, version, int(row["sid"]), bool(row["ro"]), bool(row["lb"]))


def replica_status(conn: Connection, dialect: Any) -> Any:
    """``SHOW REPLICA/SLAVE STATUS`` normalised by the dialect (None on a non-replica), with
    the applied GTID position merged in (MariaDB's status has no executed-GTID column)."""
    rows = query(conn, dialect.replica.show_replica_status())
    if not rows:
        return None
    row = dict(rows[0])
    gtid = scalar(conn, dialect.replica.replica_gtid_query())
    if gtid is not None and not row.get("Executed_Gtid_Set"):
        row["Gtid_Slave_Pos"] = gtid
        row["Executed_Gtid_Set"] = gtid
    return dialect.replica.parse_replica_status(row)


def current_grants(conn: Connection) -> list[str]:
    """The SHOW GRANTS lines of the session's own account."""
    return [str(next(iter(r.values()))) for r in query(conn, sqlcat.CURRENT_GRANTS)]


def server_identity(conn: Connection) -> dict[str, Any]:
    """Where a server really is (a restore refuses to overwrite a backup's own source)."""
    row = query(conn, sqlcat.IDENTITY)[0]
    return {"hostname": str(row["h"]), "port": int(row["p"]), "server_id": int(row["s"])}
