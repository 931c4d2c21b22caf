"""``apply_retention``: per-location retention plans, dry run by default (scheduled daily).

Only backups proven by a restore certificate that passed count (found at any of the given
locations for an identical copy); where a server has backups but none proven, nothing of it is
deleted and the flow fails saying so (run the restore-test flow first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import RetentionPolicyBlock
from flows.common import load_block, load_location, markdown_artifact, table_artifact
from mysqlops import catalog
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, RetentionError
from mysqlops.manifest import Verdict
from mysqlops.model import Location
from mysqlops.pins import pinned_backups
from mysqlops.retention import RetentionPolicy
from mysqlops.retention import apply as retention_apply


def _policy_for(name: str, policy: dict[str, Any] | None, policies: dict[str, Any]) -> RetentionPolicy:
    chosen = policies.get(name, policy)
    if chosen is None:
        raise ConfigError(
            f"no retention policy for location {name!r}: pass policy={{...}} for all locations, "
            f"policies={{{name!r}: {{...}}}}, or policies={{{name!r}: '<RetentionPolicyBlock name>'}}"
        )
    if isinstance(chosen, str):
        return load_block(
            RetentionPolicyBlock, chosen, "Retention Policy", "RetentionPolicyBlock(...)"
        ).to_policy()
    return RetentionPolicy.from_mapping(chosen)


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
) -> tuple[list[dict[str, Any]], retention_apply.ApplyResult | None, list[str]]:
    logger = get_run_logger()
    now = datetime.now(UTC)
    scan = catalog.scan_location(location)
    for note in scan.notes:
        logger.warning("%s: %s", location.name, note)
    retention = retention_apply.plan_for_scan(scan, policy, now, servers, verdicts, pinned)
    rows = [{"location": location.name, **row} for row in retention.to_rows()]
    logger.info("%s: %s (%s)", location.name, retention.summary(), policy.describe())
    refused = [f"location {location.name!r}: {why}" for why in retention.refused]
    for why in refused:
        logger.error("%s", why)
    if not apply:
        return rows, None, refused
    store = Store(location)
    result = retention_apply.apply_plan(store, scan, retention)
    if refused:  # nothing proven there: leave even the garbage for after a restore test passed
        logger.warning("%s: cleanup skipped: some backups here are not proven yet", location.name)
        return rows, result, refused
    retention_apply.cleanup(store, catalog.scan_location(location), timedelta(hours=grace_hours), now, result)
    logger.info(
        "%s: deleted %d, kept locked %d, cleaned %d, freed %d bytes",
        location.name,
        len(result.deleted),
        len(result.locked),
        len(result.cleaned),
        result.bytes_freed,
    )
    return rows, result, refused


@flow(name="apply-retention")
def apply_retention(
    locations: list[str],
    policy: dict[str, Any] | None = None,
    policies: dict[str, Any] | None = None,
    apply: bool = False,
    grace_hours: float = 48,
    servers: list[str] | None = None,
) -> dict[str, Any]:
    """Plan (and with ``apply=True`` carry out) retention at each location.

    policy: one policy for every location, e.g. {"keep_daily": 30, "keep_monthly": 12,
    "keep_yearly": 5, "min_redundancy": 2} or {"keep_within": "7d"}. policies: per location
    name, a policy dict or the name of a RetentionPolicyBlock. Dry run by default: the plan is
    published as a table artifact. ``apply=True`` deletes manifest first, then data, then
    cleans temporary objects, data without a manifest and stale uploads older than
    ``grace_hours`` (longer than your longest backup). An unreadable catalog deletes nothing.
    Pinned backups (pin-backup) are always kept ("kept: pinned").
    Only backups proven by a passed restore test count; a server with backups but none proven
    at a location keeps everything there and the flow ends Failed naming the fix (restore-test).
    """
    logger = get_run_logger()
    all_rows: list[dict[str, Any]] = []
    outcomes: dict[str, Any] = {}
    errors: list[str] = []
    locs = [load_location(name) for name in locations]
    verdicts, pinned = verdicts_task(locs)
    for name, location in zip(locations, locs, strict=True):
        try:
            rows, result, refused = retention_task(
                location,
                _policy_for(name, policy, policies or {}),
                apply,
                grace_hours,
                servers,
                verdicts,
                pinned,
            )
        except RetentionError as exc:
            logger.error("%s", exc)
            errors.append(str(exc))
            continue
        errors += refused
        all_rows += rows
        outcomes[name] = {
            "keep": sum(r["decision"] == "keep" for r in rows),
            "delete": sum(r["decision"] == "delete" for r in rows),
            "bytes_freed": sum(r.get("stored_bytes") or 0 for r in rows if r["decision"] == "delete"),
        }
        if result is not None:
            outcomes[name].update(
                deleted=result.deleted,
                locked=result.locked,
                cleaned=len(result.cleaned),
                failed=result.failed,
            )
            if result.locked:
                logger.warning("%s: storage refused to delete %s (kept: locked)", name, result.locked)
    table_artifact(
        "retention-plan",
        all_rows,
        "Retention plan: backup, location, decision, reasons, bytes freed" + ("" if apply else " (dry run)"),
    )
    lines = [
        f"# Retention {'applied' if apply else 'plan (dry run)'}",
        "",
        "| location | keep | delete | bytes freed |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['keep']} | {v['delete']} | {v['bytes_freed']} |" for k, v in outcomes.items()]
    markdown_artifact(
        "retention-summary", "\n".join(lines + [f"\n**error:** {e}" for e in errors]), "Retention"
    )
    if errors:
        raise RetentionError("; ".join(errors))
    failed = {k: v.get("failed") for k, v in outcomes.items() if v.get("failed")}
    if failed:
        raise RetentionError(f"deletes failed (will be retried by the next run): {failed}")
    return outcomes
