"""``apply_retention``: per-location retention plans, dry run by default (scheduled daily).

Only backups proven by a restore certificate that passed count (found at any of the given
locations for an identical copy); where a server has backups but none proven, nothing of it is
deleted and the flow fails saying so (run the restore-test flow first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

import mysqlops.retention
from flows.common import (
    load_location,
    markdown_artifact,
    publish_metrics,
    resolve_policies,
    run_context,
    server_name,
    table_artifact,
)
from mysqlops import catalog, metrics
from mysqlops.errors import RetentionError
from mysqlops.manifest import Verdict
from mysqlops.model import Location
from mysqlops.pins import pinned_backups
from mysqlops.retention import LocationOutcome, RetentionPolicy


@task(cache_policy=NO_CACHE)
def verdicts_task(
    locations: list[Location],
) -> tuple[dict[tuple[str, str, str], Verdict], set[tuple[str, str]]]:
    """What the restore certificates at every location prove, copy by copy, and which backups
    are pinned (the newest pin marker at any location decides)."""
    scans = catalog.scan(locations)
    return catalog.verdicts(scans), set(pinned_backups(scans))


@task(cache_policy=NO_CACHE)
def retention_task(
    location: Location,
    policy: RetentionPolicy,
    apply: bool,
    grace_hours: float,
    servers: list[str] | None,
    verdicts: dict[tuple[str, str, str], Verdict] | None = None,
    pinned: set[tuple[str, str]] | None = None,
) -> LocationOutcome:
    return mysqlops.retention.apply_at(
        location,
        policy,
        apply=apply,
        grace=timedelta(hours=grace_hours),
        servers=servers,
        verdicts=verdicts,
        reporter=run_context().reporter,
        pinned=pinned,
    )


@flow(name="apply-retention")
def apply_retention(
    locations: list[str],
    policy: Any = None,
    apply: bool = False,
    grace_hours: float = 48,
    servers: list[str] | None = None,
) -> dict[str, Any]:
    """Plan (and with ``apply=True`` carry out) retention at each location.

    policy: one policy for every location, e.g. {"keep_daily": 30, "keep_monthly": 12,
    "keep_yearly": 5, "min_redundancy": 2} or {"keep_within": "7d"}, or the name of a
    RetentionPolicyBlock; or per location: {"local": {...}, "s3": "<RetentionPolicyBlock name>"}.
    servers: only these servers (block names, as in every flow). Dry run by default: the plan is
    published as a table artifact. ``apply=True`` deletes manifest first, then data, then
    cleans temporary objects, data without a manifest and stale uploads older than
    ``grace_hours`` (longer than your longest backup). An unreadable catalog deletes nothing.
    Only backups proven by a passed restore test count; a server with backups but none proven
    at a location keeps everything there and the flow ends Failed naming the fix (restore-test).
    Pinned backups (pin-backup) are always kept ("kept: pinned").
    """
    logger = get_run_logger()
    policies = resolve_policies(locations, policy)  # a missing or wrong policy fails before any read
    chosen = [server_name(s) for s in servers] if servers else None
    locs = [load_location(name) for name in locations]
    verdicts, pinned = verdicts_task(locs)
    outcomes: dict[str, LocationOutcome] = {}  # by block name
    errors: list[str] = []
    for name, location in zip(locations, locs, strict=True):
        try:
            outcome = retention_task(location, policies[name], apply, grace_hours, chosen, verdicts, pinned)
        except RetentionError as exc:
            logger.error("%s", exc)
            errors.append(str(exc))
            continue
        errors += outcome.refused
        outcomes[name] = outcome
    publish_metrics([s for o in outcomes.values() for s in metrics.retention_samples(o, datetime.now(UTC))])
    rows = [row for o in outcomes.values() for row in o.rows]
    dry = "" if apply else " (dry run)"
    table_artifact(
        "retention-plan", rows, f"Retention plan: backup, location, decision, reasons, bytes freed{dry}"
    )
    markdown_artifact(
        "retention-summary",
        mysqlops.retention.summary_markdown(list(outcomes.values()), errors, apply),
        "Retention",
    )
    error = mysqlops.retention.failure(list(outcomes.values()), errors)
    if error is not None:
        raise error
    return {name: o.counts() for name, o in outcomes.items()}
