"""``backup_report``: the Monday view of a DBA, as pandas DataFrames and Prefect artifacts.

Reads the catalog (manifests, binlog manifests, restore certificates) across locations,
builds the report (mysqlops.report), publishes table + markdown artifacts (charts embedded as
PNG), optionally writes CSV/Parquet/HTML to a location, and returns the DataFrames by name,
so a notebook can call ``frames = backup_report(["local", "s3"])`` and work with them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

import mysqlops.report
from flows.common import load_location, markdown_artifact, publish_metrics, resolve_policies, table_artifact
from mysqlops import metrics
from mysqlops.model import Location
from mysqlops.report import Publication, Report
from mysqlops.retention import RetentionPolicy


@task(cache_policy=NO_CACHE)
def build_task(
    locations: list[Location], freshness_hours: float, policies: dict[str, RetentionPolicy]
) -> tuple[Report, list[str]]:
    return mysqlops.report.build(locations, freshness_hours=freshness_hours, policies=policies)


@task(cache_policy=NO_CACHE)
def publish_task(report: Report, output: Location | None) -> Publication:
    return mysqlops.report.publish(report, output)


@flow(name="backup-report")
def backup_report(
    locations: list[str],
    output_location: str | None = None,
    freshness_hours: float = 26,
    policy: Any = None,
) -> dict[str, pd.DataFrame]:
    """Build the backup report over ``locations`` (BackupLocation block names) and return its
    DataFrames by name (backups, databases, growth, storage, locations, restores, freshness,
    anomalies). ``output_location``: also write CSV, Parquet and a self-contained HTML report
    there under ``reports/<time>/``. ``policy``: the retention policy the storage forecast
    assumes, with the meaning it has in apply-retention (one for all, or per location).
    An empty catalog gives an empty report that says so."""
    logger = get_run_logger()
    locs = [load_location(name) for name in locations]
    policies = resolve_policies(locations, policy) if policy is not None else {}
    by_location = {
        loc.name: policies[name] for name, loc in zip(locations, locs, strict=True) if name in policies
    }
    report, problems = build_task(locs, freshness_hours, by_location)
    for problem in problems:
        logger.error("unreadable catalog entry: %s", problem)
    publish_metrics(metrics.recovery_window_samples(report))
    shown = publish_task(report, load_location(output_location) if output_location else None)
    markdown_artifact(
        "backup-report",
        shown.markdown,
        "Backup report: sizes, durations, growth, 3-2-1, restore tests, anomalies",
    )
    for name, records in shown.tables.items():
        table_artifact(f"backup-report-{name}", records, f"Backup report: {name}")
    logger.info("%s", report.message or f"report over {len(report.backups)} backup copies")
    for path in shown.written:
        logger.info("wrote %s", path)
    return report.frames()
