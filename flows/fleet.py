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
from mysqlops.backup import fleet
from mysqlops.backup.fleet import FleetBackupFailed

__all__ = ["FleetBackupFailed", "backup_fleet", "backup_server", "server_tag"]


def server_tag(server: str) -> str:
    """The tag that the per-server concurrency limit and the absence automation match."""
    return f"server:{server}"


@task(cache_policy=NO_CACHE, retries=0, task_run_name="backup-{server}")
def backup_server(server: str, locations: list[str], options: dict[str, Any]) -> dict[str, Any]:
    # The tag goes on the subflow, not on this task: a task holding the server's only
    # concurrency slot while its subflow's tasks wait for that same slot would deadlock.
    with tags(server_tag(server)):
        return backup(server=server, locations=locations, **options)


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
    fleet.check_request(servers, max_concurrency)
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
            if future.state.is_completed():
                rows.append(fleet.ok_row(server, future.result()))
                continue
            try:
                future.result(raise_on_failure=True)
            except BaseException as exc:  # noqa: BLE001 - recorded in the summary, re-raised below
                error = fleet.error_text(exc)
            else:
                error = f"ended in state {future.state.name}"
            logger.error("backup of %s failed: %s", server, error)
            rows.append(fleet.failed_row(server, error))
    elapsed = time.monotonic() - started
    table_artifact("backup-fleet", rows, fleet.table_title(rows, elapsed, max_concurrency))
    markdown_artifact("backup-fleet-summary", fleet.summary_markdown(rows), "Fleet backup summary")
    if (error_to_raise := fleet.failure(rows)) is not None:
        raise error_to_raise
    logger.info("all %d backups verified in %.0fs", len(servers), elapsed)
    return rows
