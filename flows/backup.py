"""``backup``: consistent logical backup to several locations, verified, manifest last.

A recipe over :mod:`mysqlops.backup`: pre-flight (nothing is written when it fails), dump
with live progress, upload + read-back verification per location, manifest as commit marker,
then a table artifact (one row per file and location) and a markdown summary.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect import tags as prefect_tags  # `tags` is a parameter of the flow
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
from mysqlops import backup as core
from mysqlops import catalog
from mysqlops.backup import preflight as backup_preflight
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.model import Location, ServerSpec
from mysqlops.streams.compression import codec as make_codec


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


@task(cache_policy=NO_CACHE, retries=0)
def preflight_task(
    spec: ServerSpec,
    locations: list[Location],
    databases: list[str] | None,
    include: list[str],
    exclude: list[str],
    staging_dir: str | None,
    from_replica: bool,
) -> core.Plan:
    logger = get_run_logger()
    plan = backup_preflight.preflight(
        spec,
        locations,
        databases=databases,
        include=include,
        exclude=exclude,
        staging_dir=staging_dir,
        from_replica=from_replica,
    )
    logger.info(
        "pre-flight ok: %s, %d database(s) (%s estimated), locations %s",
        plan.version,
        len(plan.databases),
        _human(sum(plan.estimated_bytes.values())),
        ", ".join(loc.name for loc in locations),
    )
    for warning in plan.warnings:
        logger.warning(warning)
    return plan


@task(cache_policy=NO_CACHE, retries=0)
def dump_and_upload_task(
    spec: ServerSpec,
    locations: list[Location],
    plan: core.Plan | None,
    compression: str,
    level: int | None,
    parallel: int,
    from_replica: bool,
    tags: list[str],
    staging_dir: str | None,
    progress_interval: float,
    method: str = "logical",
    incremental: bool = False,
    encryption_key_block: str | None = None,
) -> core.BackupResult:
    logger = get_run_logger()
    # the key is loaded here, inside the task: key bytes never travel as a task parameter
    keyring = load_keyring([encryption_key_block] if encryption_key_block else None)
    encryption_key = keyring.current if keyring else None
    artifact_id = cast(
        UUID, create_progress_artifact(0.0, description=f"Backup of {spec.name}: bytes dumped / estimate")
    )

    def on_progress(p: core.Progress) -> None:
        eta = f", ETA {p.eta_seconds:.0f}s" if p.eta_seconds is not None else ""
        logger.info(
            "dumped %s of ~%s (%.0f%%) at %.1f MB/s%s",
            _human(p.dumped_bytes),
            _human(p.estimated_bytes),
            100 * p.fraction,
            p.throughput / 1e6,
            eta,
        )
        try:
            update_progress_artifact(artifact_id, round(100 * p.fraction, 1))
        except Exception as exc:  # noqa: BLE001 - progress display must never fail a backup
            logger.debug("progress artifact update failed: %s", exc)

    if method == "physical":
        from mysqlops.backup import run_physical_backup

        physical = run_physical_backup(
            spec,
            locations,
            make_codec(compression, level),
            incremental=incremental,
            staging_dir=staging_dir,
            tags=tags,
            log=logger.info,
            encryption_key=encryption_key,
        )
        update_progress_artifact(artifact_id, 100.0)
        return physical
    if plan is None:
        raise ConfigError("a logical backup needs its pre-flight plan")
    result = core.run_backup(
        spec,
        locations,
        make_codec(compression, level),
        plan=plan,
        parallel=parallel,
        from_replica=from_replica,
        tags=tags,
        staging_dir=staging_dir,
        progress=on_progress,
        progress_interval=progress_interval,
        log=logger.info,
        encryption_key=encryption_key,
    )
    update_progress_artifact(artifact_id, 100.0)
    return result


def _summary_markdown(result: core.BackupResult) -> str:
    m = result.manifest
    lines = [
        f"# Backup `{m.backup_id}` of `{m.server}`",
        "",
        f"- server: {m.flavor} {m.server_version}; databases: {len(m.databases)}"
        + (" (empty)" if m.extra.get("empty") else ""),
        f"- raw {_human(m.raw_bytes)} → stored {_human(m.stored_bytes)} ({m.compression})",
        f"- binlog coordinates: {m.coordinates.file}:{m.coordinates.position} gtid {m.coordinates.gtid}"
        if m.coordinates
        else "- binlog coordinates: none (PITR not possible from this backup)",
        "- durations: " + ", ".join(f"{k} {v:.1f}s" for k, v in m.durations.items()),
        "",
        "| location | status |",
        "|---|---|",
    ]
    lines += [
        f"| {r.location} | {'verified' if r.ok else 'FAILED: ' + r.error[:300]} |" for r in result.locations
    ]
    if result.warnings:
        lines += ["", "## Warnings", *[f"- {w}" for w in result.warnings]]
    return "\n".join(lines)


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
    method: "logical" (mysqldump) or "physical" (mariabackup/xtrabackup; must run on the
    server's machine; ``incremental=True`` builds on the newest physical backup).
    encryption_key: name of a Prefect Secret block holding a base64 32-byte key: every file is
    encrypted (AES-256-GCM) before it leaves the machine; the manifest records the key id.
    Ends Failed, naming the location(s), when any location could not be written and verified.
    """
    # every parameter is judged before anything connects to the server: a wrong one is a clear
    # error naming it, never a connection error or a half-made backup
    if method not in ("logical", "physical"):
        raise ConfigError(f"method must be 'logical' or 'physical', got {method!r}")
    if incremental and method != "physical":
        raise ConfigError("incremental=True needs method='physical' (logical increments are binlog archives)")
    if from_replica and method != "logical":
        raise ConfigError(
            "from_replica=True is for logical backups; a physical backup copies the server it runs on"
        )
    make_codec(compression, level)  # an unknown codec or a level out of range
    logger = get_run_logger()
    spec = load_server(server)
    locs = [load_location(name) for name in locations]  # a relative file:// URL is refused here
    backup_preflight.check_backup_parameters(
        locs,
        databases=databases,
        include=include or (),
        exclude=exclude or (),
        parallel=parallel,
        staging_dir=staging_dir,
        progress_interval=progress_interval,
        tags=tags or (),
    )
    load_keyring([encryption_key] if encryption_key else None)  # a missing block fails before pre-flight
    reap_leftovers(staging_dir)  # what killed runs left: before pre-flight measures free space
    # task runs tagged server:<block> take the per-server tag concurrency limit made by setup
    with prefect_tags(f"server:{server}"):
        plan = (
            preflight_task(spec, locs, databases, include or [], exclude or [], staging_dir, from_replica)
            if method == "logical"
            else None
        )
        result = dump_and_upload_task(
            spec,
            locs,
            plan,
            compression,
            level,
            parallel,
            from_replica,
            tags or [],
            staging_dir,
            progress_interval,
            method,
            incremental,
            encryption_key,
        )
    table_artifact(
        f"backup-{spec.name}", result.rows(), f"Files of backup {result.manifest.backup_id} per location"
    )
    markdown_artifact(f"backup-{spec.name}-summary", _summary_markdown(result), "Backup summary")
    summary = {
        "backup_id": result.manifest.backup_id,
        "server": spec.name,
        "databases": list(result.manifest.databases),
        "raw_bytes": result.manifest.raw_bytes,
        "stored_bytes": result.manifest.stored_bytes,
        "locations": {r.location: ("verified" if r.ok else r.error) for r in result.locations},
        "durations": result.manifest.durations,
        "warnings": result.warnings,
        "coordinates": None
        if not result.manifest.coordinates
        else {
            "file": result.manifest.coordinates.file,
            "position": result.manifest.coordinates.position,
            "gtid": result.manifest.coordinates.gtid,
        },
    }
    if not result.ok:
        good = [r.location for r in result.locations if r.ok]
        raise MysqlopsError(
            f"backup {result.manifest.backup_id} failed at location(s) {', '.join(result.failed_locations)}; "
            f"verified copies exist at: {', '.join(good) or 'none'}. "
            + " | ".join(f"{r.location}: {r.error}" for r in result.locations if not r.ok)
        )
    logger.info("backup %s verified at %s", result.manifest.backup_id, ", ".join(locations))
    return summary


@flow(name="list-backups")
def list_backups(locations: list[str], server: str | None = None) -> list[dict[str, Any]]:
    """The catalog: backups across locations, one row per copy under the location it was
    found at, with its restore-test ``verdict`` and ``proven``; a copy whose newest restore
    test failed shows status ``restore-test-failed``, one missing files ``damaged``, a refused
    manifest ``unusable: <reason>``.

    Args:
        locations: BackupLocation block names to list, e.g. ["local", "s3"].
        server: Only this server (name as stored); empty = every server.
    """
    scans = catalog.scan([load_location(name) for name in locations])
    rows = [r for r in catalog.backups_rows(scans) if server is None or r["server"] in (server, None)]
    table_artifact("backup-catalog", rows, "Backups across locations, with restore-test verdicts")
    for s in scans:
        for error in s.errors:
            get_run_logger().error("location %s: %s", s.location.name, error)
    return rows
