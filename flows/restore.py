"""``restore`` and ``restore_test``: restore a backup; prove that backups restore.

``restore_test`` is scheduled weekly (prefect.yaml): for the latest complete backup of each
server, and for each location's copy, it restores into a scratch sandbox server, verifies
against the manifest, measures the time, and writes a restore certificate next to the
manifest at that location. Any failed check fails the flow with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import (
    load_keyring,
    load_location,
    load_server,
    markdown_artifact,
    reap_leftovers,
    table_artifact,
)
from mysqlops import catalog
from mysqlops import restore as core
from mysqlops.errors import ConfigError, MysqlopsError, VerificationFailed
from mysqlops.manifest import BackupManifest, Check, RestoreCertificate
from mysqlops.model import Location, ServerSpec
from mysqlops.restore import PitrResult, point_in_time_restore, prove_binlog_chain
from mysqlops.streams.crypto import Keyring


@task(cache_policy=NO_CACHE)
def restore_task(
    copies: list[tuple[Location, BackupManifest]],
    target: ServerSpec,
    databases: list[str] | None,
    rename: dict[str, str],
    overwrite: bool,
    allow_source_target: bool,
    staging_dir: str | None,
    keyring: Keyring | None = None,
) -> core.RestoreResult:
    logger = get_run_logger()
    artifact_id = cast(
        UUID, create_progress_artifact(0.0, description=f"Restore into {target.name}: bytes loaded")
    )
    state = {"last": 0.0}

    def on_progress(done: int, total: int, elapsed: float) -> None:
        if elapsed - state["last"] < 5 and done < total:
            return
        state["last"] = elapsed
        pct = 100.0 * done / total if total else 100.0
        rate = done / elapsed if elapsed > 0 else 0
        eta = (total - done) / rate if rate > 0 else 0
        logger.info(
            "loaded %.0f%% (%d of %d bytes) at %.1f MB/s, ETA %.0fs", pct, done, total, rate / 1e6, eta
        )
        try:
            update_progress_artifact(artifact_id, round(min(pct, 100.0), 1))
        except Exception as exc:  # noqa: BLE001 - progress display never fails a restore
            logger.debug("progress update failed: %s", exc)

    result = core.restore_backup(
        copies,
        target,
        databases=databases,
        rename=rename,
        overwrite=overwrite,
        allow_source_target=allow_source_target,
        staging_dir=staging_dir,
        progress=on_progress,
        log=logger.info,
        keyring=keyring,
    )
    update_progress_artifact(artifact_id, 100.0)
    for problem in result.problems:
        logger.warning(problem)
    for warning in result.warnings:
        logger.warning(warning)
    return result


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
) -> dict[str, Any]:
    """Restore ``backup_id`` (or the latest of ``server``) into the ``target`` MySQLServer block.

    locations: BackupLocation block names in preference order; a missing, truncated or
    corrupt copy is reported and the next location is used. rename: {"shop": "shop_restored"}.
    Refuses a non-empty existing database unless overwrite=True, and the backup's own source
    server unless allow_source_target=True. encryption_keys: Secret block names (current first).
    Point in time: until="2026-11-23T10:15:00Z" (or until_gtid / until_position
    "mysql-bin.000004:1234") restores the newest full backup before the target, then replays
    the archived binlogs from its coordinates up to the target.

    Args:
        target: MySQLServer block to restore into (never the backup's own server unless allowed).
        locations: BackupLocation block names, in preference order, e.g. ["local", "s3"].
        backup_id: The backup to restore, e.g. 20261123T101500Z-3fa2c1, or latest (needs server).
        server: The backed-up server's name as stored (needed for latest and point in time).
        databases: Only these databases of the backup (default: all).
        rename: Restore database A as B, e.g. {"shop": "shop_restored"}.
        overwrite: Replace non-empty databases that exist on the target.
        allow_source_target: Allow restoring into the server the backup was taken from.
        staging_dir: Directory for temporary files (default: the system temp directory).
        encryption_keys: Secret block names holding the keys (current first) for encrypted backups.
        until: Point in time (UTC), e.g. 2026-11-23T10:15:00Z: replay archived binlogs up to it.
        until_gtid: Point in time as a GTID set: replay up to and including it.
        until_position: Point in time as binlog file:position, e.g. mysql-bin.000004:1234.
    """
    if backup_id == "latest" and not server:
        raise ConfigError("restore of 'latest' needs server=<the backed-up server's name>")
    reap_leftovers(staging_dir)
    if until or until_gtid or until_position:
        return _point_in_time(
            target,
            locations,
            backup_id,
            server or "",
            until,
            until_gtid,
            until_position,
            overwrite,
            allow_source_target,
            staging_dir,
            encryption_keys,
        )
    spec = load_server(target)
    scans = catalog.scan([load_location(name) for name in locations])
    for problem in catalog.unusable_copies(scans, server, None if backup_id == "latest" else backup_id):
        get_run_logger().warning("never restored from: %s", problem)
    copies = catalog.find_backup(scans, server, backup_id)
    result = restore_task(
        copies,
        spec,
        databases,
        rename or {},
        overwrite,
        allow_source_target,
        staging_dir,
        load_keyring(encryption_keys),
    )
    rows = [{"database": d, "restored_as": t, "target": spec.name} for d, t in result.databases.items()]
    table_artifact(f"restore-{spec.name}", rows, f"Restore of {result.backup_id}")
    return {
        "backup_id": result.backup_id,
        "target": spec.name,
        "databases": result.databases,
        "locations_used": result.locations_used,
        "problems": result.problems,
        "durations": result.durations,
    }


@task(cache_policy=NO_CACHE)
def pitr_task(
    target: ServerSpec,
    locations: list[Location],
    server: str,
    backup_id: str,
    until: datetime | None,
    until_gtid: str | None,
    until_position: str | None,
    overwrite: bool,
    allow_source_target: bool,
    staging_dir: str | None,
    keyring: Keyring | None,
) -> PitrResult:
    logger = get_run_logger()
    return point_in_time_restore(
        locations,
        server,
        target,
        until=until,
        until_gtid=until_gtid,
        until_position=until_position,
        backup_id=backup_id,
        overwrite=overwrite,
        allow_source_target=allow_source_target,
        staging_dir=staging_dir,
        keyring=keyring,
        log=logger.info,
    )


def _point_in_time(
    target: str,
    locations: list[str],
    backup_id: str,
    server: str,
    until: str | None,
    until_gtid: str | None,
    until_position: str | None,
    overwrite: bool,
    allow_source_target: bool,
    staging_dir: str | None,
    encryption_keys: list[str] | None,
) -> dict[str, Any]:
    if not server:
        raise ConfigError("point-in-time recovery needs server=<the backed-up server's name>")
    when = None
    if until:
        try:
            when = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(
                f"until {until!r} is not an ISO date-time such as 2026-11-23T10:15:00Z"
            ) from exc
        if when.tzinfo is None:
            raise ConfigError(f"until {until!r} has no time zone: add Z (UTC) or an offset")
    spec = load_server(target)
    result = pitr_task(
        spec,
        [load_location(n) for n in locations],
        server,
        backup_id,
        when,
        until_gtid,
        until_position,
        overwrite,
        allow_source_target,
        staging_dir,
        load_keyring(encryption_keys),
    )
    rows = [
        {
            "base_backup": result.base.backup_id,
            "binlogs": len(result.replay.files),
            "stop": result.replay.stop,
            "target": spec.name,
        }
    ]
    table_artifact(f"pitr-{spec.name}", rows, "Point-in-time recovery")
    return {
        "backup_id": result.base.backup_id,
        "target": spec.name,
        "databases": result.restore.databases,
        "binlogs_replayed": list(result.replay.files),
        "stop": result.replay.stop,
        "durations": {**result.restore.durations, "replay": round(result.replay.apply_seconds, 3)},
    }


@task(cache_policy=NO_CACHE)
def prove_pitr_task(
    locations: list[Location], server: str, staging_dir: str | None, keyring: Keyring | None
) -> list[Check]:
    logger = get_run_logger()
    checks = prove_binlog_chain(locations, server, staging_dir=staging_dir, keyring=keyring, log=logger.info)
    for check in checks:
        (logger.info if check.passed else logger.error)(
            "%s %s: %s", "PASS" if check.passed else "FAIL", check.name, check.detail
        )
    return checks


@task(cache_policy=NO_CACHE)
def restore_test_task(
    location: Location,
    manifest: BackupManifest,
    staging_dir: str | None,
    scans: list[catalog.LocationScan] | None = None,
    compare_with: ServerSpec | None = None,
    keyring: Keyring | None = None,
) -> RestoreCertificate:
    logger = get_run_logger()
    if manifest.method.value == "physical":
        from mysqlops.adapters.storage import Store
        from mysqlops.restore import physical_chain, restore_test_physical

        if compare_with is None:
            raise ConfigError(
                f"backup {manifest.backup_id} is physical: its restore test compares table checksums with a "
                "server that has not changed since (e.g. a quiet replica); pass compare_with=<MySQLServer block>"
            )
        here = [s for s in scans or [] if s.location.name == location.name]
        chain = physical_chain(here, manifest.server, manifest.backup_id)
        result = restore_test_physical(
            chain, source=compare_with, staging_dir=staging_dir, log=logger.info, keyring=keyring
        )
        cert = result.certificate
        Store(location).put_bytes(
            cert.to_json().encode(), core.certificate_key(manifest, location.name, cert.tested_at)
        )
    else:
        cert = core.restore_test_copy(
            location, manifest, staging_dir=staging_dir, log=logger.info, keyring=keyring
        )
    for check in cert.checks:
        (logger.info if check.passed else logger.error)(
            "%s %s: %s", "PASS" if check.passed else "FAIL", check.name, check.detail
        )
    return cert


def _refused_row(server: str, problem: str) -> dict[str, Any]:
    """A failed row for a copy that was not even tested (refused or not found)."""
    where, _, what = problem.partition(": ")
    return {
        "server": server,
        "backup_id": "(not tested)",
        "location": where if what else None,
        "passed": False,
        "restore_seconds": None,
        "load_seconds": None,
        "verify_seconds": None,
        "recovery_point_hours": None,
        "failed_checks": (what or problem)[:500],
    }


def _certificate_markdown(cert: RestoreCertificate) -> str:
    lines = [
        f"# Restore test of `{cert.backup_id}` ({cert.server}) from `{cert.location}`: "
        + ("**PASSED**" if cert.passed else "**FAILED**"),
        "",
        f"- source {cert.source_version}, scratch server {cert.target_version}",
        f"- recovery point: backup was {cert.recovery_point_seconds / 3600:.1f} h old",
        "- durations: " + ", ".join(f"{k} {v:.1f}s" for k, v in cert.durations.items()),
        "",
        "| check | result | detail |",
        "|---|---|---|",
        *[f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail[:300]} |" for c in cert.checks],
    ]
    if cert.lossy:
        lines += ["", "## Lossy by format", *[f"- {note}" for note in cert.lossy]]
    return "\n".join(lines)


@flow(name="restore-test")
def restore_test(
    locations: list[str],
    servers: list[str] | None = None,
    backup_id: str = "latest",
    location: str | None = None,
    staging_dir: str | None = None,
    compare_with: str | None = None,
    encryption_keys: list[str] | None = None,
    prove_pitr: bool = False,
) -> list[dict[str, Any]]:
    """Prove backups restore: for the latest complete backup of each server (or
    ``backup_id``), restore each location's copy (or only ``location``'s) into a scratch
    server, verify, time it, and write a restore certificate. Fails if any check fails.
    Physical backups (a prepared chain started as a scratch server) are compared table by
    table with ``compare_with`` (a MySQLServer block that has not changed since).
    A copy whose manifest the catalog refused (a file name that could leave the staging
    directory, a duplicate, a manifest naming another directory, a symbolic link at a local
    location...) is never restored: it is a failed row of this flow, with the reason.

    Args:
        locations: BackupLocation block names whose copies are tested, e.g. ["local", "s3"].
        servers: Server names as stored (default: every server found at the locations).
        backup_id: The backup to test, or latest (the newest complete backup of each server).
        location: Test only the copy at this location (default: every location's copy).
        staging_dir: Directory for temporary files and the scratch server.
        compare_with: MySQLServer block to compare a physical backup with, table by table.
        encryption_keys: Secret block names holding the keys (current first) for encrypted backups.
        prove_pitr: Also replay the archived binlogs after the backup (proves point-in-time recovery).
    """
    reap_leftovers(staging_dir)
    logger = get_run_logger()
    reference = load_server(compare_with) if compare_with else None
    keyring = load_keyring(encryption_keys)
    locs = [load_location(name) for name in locations]
    scans = catalog.scan(locs)
    names = servers or sorted(
        {m.server for s in scans for m in s.backups}
        | {u.server for s in scans for u in s.unusable if u.server}
    )
    if not names:
        raise ConfigError(f"no backups found at {locations}: nothing to test")
    certs: list[RestoreCertificate] = []
    refused: list[dict[str, Any]] = []
    for server in names:
        for problem in catalog.unusable_copies(scans, server, None if backup_id == "latest" else backup_id):
            if location and not problem.startswith(f"{location}: "):
                continue
            logger.error("%s", problem)
            refused.append(_refused_row(server, problem))
        try:
            copies = catalog.find_backup(scans, server, backup_id)
        except MysqlopsError as exc:
            logger.error("%s", exc)
            refused.append(_refused_row(server, str(exc)))
            continue
        for loc, manifest in copies:
            if location and loc.name != location:
                continue
            certs.append(restore_test_task(loc, manifest, staging_dir, scans, reference, keyring))
    rows = list(refused)
    for cert in certs:
        markdown_artifact(
            f"restore-test-{cert.server}-{cert.location}",
            _certificate_markdown(cert),
            f"Restore certificate of {cert.backup_id}",
        )
        rows.append(
            {
                "server": cert.server,
                "backup_id": cert.backup_id,
                "location": cert.location,
                "passed": cert.passed,
                "restore_seconds": cert.durations.get("total"),
                "load_seconds": cert.durations.get("load"),
                "verify_seconds": cert.durations.get("verify"),
                "recovery_point_hours": round(cert.recovery_point_seconds / 3600, 2),
                "failed_checks": "; ".join(c.name for c in cert.checks if not c.passed),
            }
        )
    if prove_pitr:
        for server in names:
            checks = prove_pitr_task(locs, server, staging_dir, keyring)
            rows.append(
                {
                    "server": server,
                    "backup_id": "binlog chain",
                    "location": ",".join(locations),
                    "passed": bool(checks) and all(c.passed for c in checks),
                    "restore_seconds": None,
                    "load_seconds": None,
                    "verify_seconds": None,
                    "recovery_point_hours": None,
                    "failed_checks": "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.passed),
                }
            )
    table_artifact("restore-tests", rows, "Restore test results")
    failed = [r for r in rows if not r["passed"]]
    if failed:
        raise VerificationFailed(
            "restore test failed for "
            + ", ".join(
                f"{r['server']} {r['backup_id']} at {r['location']} ({r['failed_checks']})" for r in failed
            )
        )
    return rows
