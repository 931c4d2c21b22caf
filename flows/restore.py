"""``restore`` and ``restore_test``: restore a backup; prove that backups restore.

``restore_test`` runs nightly at 03:15 (the default cron of the ``restore-test/<server>``
deployments that setup creates from the environment file, ``deployments/servers.py``; between
the nightly backup and retention; ``prefect.yaml`` keeps an unscheduled one with a parameter
form): for the latest complete backup of each server, and for each location's copy, it
restores into a scratch sandbox server, verifies against the manifest, measures the time,
and writes a restore certificate next to the manifest at that location. Any failed check
fails the flow with the reason.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

import mysqlops.restore
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
from mysqlops.manifest import BackupManifest, Check, RestoreCertificate
from mysqlops.model import Location, RecoveryTarget, ServerSpec
from mysqlops.restore import RestoreOutcome, RestoreRequest


@task(cache_policy=NO_CACHE)
def restore_task(
    request: RestoreRequest, staging_dir: str | None, encryption_keys: list[str] | None
) -> RestoreOutcome:
    """Restore (and replay binlogs up to a point in time); the keys are loaded here by block name."""
    ctx = run_context(
        encryption_keys, staging_dir=staging_dir, progress=f"Restore into {request.target.name}: bytes loaded"
    )
    return mysqlops.restore.run(request, ctx)


@flow(name="restore")
def restore(
    target: str,
    locations: list[str],
    backup_id: str = "latest",
    server: str | None = None,
    databases: list[str] | None = None,
    rename: dict[str, str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    staging_dir: str | None = None,
    encryption_keys: list[str] | None = None,
    until: str | None = None,
    until_gtid: str | None = None,
    until_position: str | None = None,
    tables: list[str] | None = None,
    workers: int | None = None,
    load_timeout_s: float | None = mysqlops.restore.STATEMENT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Restore ``backup_id`` (or the latest of ``server``) into the ``target`` MySQLServer block.

    tables: only these tables, e.g. ["shop.orders", "shop.order_*"], read by ranged reads from
    the backup's table index; rename then maps "db.table" or "db" names
    ({"shop.orders": "shop.orders_restored"}); an existing target table needs overwrite=True.

    server: the backed-up server's MySQLServer block name (its backups are those recorded under
    the block's server_name; with no such block, the recorded name itself). locations:
    BackupLocation block names in preference order; a missing, truncated or corrupt copy is
    reported and the next location is used. rename: {"shop": "shop_restored"}.
    Refuses a non-empty existing database unless overwrite=True, and the backup's own source
    server unless allow_source_target=True. encryption_keys: Secret block names (current first).
    Point in time: until="2026-11-23T10:15:00Z" (or until_gtid / until_position
    "mysql-bin.000004:1234") restores the newest full backup before the target, then replays
    the archived binlogs from its coordinates up to the target. With tables=[...] too, only those
    tables (of one database) come back as they were then: rebuilt on a scratch server and moved
    into the target like a single-table restore (rename/overwrite as there; other tables untouched).

    Args:
        target: MySQLServer block to restore into (never the backup's own server unless allowed).
        locations: BackupLocation block names, in preference order, e.g. ["local", "s3"].
        backup_id: The backup to restore, e.g. 20261123T101500Z-3fa2c1, or latest (needs server).
        server: The backed-up server's MySQLServer block name (needed for latest and point in time).
        databases: Only these databases of the backup (default: all).
        rename: Restore database A as B, e.g. {"shop": "shop_restored"}.
        overwrite: Replace non-empty databases that exist on the target.
        allow_source_target: Allow restoring into the server the backup was taken from.
        staging_dir: Directory for temporary files (default: the system temp directory).
        encryption_keys: Secret block names holding the keys (current first) for encrypted backups.
        until: Point in time (UTC), e.g. 2026-11-23T10:15:00Z: replay archived binlogs up to it.
        until_gtid: Point in time as a GTID set: replay up to and including it.
        until_position: Point in time as binlog file:position, e.g. mysql-bin.000004:1234.
        tables: Only these tables, e.g. ["shop.orders", "shop.order_*"]; rename maps "db.table" names.
        workers: Connections loading tables in parallel, secondary keys added after the rows
            (default: one per core); 0 pipes the dump through one client as it is.
        load_timeout_s: Seconds one statement of the load may go without an answer from the
            server before the restore fails (default 6 hours; empty: no limit).
    """
    request = RestoreRequest(
        target=load_server(target),
        locations=tuple(load_location(name) for name in locations),
        server=server_name(server) if server else None,
        backup_id=backup_id,
        databases=tuple(databases) if databases else None,
        rename=dict(rename or {}),
        overwrite=overwrite,
        allow_source_target=allow_source_target,
        until=RecoveryTarget.parse(until, until_position, until_gtid),  # parsed once, here
        tables=tuple(tables) if tables else None,
        load=mysqlops.restore.LoadOptions(workers=workers, statement_timeout=load_timeout_s),
    )
    request.check()
    reap_leftovers(staging_dir)
    outcome = restore_task(request, staging_dir, encryption_keys)
    kind = "pitr" if outcome.pitr is not None else "restore"
    title = "Point-in-time recovery" if outcome.pitr is not None else f"Restore of {outcome.backup_id}"
    table_artifact(f"{kind}-{outcome.target}", outcome.rows(), title)
    return outcome.summary()


