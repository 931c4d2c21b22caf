"""``backup``: consistent logical backup to several locations, verified, manifest last.

A recipe over :mod:`mysqlops.backup`: pre-flight (nothing is written when it fails), dump
with live progress, upload + read-back verification per location, manifest as commit marker,
then a table artifact (one row per file and location) and a markdown summary.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect import tags as prefect_tags  # `tags` is a parameter of the flow
from prefect.cache_policies import NO_CACHE

import mysqlops.backup
from flows.common import (
    load_location,
    load_server,
    markdown_artifact,
    publish_metrics,
    reap_leftovers,
    run_context,
    server_name,
    table_artifact,
)
from mysqlops import catalog, metrics
from mysqlops.backup import BackupRequest, BackupResult
from mysqlops.runs import RunContext


@task(cache_policy=NO_CACHE, retries=0)
def backup_task(
    request: BackupRequest, staging_dir: str | None, progress_interval: float, encryption_key: str | None
) -> BackupResult:
    """Pre-flight, dump, uploads, manifest last; the key is loaded here, from its block name."""
    ctx = run_context(
        encryption_key,
        staging_dir=staging_dir,
        progress=f"Backup of {request.server.name}: bytes dumped / estimate",
        progress_interval=progress_interval,
    )
    return mysqlops.backup.run(request, ctx)


@flow(name="backup")
def backup(
    server: str,
    locations: list[str],
    databases: list[str] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    compression: str = "zstd",
    level: int | None = None,
    parallel: int = 1,
    from_replica: bool = False,
    tags: list[str] | None = None,
    staging_dir: str | None = None,
    progress_interval: float = 5.0,
    method: str = "logical",
    incremental: bool = False,
    encryption_key: str | None = None,
) -> dict[str, Any]:
    """Back up ``server`` (a MySQLServer block name) to every ``locations`` block.

    databases: explicit names (default: all non-system); include/exclude: glob patterns.
    compression: zstd (default, level 3, all cores) | gzip | none. parallel: databases dumped
    at once (1 = one consistent snapshot for all). from_replica: freeze a replica's SQL thread
    so all databases share one point and record the primary's coordinates.
    method: "logical" (mysqldump) or "physical" (must run on the server's machine; MariaDB:
    mariabackup, ``incremental=True`` builds on the newest physical backup; MySQL: the server's
    CLONE plugin, full backups only, binlog archiving gives the changes in between).
    encryption_key: name of a Prefect Secret block holding a base64 32-byte key: every file is
    encrypted (AES-256-GCM) before it leaves the machine; the manifest records the key id.
    Ends Failed, naming the location(s), when any location could not be written and verified.
    """
    request = mysqlops.backup.request_from(
        load_server(server),
        [load_location(name) for name in locations],  # a relative file:// URL is refused here
        databases=databases,
        include=include,
        exclude=exclude,
        compression=compression,
        level=level,
        parallel=parallel,
        from_replica=from_replica,
        tags=tags,
        method=method,
        incremental=incremental,
    )
    # every parameter is judged before anything connects: a clear error naming it
    request.check(RunContext(staging_dir=staging_dir, progress_interval=progress_interval))
    reap_leftovers(staging_dir)  # what killed runs left: before pre-flight measures free space
    # task runs tagged server:<block> take the per-server tag concurrency limit made by setup
    with prefect_tags(f"server:{server}"):
        result = backup_task(request, staging_dir, progress_interval, encryption_key)
    name = request.server.name
    table_artifact(
        f"backup-{name}", result.rows(), f"Files of backup {result.manifest.backup_id} per location"
    )
    markdown_artifact(f"backup-{name}-summary", mysqlops.backup.summary_markdown(result), "Backup summary")
    publish_metrics(metrics.backup_samples(result))
    error = mysqlops.backup.failure(result)
    if error is not None:
        raise error
    get_run_logger().info("backup %s verified at %s", result.manifest.backup_id, ", ".join(locations))
    return mysqlops.backup.summary(result)


@flow(name="list-backups")
def list_backups(locations: list[str], server: str | None = None) -> list[dict[str, Any]]:
    """The catalog: backups across locations, one row per copy under the location it was
    found at, with its restore-test ``verdict`` and ``proven``; a copy whose newest restore
    test failed shows status ``restore-test-failed``, one missing files ``damaged``, a refused
    manifest ``unusable: <reason>``.

    Args:
        locations: BackupLocation block names to list, e.g. ["local", "s3"].
        server: Only this server's backups (its MySQLServer block name; the recorded server name
            when the block is gone); empty = every server.
    """
    scans = catalog.scan([load_location(name) for name in locations])
    recorded = server_name(server) if server else None
    rows = [r for r in catalog.backups_rows(scans) if recorded is None or r["server"] in (recorded, None)]
    table_artifact("backup-catalog", rows, "Backups across locations, with restore-test verdicts")
    for s in scans:
        for error in s.errors:
            get_run_logger().error("location %s: %s", s.location.name, error)
    return rows
