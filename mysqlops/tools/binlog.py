"""mysqlbinlog / mariadb-binlog argument vectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from mysqlops.errors import (
    ConfigError,
)
from mysqlops.model import BinlogCoordinates
from mysqlops.sql.gtid import parse_mariadb_gtids
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
    until_datetime: datetime | None = None,
    until_gtid: str | None = None,
    until_position: tuple[str, int] | None = None,
    log_on_target: bool = False,
) -> tuple[str, ...]:
    """``mariadb-binlog`` decoding local files from ``start`` to the stop condition (data)."""
    argv = [*program_words(tool), "--no-defaults"]
    if not log_on_target:
        argv.append("--disable-log-bin")  # the target's own binlog/GTIDs do not clash
    if start.position > 4:
        argv.append(f"--start-position={int(start.position)}")
    if until_position is not None:
        argv.append(f"--stop-position={int(until_position[1])}")
    if until_datetime is not None:
        if until_datetime.tzinfo is None:
            raise ConfigError("until_datetime must be timezone-aware (UTC)")
        # one-second resolution: events stamped in the target's second are not applied
        argv.append(f"--stop-datetime={until_datetime.astimezone(UTC):%Y-%m-%d %H:%M:%S}")
    if until_gtid:
        parse_mariadb_gtids(until_gtid)
        argv.append(f"--stop-position={until_gtid}")
    return (*argv, *files)
