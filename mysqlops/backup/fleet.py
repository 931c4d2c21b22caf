"""Fleet backups, the Prefect-free part: checking the request, one summary row a server,
the summary table's title and Markdown, and the error naming every server that failed.

``flows/fleet.py`` runs the per-server ``backup`` subflows and hands each outcome here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mysqlops.errors import ConfigError, MysqlopsError


class FleetBackupFailed(MysqlopsError):
    """At least one server's backup failed."""


def check_request(servers: Sequence[str], max_concurrency: int) -> None:
    """Raise :class:`ConfigError` naming what is wrong with a fleet backup's servers or concurrency."""
    if not servers:
        raise ConfigError("backup_fleet needs at least one server (MySQLServer block name)")
    if len(set(servers)) != len(servers):
        raise ConfigError(f"servers must be distinct, got {list(servers)}")
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")


def error_text(exc: BaseException | None) -> str:
    """One server's error for the summary: the message (or the exception's type), at most 500 characters."""
    if exc is None:
        return ""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def ok_row(server: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary row of a server whose backup subflow completed (``summary`` is its return value)."""
    return {
        "server": server,
        "status": "ok",
        "backup_id": summary["backup_id"],
        "databases": len(summary["databases"]),
        "stored_bytes": summary["stored_bytes"],
        "locations": ", ".join(f"{k}: {v}" for k, v in summary["locations"].items()),
        "warnings": len(summary["warnings"]),
        "error": "",
    }


def failed_row(server: str, error: str) -> dict[str, Any]:
    """The summary row of a server whose backup failed with ``error``."""
    return {
        "server": server,
        "status": "FAILED",
        "backup_id": "",
        "databases": 0,
        "stored_bytes": 0,
        "locations": "",
        "warnings": 0,
        "error": error,
    }


def failed_servers(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [r["server"] for r in rows if r["status"] != "ok"]


def table_title(rows: Sequence[dict[str, Any]], elapsed: float, max_concurrency: int) -> str:
    """The title of the fleet's summary table."""
    failed = len(failed_servers(rows))
    return (
        f"Fleet backup of {len(rows)} server(s): {len(rows) - failed} ok, {failed} failed "
        f"in {elapsed:.0f}s (max {max_concurrency} at once)"
    )


def summary_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The fleet's Markdown summary: one line a server with its status, backup and error."""
    failed = len(failed_servers(rows))
    lines = [
        f"# Fleet backup: {len(rows) - failed} of {len(rows)} ok",
        "",
        "| server | status | backup | error |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['server']} | {r['status']} | {r['backup_id']} | {r['error'][:200].replace('|', '/')} |"
        for r in rows
    ]
    return "\n".join(lines)


def failure(rows: Sequence[dict[str, Any]]) -> FleetBackupFailed | None:
    """The error naming every server whose backup failed, with its error; None when all went well."""
    failed = failed_servers(rows)
    if not failed:
        return None
    return FleetBackupFailed(
        f"backup failed for {len(failed)} of {len(rows)} server(s): {', '.join(failed)}; "
        + " | ".join(f"{r['server']}: {r['error']}" for r in rows if r["status"] != "ok")
    )