@task(cache_policy=NO_CACHE)
def prove_pitr_task(
    locations: list[Location], server: str, staging_dir: str | None, encryption_keys: list[str] | None
) -> list[Check]:
    return mysqlops.restore.prove_pitr(
        locations, server, run_context(encryption_keys, staging_dir=staging_dir)
    )


@task(cache_policy=NO_CACHE)
def restore_test_task(
    location: Location,
    manifest: BackupManifest,
    staging_dir: str | None,
    scans: list[catalog.LocationScan],
    compare_with: ServerSpec | None,
    encryption_keys: list[str] | None,
    scratch_series: str | None = None,
) -> RestoreCertificate:
    ctx = run_context(encryption_keys, staging_dir=staging_dir)
    return mysqlops.restore.prove_copy(
        location, manifest, ctx, scans, compare_with, scratch_series=scratch_series
    )


@flow(name="restore-test")
def restore_test(
    locations: list[str],
    servers: list[str] | None = None,
    backup_id: str = "latest",
    staging_dir: str | None = None,
    compare_with: str | None = None,
    encryption_keys: list[str] | None = None,
    prove_pitr: bool = False,
    scratch_series: str | None = None,
) -> list[dict[str, Any]]:
    """Prove backups restore: for the latest complete backup of each of ``servers`` (block
    names, as in every flow; default: every server found) or ``backup_id``, restore the copy at
    each of ``locations`` into a scratch server, verify, time it, and write a restore
    certificate. Fails if any check fails. Physical backups (a prepared chain started as a
    scratch server) are compared table by table with ``compare_with`` (a MySQLServer block that
    has not changed since). A copy whose manifest the catalog refused (a file name that could
    leave the staging directory, a duplicate, a manifest naming another directory, a symbolic
    link at a local location...) is never restored: it is a failed row of this flow, with the
    reason. ``prove_pitr``: also prove the binlog archive between two full backups.
    The scratch server is of each backup's own flavor and series (fetched when missing);
    ``scratch_series`` (``mariadb-11.8``) restores into that build instead: an upgrade
    rehearsal, certified like any restore test (the certificate names both versions).

    Args:
        locations: BackupLocation block names whose copies are tested, e.g. ["local", "s3"].
        servers: MySQLServer block names (default: every server found at the locations).
        backup_id: The backup to test, or latest (the newest complete backup of each server).
        staging_dir: Directory for temporary files and the scratch server.
        compare_with: MySQLServer block to compare a physical backup with, table by table.
        encryption_keys: Secret block names holding the keys (current first) for encrypted backups.
        prove_pitr: Also prove the binlog archive between two full backups (point-in-time recovery).
        scratch_series: Restore into this server build instead of the backup's own (an upgrade
            rehearsal), e.g. mariadb-11.8 for a MariaDB 10.11 backup.
    """
    mysqlops.restore.check_scratch_series(scratch_series)
    reap_leftovers(staging_dir)
    logger = get_run_logger()
    reference = load_server(compare_with) if compare_with else None
    locs = [load_location(name) for name in locations]
    scans = catalog.scan(locs)
    plan = mysqlops.restore.plan_restore_tests(scans, [server_name(s) for s in servers or []], backup_id)
    for problem in plan.problems:
        logger.error("%s", problem)
    certs = [
        restore_test_task(loc, m, staging_dir, scans, reference, encryption_keys, scratch_series)
        for loc, m in plan.copies
    ]
    rows = plan.refused + [mysqlops.restore.certificate_row(cert) for cert in certs]
    publish_metrics(metrics.restore_test_samples(certs))
    for cert in certs:
        markdown_artifact(
            f"restore-test-{cert.server}-{cert.location}",
            mysqlops.restore.certificate_markdown(cert),
            f"Restore certificate of {cert.backup_id}",
        )
    if prove_pitr:
        for server in plan.servers:
            checks = prove_pitr_task(locs, server, staging_dir, encryption_keys)
            rows.append(mysqlops.restore.chain_row(server, locations, checks))
    table_artifact("restore-tests", rows, "Restore test results")
    error = mysqlops.restore.restore_test_failure(rows)
    if error is not None:
        raise error
    return rows


