"""``check``: is the backup setup healthy? Like ``barman check``, for every server and location.

A recipe over :mod:`mysqlops.checks`: one table artifact with every verdict, and the run ends
Failed (naming each failed check) when anything failed. Warnings and skipped checks do not fail.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import (
    Leftovers,
    load_location,
    load_server,
    markdown_artifact,
    reap_leftovers,
    table_artifact,
)
from mysqlops import checks
from mysqlops.errors import MysqlopsError


class CheckFailed(MysqlopsError):
    """At least one check failed."""


@task(cache_policy=NO_CACHE, retries=0)
def run_checks_task(
    servers: list[str], locations: list[str], policy: checks.CheckPolicy
) -> list[checks.CheckResult]:
    specs = [load_server(name) for name in servers]
    locs = [load_location(name) for name in locations]
    return checks.run_checks(specs, locs, policy)


def leftover_results(found: Leftovers) -> list[checks.CheckResult]:
    """The leftovers of killed runs as check verdicts: what was removed, runs marked crashed
    and directories left alone are warnings (a run was killed: find out why); a leftover
    that could not be removed fails."""
    name = "leftovers of killed runs"
    r = found.report
    warnings = [m.describe() for m in r.removed]
    warnings += [f"stopped orphaned ephemeral Prefect API server pid {pid}" for pid in r.prefect_servers]
    warnings += found.crashed + found.problems
    warnings += [line for line in r.lines() if line.startswith("left alone")]
    out = [checks.CheckResult("", "", name, checks.Status.WARNING, w) for w in warnings]
    out += [
        checks.CheckResult("", "", name, checks.Status.FAILED, f"could not clean up: {e}") for e in r.errors
    ]
    return out or [
        checks.CheckResult("", "", name, checks.Status.OK, "no staging, scratch server or stuck run left")
    ]


def _markdown(results: list[checks.CheckResult]) -> str:
    bad = [r for r in results if r.status in (checks.Status.FAILED, checks.Status.WARNING)]
    lines = [f"# mysqlops check: {checks.summary(results)}", ""]
    if not bad:
        lines.append("Everything passed.")
    for r in bad:
        where = " / ".join(x for x in (r.server, r.location) if x)
        lines.append(f"- **{r.status.value.upper()}** {where} · {r.check}: {r.detail}")
    return "\n".join(lines)


@flow(name="check")
def check(
    servers: list[str],
    locations: list[str],
    max_backup_age_hours: float = 26,
    max_binlog_archive_age_minutes: float | None = 60,
    max_restore_test_age_days: float | None = 8,
    max_replica_lag_seconds: int = 300,
    min_free_gb: float = 5,
    binlog_privileges: bool = True,
    staging_dirs: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Check each ``MySQLServer`` block in ``servers`` against each ``BackupLocation`` block.

    Per server: reachable, backup privileges (and binlog archiving's when
    ``binlog_privileges``), binary log on and kept at least ``max_backup_age_hours``,
    replication healthy when it is a replica. Per server and location: newest complete backup
    younger than ``max_backup_age_hours``, newest archived binlog younger than
    ``max_binlog_archive_age_minutes``, last restore test passed and younger than
    ``max_restore_test_age_days`` (``None`` skips those two). Local locations: at least
    ``min_free_gb`` free and room for 1.5 x the newest backups.
    Ends Failed, listing every failed check, when any check failed.

    Also removes what killed runs left on this machine (in ``staging_dirs``, ``$TMPDIR``,
    ``/tmp``: staging, scratch servers, orphaned ephemeral Prefect servers) and marks crashed
    the flow runs stuck RUNNING whose process is gone; each shows as a warning.
    """
    logger = get_run_logger()
    policy = checks.CheckPolicy(
        max_backup_age=timedelta(hours=max_backup_age_hours),
        max_binlog_archive_age=None
        if max_binlog_archive_age_minutes is None
        else timedelta(minutes=max_binlog_archive_age_minutes),
        max_restore_test_age=None
        if max_restore_test_age_days is None
        else timedelta(days=max_restore_test_age_days),
        max_replica_lag_seconds=max_replica_lag_seconds,
        min_free_bytes=int(min_free_gb * checks.GIB),
        binlog_privileges=binlog_privileges,
    )
    leftovers = reap_leftovers(*(staging_dirs or []))
    results = run_checks_task(servers, locations, policy) + leftover_results(leftovers)
    rows = [r.row() for r in results]
    table_artifact("check", rows, f"mysqlops check: {checks.summary(results)}")
    markdown_artifact("check-summary", _markdown(results), "Failed checks and warnings")
    for r in results:
        where = " / ".join(x for x in (r.server, r.location) if x)
        if r.status is checks.Status.FAILED:
            logger.error("FAILED %s %s: %s", where, r.check, r.detail)
        elif r.status is checks.Status.WARNING:
            logger.warning("warning %s %s: %s", where, r.check, r.detail)
        else:
            logger.info("%s %s %s: %s", r.status.value, where, r.check, r.detail)
    failed = checks.failures(results)
    if failed:
        raise CheckFailed(
            f"{len(failed)} check(s) failed: "
            + "; ".join(f"{' / '.join(x for x in (r.server, r.location) if x)} {r.check}" for r in failed)
        )
    logger.info("all checks passed (%s)", checks.summary(results))
    return rows
