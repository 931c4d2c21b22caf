"""Parsing SHOW REPLICA/SLAVE STATUS rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------
# replica status


def _get(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    lowered = {str(k).lower(): v for k, v in row.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class ReplicaStatus:
    """One row of SHOW SLAVE STATUS / SHOW REPLICA STATUS, with flavor-neutral names.

    ``io_running``/``sql_running`` keep the server's words: ``Yes``, ``No`` or ``Connecting``.
    ``executed_gtid``: MySQL ``Executed_Gtid_Set``; MariaDB ``Gtid_Slave_Pos`` (only in SHOW ALL
    SLAVES STATUS) or a ``gtid_slave_pos`` key the caller merged into the row. ``retrieved_gtid``:
    MySQL ``Retrieved_Gtid_Set``; MariaDB ``Gtid_IO_Pos``. GTID values have whitespace removed.
    """

    source_host: str
    source_port: int
    io_running: str
    sql_running: str
    seconds_behind: int | None
    last_io_error: str = ""
    last_sql_error: str = ""
    last_io_errno: int = 0
    last_sql_errno: int = 0
    executed_gtid: str | None = None
    retrieved_gtid: str | None = None
    using_gtid: bool = False
    source_log_file: str = ""
    read_source_log_pos: int = 0
    relay_source_log_file: str = ""
    exec_source_log_pos: int = 0
    ssl_allowed: bool = False
    io_state: str = ""
    sql_state: str = ""

    @property
    def healthy(self) -> bool:
        """Both threads run and the lag is known."""
        return not self.problems()

    def problems(self, max_lag_seconds: int | None = None) -> list[str]:
        """What is wrong, in words for a human; empty when healthy.

        ``max_lag_seconds``: also report a lag above this many seconds.
        """
        out: list[str] = []
        where = f"{self.source_host}:{self.source_port}"
        if self.io_running == "Connecting":
            detail = _error_text(self.last_io_errno, self.last_io_error)
            out.append(
                f"IO thread cannot connect to the source {where}"
                + (
                    f": {detail}"
                    if detail
                    else " (still connecting; check host, port, user, password and TLS)"
                )
            )
        elif self.io_running != "Yes":
            detail = _error_text(self.last_io_errno, self.last_io_error)
            out.append(
                "IO thread stopped"
                + (
                    f": {detail}"
                    if detail
                    else " (no error recorded: STOP was run or replication never started)"
                )
            )
        if self.sql_running != "Yes":
            detail = _error_text(self.last_sql_errno, self.last_sql_error)
            out.append(
                "SQL thread stopped"
                + (
                    f": {detail}"
                    if detail
                    else " (no error recorded: STOP was run or replication never started)"
                )
            )
        if not out:
            if self.seconds_behind is None:
                out.append("replication lag is unknown (Seconds_Behind is NULL although both threads run)")
            elif max_lag_seconds is not None and self.seconds_behind > max_lag_seconds:
                out.append(
                    f"replica is {self.seconds_behind} s behind the source (limit {max_lag_seconds} s)"
                )
        return out


def _error_text(errno: int, message: str) -> str:
    message = message.strip()
    if message and errno:
        return message if str(errno) in message else f"{message} (errno {errno})"
    if message:
        return message
    return f"errno {errno}" if errno else ""
