"""``archive-binlogs``: rotate, copy every closed binlog not yet archived to each location,
verified, manifest last. Meant to run often (every few minutes): the archive's recovery
point is the age of the last run.

A thin recipe over :func:`mysqlops.binlog.archive_binlogs`. A gap (binlogs purged on the
server before they were archived) fails the run loudly, after everything still available was
archived, naming the missing files and the full backups that cannot be rolled forward.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import (
    load_location,
    load_server,
    markdown_artifact,
    publish_metrics,
    run_context,
    table_artifact,
)
from mysqlops import binlog, metrics
from mysqlops.streams.compression import codec as make_codec
from mysqlops.units import human_bytes

COPY_TIMEOUT_SECONDS = 3600.0


def _summary(result: binlog.ArchiveResult) -> dict[str, Any]:
    return {
        "server": result.server,
        "active": result.active,
        "rotated": result.rotated,  # False: no transaction since the last run, nothing to close
        "archived": result.files,
        "copies": len(result.archived),
        "raw_bytes": result.raw_bytes,
        "stored_bytes": sum(a.stored_bytes for a in result.archived),
        "already_archived": len(result.skipped),
        "known_gaps": {k: list(v) for k, v in result.known_gaps.items()},
        "encryption_key_ids": sorted({m.encryption_key_id for m in result.manifests if m.encryption_key_id}),
        "seconds": round(result.seconds, 3),
    }


@task(cache_policy=NO_CACHE, retries=0)
def archive_task(
    server: str,
    locations: list[str],
    compression: str,
    staging_dir: str | None,
    encryption_key: str | None = None,
) -> dict[str, Any]:
    logger = get_run_logger()
    spec = load_server(server)
    locs = [load_location(name) for name in locations]
    # the key is loaded here, by block name; one binlog copy may take an hour (the flow runs
    # every few minutes and skips a run while one is going: a hung copy must not block it for a day)
    ctx = dataclasses.replace(
        run_context(encryption_key, staging_dir=staging_dir), timeout=COPY_TIMEOUT_SECONDS
    )
    try:
        result = binlog.archive_binlogs(spec, locs, make_codec(compression), ctx, datetime.now(UTC))
    except binlog.BinlogGap as gap:
        if gap.result is not None and gap.result.archived:
            table_artifact(
                f"binlogs-{server}", gap.result.rows(), f"Binlogs of {server} archived before the gap"
            )
        markdown_artifact(
            f"binlog-gap-{server}",
            f"# Binlog gap on `{server}`\n\n{gap}\n\nMissing: {', '.join(gap.missing)}\n\n"
            f"Affected full backups: {', '.join(gap.affected_backups) or 'none'}\n",
            f"Binlogs of {server} lost before archiving",
        )
        raise
    for location, files in result.known_gaps.items():
        logger.warning(
            "location %s: archive of %s has a known gap (%s): PITR cannot cross it",
            location,
            server,
            ", ".join(files),
        )
    if result.archived:
        table_artifact(f"binlogs-{server}", result.rows(), f"Binlogs of {server} archived by this run")
    summary = _summary(result)
    publish_metrics(metrics.binlog_samples(result, [loc.name for loc in locs], datetime.now(UTC)))
    logger.info(
        "%s: archived %d binlog(s) (%d copies, %s raw), %d already archived; now writing %s",
        server,
        len(result.files),
        summary["copies"],
        human_bytes(summary["raw_bytes"]),
        summary["already_archived"],
        result.active,
    )
    return summary


@flow(name="archive-binlogs")
def archive_binlogs(
    server: str,
    locations: list[str],
    compression: str = "zstd",
    staging_dir: str | None = None,
    encryption_key: str | None = None,
) -> dict[str, Any]:
    """Archive the binary logs of the ``MySQLServer`` block ``server`` to every
    ``BackupLocation`` block in ``locations`` (write-once, verified, manifest last).

    encryption_key: name of a Prefect Secret block holding a base64 (or hex) 32-byte key:
    every binlog file is encrypted (AES-256-GCM) after compression, before it leaves the
    machine; its manifest records the key id. Restore/PITR take ``encryption_keys``.
    The server's user needs RELOAD, BINLOG MONITOR (MariaDB) / REPLICATION CLIENT (MySQL)
    and REPLICATION SLAVE.
    """
    return archive_task(server, locations, compression, staging_dir, encryption_key)
