"""mysqlbinlog / mariadb-binlog argument vectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from mysqlops.errors import (
    ConfigError,
)
from mysqlops.gtid import parse_mariadb_gtids
from mysqlops.model import BinlogCoordinates, RecoveryTarget
from mysqlops.tools.client import Program, program_words


def fetch_argv(tool: Program, file: str, staging: str) -> tuple[str, ...]:
    """Copy one binlog byte for byte from the server (credentials come via option file)."""
    return (
        *program_words(tool),
        "--read-from-remote-server",
        "--raw",
        f"--result-file={staging.rstrip('/')}/",
        file,
    )


def replay_argv(
    tool: Program,
    files: Sequence[str],
    start: BinlogCoordinates,
    *,
    until: RecoveryTarget | None = None,
    log_on_target: bool = False,
    database: str | None = None,
    table: str | None = None,
) -> tuple[str, ...]:
    """``mariadb-binlog`` decoding local files from ``start`` to ``until`` (data; None: to the end).

    ``database``: only the events of that database (``--database``): row events of its tables,
    and statements (DDL, statement-logged DML) whose default database was it. Both flavors'
    tools filter that way; neither filters statements by the tables they name. ``table``
    (MariaDB's ``mariadb-binlog`` only, with ``database``): only the row events of that table;
    statements are not filtered by it."""
    argv = [*program_words(tool), "--no-defaults"]
    if not log_on_target:
        argv.append("--disable-log-bin")  # the target's own binlog/GTIDs do not clash
    if database is not None:
        if not database or "\x00" in database:
            raise ConfigError(f"binlog replay: invalid database name {database!r}")
        argv.append(f"--database={database}")
    if table is not None:
        if database is None or not table or "\x00" in table:
            raise ConfigError(
                f"binlog replay: a table filter needs a database and a valid name, got {table!r}"
            )
        argv.append(f"--table={table}")
    if start.position > 4:
        argv.append(f"--start-position={int(start.position)}")
    if until is None:
        return (*argv, *files)
    if until.position is not None:
        argv.append(f"--stop-position={int(until.position.position)}")
    if until.time is not None:
        if until.time.tzinfo is None:
            raise ConfigError("until must be timezone-aware (UTC)")
        # one-second resolution: events stamped in the target's second are not applied
        argv.append(f"--stop-datetime={until.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}")
    if until.gtid:
        parse_mariadb_gtids(until.gtid)
        argv.append(f"--stop-position={until.gtid}")
    return (*argv, *files)