@task(cache_policy=NO_CACHE)
def restore_physical_task(
    request: mysqlops.restore.PhysicalRestoreRequest,
    staging_dir: str | None,
    encryption_keys: list[str] | None,
) -> mysqlops.restore.PhysicalRestoreOutcome:
    """Fetch, verify, extract and prepare the chain into the datadir; the keys are loaded here by block name."""
    ctx = run_context(encryption_keys, staging_dir=staging_dir)
    return mysqlops.restore.run_physical(request, ctx)


@flow(name="restore-physical")
def restore_physical(
    datadir: str,
    locations: list[str],
    server: str,
    backup_id: str = "latest",
    staging_dir: str | None = None,
    encryption_keys: list[str] | None = None,
) -> dict[str, Any]:
    """Restore a physical backup chain (mariabackup full + incrementals, or a MySQL CLONE copy)
    into ``datadir``: the data directory of a STOPPED server on the machine this flow runs on
    (run it from a worker on the database host). The datadir must be absent or empty and no
    process may use it: a physical restore never writes over data. The chain is fetched and
    sha256-checked (falling back to the next location), prepared beside the datadir (inside it
    when it is a mount point), and put into place whole, with the empty datadir's mode and (run
    as root) owner; then start the server (same flavor and series as the backup). The returned
    ``next_steps`` says how (and to chown the datadir when it was created by root).

    Args:
        datadir: Absolute path of the stopped server's datadir, absent or empty, e.g. /var/lib/mysql.
        locations: BackupLocation block names, in preference order, e.g. ["local", "s3"].
        server: The backed-up server's MySQLServer block name (its backups are recorded under its server_name).
        backup_id: The last backup of the chain to restore, or latest (the newest physical backup).
        staging_dir: Directory for the fetched copies (default: a work directory beside the datadir).
        encryption_keys: Secret block names holding the keys (current first) for encrypted backups.
    """
    request = mysqlops.restore.PhysicalRestoreRequest(
        datadir=datadir,
        locations=tuple(load_location(name) for name in locations),
        server=server_name(server),
        backup_id=backup_id,
    )
    request.check()
    # what a killed run left: its work directory beside the datadir (inside it when it is a mount point)
    reap_leftovers(staging_dir, os.path.dirname(os.path.normpath(datadir)), datadir)
    outcome = restore_physical_task(request, staging_dir, encryption_keys)
    get_run_logger().info("%s", outcome.next_steps())
    table_artifact(
        f"restore-physical-{outcome.server}", outcome.rows(), f"Physical restore of {outcome.backup_id}"
    )
    return outcome.summary()
