"""``backup_report``: the Monday view of a DBA, as pandas DataFrames and Prefect artifacts.

Reads the catalog (manifests, binlog manifests, restore certificates) across locations,
builds the report (mysqlops.report), publishes table + markdown artifacts (charts embedded as
PNG), optionally writes CSV/Parquet/HTML to a location, and returns the DataFrames by name,
so a notebook can call ``frames = backup_report(["local", "s3"])`` and work with them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import load_location, markdown_artifact, publish_metrics, table_artifact
from flows.retention import _policy_for
from mysqlops import catalog, metrics
from mysqlops.adapters.storage import Store
from mysqlops.model import Location
from mysqlops.report import (
    Catalog,
    LocationInfo,
    Report,
    artifact_markdown,
    build_report,
    json_records,
    render_charts,
    small_tables,
    write_outputs,
)


def read_catalog(
    locations: list[Location], policies: dict[str, Any] | None = None
) -> tuple[Catalog, list[str]]:
    """The report's input from every location, each copy counted where it was found, with its
    restore-test verdict; unreadable or unusable entries are returned as problems."""
    scans = catalog.scan(locations)
    problems = [f"{s.location.name}: {e}" for s in scans for e in s.errors]
    return (
        Catalog(
            backups=[m for s in scans for m in s.backups],
            binlogs=[b for s in scans for b in s.binlogs],
            certificates=[c for s in scans for c in s.certificates],
            locations=[LocationInfo(loc.name, loc.kind, loc.offsite) for loc in locations],
            policies=policies or {},
            verdicts=catalog.verdicts(scans),
        ),
        problems,
    )


@task(cache_policy=NO_CACHE)
def build_task(
    locations: list[Location], freshness_hours: float, policies: dict[str, Any]
) -> tuple[Report, list[str]]:
    cat, problems = read_catalog(locations, policies)
    return build_report(cat, datetime.now(UTC), freshness_target=timedelta(hours=freshness_hours)), problems


@task(cache_policy=NO_CACHE)
def publish_task(report: Report, output: Location | None) -> list[str]:
    publish_metrics(metrics.recovery_window_samples(report))
    charts = render_charts(report)
    markdown_artifact(
        "backup-report",
        artifact_markdown(report, charts, small_tables(report)),
        "Backup report: sizes, durations, growth, 3-2-1, restore tests, anomalies",
    )
    for name, frame in report.frames().items():
        if len(frame):
            table_artifact(f"backup-report-{name}", json_records(frame), f"Backup report: {name}")
    if output is None:
        return []
    store = Store(output)
    base = store.path(f"reports/{report.generated_at:%Y%m%dT%H%M%SZ}")
    return write_outputs(report, store.fs, base)


@flow(name="backup-report")
def backup_report(
    locations: list[str],
    output_location: str | None = None,
    freshness_hours: float = 26,
    policies: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """Build the backup report over ``locations`` (BackupLocation block names) and return its
    DataFrames by name (backups, databases, growth, storage, locations, restores, freshness,
    anomalies). ``output_location``: also write CSV, Parquet and a self-contained HTML report
    there under ``reports/<time>/``. An empty catalog gives an empty report that says so.
    ``policy``/``policies``: as apply-retention takes them (one policy for every location, or per
    location a policy dict or a RetentionPolicyBlock name), so the storage forecast keeps what
    apply-retention keeps."""
    logger = get_run_logger()
    locs = [load_location(name) for name in locations]
    chosen = policies or {}
    # keyed by the block name as apply-retention takes them; the catalog knows the location's own name
    resolved = {
        loc.name: _policy_for(name, policy, chosen)
        for name, loc in zip(locations, locs, strict=True)
        if policy is not None or name in chosen
    }
    report, problems = build_task(locs, freshness_hours, resolved)
    for problem in problems:
        logger.error("unreadable catalog entry: %s", problem)
    written = publish_task(report, load_location(output_location) if output_location else None)
    logger.info("%s", report.message or f"report over {len(report.backups)} backup copies")
    for path in written:
        logger.info("wrote %s", path)
    return report.frames()
