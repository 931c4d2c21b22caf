"""``check``: is the backup setup healthy? Like ``barman check``, for every server and location,
and for Prefect's own scheduler (every mysqlops deployment with an active schedule has its runs).

A recipe over :mod:`mysqlops.checks`: one table artifact with every verdict, and the run ends
Failed (naming each failed check, without a traceback) when anything failed. Warnings and
skipped checks do not fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

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

# a schedule's fire time counts only this long after the schedule was (re)created or resumed:
# the scheduler service needs one loop (60 s by default) to create its runs
SCHEDULE_GRACE = timedelta(minutes=2)
PAGE = 200  # deployments read per API call (the server's default and largest page)
# how far back to look for a schedule's newest fire time (monthly/yearly schedules included)
_LOOKBACK = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=370),
)


class CheckFailed(MysqlopsError):
    """At least one check failed."""


def _utc(value: Any) -> datetime:
    """A plain aware UTC datetime from whatever datetime type the Prefect client returns."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _last_fire(schedule: Any, since: datetime, now: datetime) -> datetime | None:
    """The newest fire time of a (client-side) Prefect schedule in ``(since, now]``."""
    from prefect.server.schemas import schedules as server_schedules
    from prefect.utilities.asyncutils import run_coro_as_sync

    kinds: dict[str, Any] = {
        "IntervalSchedule": server_schedules.IntervalSchedule,
        "CronSchedule": server_schedules.CronSchedule,
        "RRuleSchedule": server_schedules.RRuleSchedule,
    }
    kind = kinds.get(type(schedule).__name__)
    if kind is None:  # NoSchedule or an unknown kind: never fires
        return None
    computable = kind.model_validate(schedule.model_dump())
    for back in _LOOKBACK:
        start = max(since, now - back)
        fired: Any = run_coro_as_sync(computable.get_dates(n=1000, start=start, end=now))
        dates = [d for d in (_utc(x) for x in fired or []) if since < d <= now]
        if dates:
            return max(dates)
        if start == since:
            break
    return None


def read_schedule_facts(
    client: Any, tag: str, now: datetime | None = None, grace: timedelta = SCHEDULE_GRACE
) -> list[checks.ScheduleFacts]:
    """What the Prefect API says about the schedules of every deployment tagged ``tag`` that
    has a schedule (``client``: a sync Prefect client; on-demand deployments, with none, are
    left out). A fire time counts ``grace`` after the schedule was last created or changed."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterTags,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import DeploymentSort, FlowRunSort

    now = (now or datetime.now(UTC)).astimezone(UTC)
    deployments: dict[Any, Any] = {}
    offset = 0
    while True:  # every page (one call returns at most PAGE); newest first: none missed
        batch = client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[tag])),
            sort=DeploymentSort.CREATED_DESC,
            limit=PAGE,
            offset=offset,
        )
        deployments.update((d.id, d) for d in batch)
        offset += len(batch)
        if len(batch) < PAGE:
            break
    flow_names: dict[Any, str] = {}
    out: list[checks.ScheduleFacts] = []
    for deployment in deployments.values():
        if not deployment.schedules:
            continue  # on demand (restore, pin-backup, ...): no scheduler to check, not a skipped check
        if deployment.flow_id not in flow_names:
            flow_names[deployment.flow_id] = client.read_flow(deployment.flow_id).name
        name = f"{flow_names[deployment.flow_id]}/{deployment.name}"
        active = [] if deployment.paused else [s for s in deployment.schedules if s.active]
        last_due: datetime | None = None
        for schedule in active:
            since = _utc(schedule.updated or schedule.created or now) + grace
            fire = _last_fire(schedule.schedule, since, now)
            if fire is not None and (last_due is None or fire > last_due):
                last_due = fire
        runs: list[checks.ScheduledRun] = []
        if active:
            after = (last_due or now) - timedelta(seconds=1)
            found = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=cast(Any, after)),
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
            )
            runs = [
                checks.ScheduledRun(
                    expected_start=_utc(r.expected_start_time),
                    created=_utc(r.created or r.expected_start_time),
                    state_type=r.state_type.value if r.state_type else "",
                    state_name=r.state_name or "",
                    auto_scheduled=bool(r.auto_scheduled),
                )
                for r in found
                if r.expected_start_time is not None
            ]
        out.append(
            checks.ScheduleFacts(
                deployment=name,
                schedules=len(deployment.schedules),
                active=len(active),
                last_due=last_due,
                runs=runs,
                work_queue=f"{deployment.work_pool_name}/{deployment.work_queue_name}",
            )
        )
    return out


def schedule_checks(
    client: Any, tag: str, now: datetime | None = None, grace: timedelta = SCHEDULE_GRACE
) -> list[checks.CheckResult]:
    """One verdict per deployment tagged ``tag``: is the scheduler creating its runs?"""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    facts = read_schedule_facts(client, tag, now, grace)
    if not facts:
        return [
            checks.CheckResult(
                "prefect",
                "",
                "schedule",
                checks.Status.SKIPPED,
                f"no scheduled deployment tagged {tag!r} on this Prefect server "
                "(deploy with python -m deployments.setup and prefect deploy --all)",
            )
        ]
    return [checks.evaluate_schedule(f, now) for f in facts]


@task(cache_policy=NO_CACHE, retries=0)
def scheduler_checks_task(tag: str) -> list[checks.CheckResult]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        try:
            return schedule_checks(client, tag)
        except Exception as exc:  # noqa: BLE001 - an unreadable API is a verdict, not a crash
            return [
                checks.CheckResult(
                    "prefect",
                    "",
                    "schedule",
                    checks.Status.FAILED,
                    f"cannot read deployments and runs from the Prefect API ({type(exc).__name__}: {exc})",
                )
            ]


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
    deployments_tag: str | None = "mysqlops",
) -> list[dict[str, Any]] | State:
    """Check each ``MySQLServer`` block in ``servers`` against each ``BackupLocation`` block.

    Per server: reachable, backup privileges (and binlog archiving's when
    ``binlog_privileges``), binary log on and kept at least ``max_backup_age_hours``,
    replication healthy when it is a replica. Per server and location: newest complete backup
    younger than ``max_backup_age_hours``, newest archived binlog younger than
    ``max_binlog_archive_age_minutes``, last restore test passed and younger than
    ``max_restore_test_age_days`` (``None`` skips those two). Local locations: at least
    ``min_free_gb`` free and room for 1.5 x the newest backups. Before the first binlog archive
    or restore test is due (the first backup is younger than their limit) their absence is a
    warning. Prefect's scheduler, for each deployment tagged ``deployments_tag`` that has a
    schedule (``None`` skips it; on-demand deployments, without one, are no check): an active schedule has an upcoming run, and the run due last was created by the
    scheduler ahead of time; an active schedule without an upcoming run fails.
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
    if deployments_tag:
        results = results + scheduler_checks_task(deployments_tag)
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
        # a Failed state, not an exception: each failure is logged above once, with its fix
        message = f"{len(failed)} check(s) failed: " + "; ".join(
            f"{' / '.join(x for x in (r.server, r.location) if x)} {r.check}" for r in failed
        )
        return Failed(message=message, data=CheckFailed(message))
    logger.info("all checks passed (%s)", checks.summary(results))
    return rows
