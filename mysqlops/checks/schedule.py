"""The scheduler check: verdicts on the facts a flow reads from the Prefect API (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mysqlops.checks.verdicts import CheckResult, Status, _age, human_age

# ------------------------------------------------------------ the scheduler (pure verdicts)
SCHEDULER_FIX = (
    "Prefect's scheduler service is not creating runs: look at the Prefect server's log for "
    "errors of the scheduler service (prefect 3.8.8 with SQLAlchemy 2.1 logs \"Can't evaluate bulk "
    'DML statement": install the locked prefect 3.9.1 with `make setup`), make sure '
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED is not false, then restart `prefect server start`"
)


@dataclass(frozen=True)
class ScheduledRun:
    """A flow run of a deployment, as the schedule check needs it."""

    expected_start: datetime
    created: datetime
    state_type: str  # SCHEDULED, PENDING, RUNNING, COMPLETED, ...
    state_name: str  # Scheduled, Late, AwaitingConcurrencySlot, ...
    auto_scheduled: bool  # created by the scheduler service (not run_deployment / the UI)


@dataclass(frozen=True)
class ScheduleFacts:
    """What the Prefect API says about one deployment's schedules (read by the flow layer)."""

    deployment: str  # flow/name
    schedules: int  # schedules configured
    active: int  # active schedules (0 when the deployment or every schedule is paused)
    last_due: datetime | None  # newest fire time of an active schedule that had to have a run
    runs: Sequence[ScheduledRun]  # its runs at last_due and its upcoming runs
    work_queue: str = ""


def evaluate_schedule(
    facts: ScheduleFacts, now: datetime, late_after: timedelta = timedelta(minutes=5)
) -> CheckResult:
    """Is Prefect's scheduler alive for this deployment?

    An active schedule must have an upcoming scheduled run (the scheduler keeps runs ahead);
    the run due at ``last_due`` must exist and have been created by the scheduler before it was
    due; a due run that has not started after ``late_after`` means no worker serves its queue.
    """
    where = ("prefect", facts.deployment, "schedule")
    if facts.schedules == 0:
        return CheckResult(*where, Status.SKIPPED, "no schedule (runs on demand)")
    if facts.active == 0:
        return CheckResult(
            *where,
            Status.WARNING,
            f"every schedule is paused: nothing runs on its own; resume it "
            f"(prefect deployment schedule ls '{facts.deployment}', then "
            f"prefect deployment schedule resume '{facts.deployment}' <id>) or unpause the deployment",
        )
    upcoming = sorted(
        (
            r
            for r in facts.runs
            if r.state_type == "SCHEDULED" and r.auto_scheduled and r.expected_start > now
        ),
        key=lambda r: r.expected_start,
    )
    if not upcoming:
        return CheckResult(
            *where,
            Status.FAILED,
            f"{facts.active} active schedule(s) but no upcoming run: nothing will run. {SCHEDULER_FIX}",
        )
    nxt = upcoming[0]
    detail = (
        f"next run {nxt.expected_start.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z "
        f"(in {human_age(nxt.expected_start - now)}), {len(upcoming)} scheduled ahead"
    )
    if facts.last_due is None:
        return CheckResult(*where, Status.OK, detail + "; none due yet")
    due = facts.last_due
    ago = human_age(_age(now, due))
    matches = [
        r for r in facts.runs if abs((r.expected_start - due).total_seconds()) < 1 and r.auto_scheduled
    ]
    if not matches:
        return CheckResult(
            *where,
            Status.FAILED,
            f"no run was created for {due.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z (due {ago} ago): "
            f"the scheduler was not running then. {SCHEDULER_FIX}",
        )
    run = matches[0]
    if run.created > due:
        return CheckResult(
            *where,
            Status.WARNING,
            f"the run due {ago} ago was created {human_age(run.created - due)} after it was due: "
            "the scheduler was down or lagging (server overloaded?); " + detail,
        )
    if run.state_type == "SCHEDULED" and _age(now, due) > late_after:
        return CheckResult(
            *where,
            Status.WARNING,
            f"the run due {ago} ago has not started ({run.state_name}): no worker polls work queue "
            f"{facts.work_queue or '?'}, the queue or pool is paused, or its concurrency slot is taken "
            "(prefect worker start --pool <pool>; prefect work-queue ls); " + detail,
        )
    return CheckResult(
        *where,
        Status.OK,
        f"the run due {ago} ago was created {human_age(due - run.created)} ahead ({run.state_name}); "
        + detail,
    )
