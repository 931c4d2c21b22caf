"""``backup-fleet``: the ``backup`` flow for many servers at once, at most ``max_concurrency``
at a time; one failure never stops the others; one summary table; Failed at the end, naming
every server whose backup failed.

Each server's backup is a subflow run (its own artifacts, logs and state in the UI) started
from a task on a thread pool of ``max_concurrency`` threads. The subflow runs inside
``tags("server:<name>")``: its flow run carries the tag (the "no backup in 26 h" automation
matches it) and so do its task runs, which the tag concurrency limit ``server:<name>``
(created by ``deployments/setup.py``) serializes against any other tagged work on that server.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.backup import backup
from flows.common import markdown_artifact, table_artifact
from mysqlops.errors import ConfigError, MysqlopsError


class FleetBackupFailed(MysqlopsError):
    """At least one server's backup failed."""


def server_tag(server: str) -> str:
    """The tag that the per-server concurrency limit and the absence automation match."""
    return f"server:{server}"


@task(cache_policy=NO_CACHE, retries=0, task_run_name="backup-{server}")
def backup_server(server: str, locations: list[str], options: dict[str, Any]) -> dict[str, Any]:
    # The tag goes on the subflow, not on this task: a task holding the server's only
    # concurrency slot while its subflow's tasks wait for that same slot would deadlock.
    with tags(server_tag(server)):
        return backup(server=server, locations=locations, **options)


def _error_text(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


@flow(name="backup-fleet")
def backup_fleet(
    servers: list[str],
    locations: list[str],
    max_concurrency: int = 4,
    databases: list[str] | None = None,
    compression: str = "zstd",
    parallel: int = 1,
    backup_tags: list[str] | None = None,
    staging_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Back up every ``MySQLServer`` block in ``servers`` to the ``locations`` blocks.

    At most ``max_concurrency`` backups run at once. Options other than ``servers`` are passed
    to each ``backup`` subflow (``backup_tags`` becomes its ``tags``). Ends Failed, naming the
    servers, when any backup failed; the others still ran to the end.

    Args:
        servers: MySQLServer block names to back up, e.g. ["db1", "db2"].
        locations: BackupLocation block names every backup goes to, e.g. ["local", "s3"].
        max_concurrency: Backups running at once (one per server at most, whatever this says).
        databases: Only these databases on every server (default: all non-system ones).
        compression: zstd, gzip or none.
        parallel: Databases dumped at once per server (1 = one consistent snapshot).
        backup_tags: Tags recorded in each backup's manifest.
        staging_dir: Directory for temporary files.
    """
    logger = get_run_logger()
    if not servers:
        raise ConfigError("backup_fleet needs at least one server (MySQLServer block name)")
    if len(set(servers)) != len(servers):
        raise ConfigError(f"servers must be distinct, got {servers}")
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
    options: dict[str, Any] = {
        "databases": databases,
        "compression": compression,
        "parallel": parallel,
        "tags": backup_tags,
        "staging_dir": staging_dir,
    }
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    task_runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=max_concurrency)
    with task_runner as runner:
        futures = {
            server: runner.submit(
                backup_server, {"server": server, "locations": locations, "options": options}
            )
            for server in servers
        }
        for server, future in futures.items():
            future.wait()
            state = future.state
            row: dict[str, Any] = {"server": server, "status": "ok" if state.is_completed() else "FAILED"}
            if state.is_completed():
                summary = future.result()
                row |= {
                    "backup_id": summary["backup_id"],
                    "databases": len(summary["databases"]),
                    "stored_bytes": summary["stored_bytes"],
                    "locations": ", ".join(f"{k}: {v}" for k, v in summary["locations"].items()),
                    "warnings": len(summary["warnings"]),
                    "error": "",
                }
            else:
                try:
                    future.result(raise_on_failure=True)
                except BaseException as exc:  # noqa: BLE001 - recorded in the summary, re-raised below
                    error = _error_text(exc)
                else:
                    error = f"ended in state {state.name}"
                row |= {
                    "backup_id": "",
                    "databases": 0,
                    "stored_bytes": 0,
                    "locations": "",
                    "warnings": 0,
                    "error": error,
                }
                logger.error("backup of %s failed: %s", server, error)
            rows.append(row)
    failed = [r["server"] for r in rows if r["status"] != "ok"]
    elapsed = time.monotonic() - started
    table_artifact(
        "backup-fleet",
        rows,
        f"Fleet backup of {len(servers)} server(s): {len(servers) - len(failed)} ok, {len(failed)} failed "
        f"in {elapsed:.0f}s (max {max_concurrency} at once)",
    )
    lines = [
        f"# Fleet backup: {len(servers) - len(failed)} of {len(servers)} ok",
        "",
        "| server | status | backup | error |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['server']} | {r['status']} | {r['backup_id']} | {r['error'][:200].replace('|', '/')} |"
        for r in rows
    ]
    markdown_artifact("backup-fleet-summary", "\n".join(lines), "Fleet backup summary")
    if failed:
        raise FleetBackupFailed(
            f"backup failed for {len(failed)} of {len(servers)} server(s): {', '.join(failed)}; "
            + " | ".join(f"{r['server']}: {r['error']}" for r in rows if r["status"] != "ok")
        )
    logger.info("all %d backups verified in %.0fs", len(servers), elapsed)
    return rows
