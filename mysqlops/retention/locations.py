"""``retention.apply``: plan (and, when asked, carry out) retention at each location.

One meaning of the ``policy`` parameter in every flow that takes it (apply-retention and
backup-report): one policy for every location (a mapping of :class:`RetentionPolicy` fields,
or the name of a RetentionPolicyBlock), or ``{location name: policy}`` per location
(:func:`policies_by_location`). Block names are resolved by the flow; this module never loads
a block.

Per location (:func:`apply_at`): the catalog is read, the plan made against the restore-test
verdicts of every location, and with ``apply=True`` the plan is carried out (manifest first,
then data) and what is not a backup cleaned up after ``grace``; a location where a server has
backups but none proven deletes nothing of it and is refused, naming the restore-test flow.
Pinned backups (``mysqlops.pins``, the newest marker at any location decides) are kept
("kept: pinned").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mysqlops import catalog
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, RetentionError
from mysqlops.manifest import Verdict
from mysqlops.model import Location
from mysqlops.pins import pinned_backups
from mysqlops.retention.deletes import ApplyResult, apply_plan, cleanup, plan_for_scan
from mysqlops.retention.policy import RetentionPolicy
from mysqlops.runs import Reporter
from mysqlops.units import human_bytes

PolicySpec = Mapping[str, Any] | str | RetentionPolicy  # fields, a RetentionPolicyBlock name, a policy


def policies_by_location(locations: Sequence[str], policy: Any) -> dict[str, PolicySpec]:
    """``policy`` for each of ``locations``: one policy (fields, or a block name) for all, or
    ``{location: policy}`` when every key is one of ``locations``. A location without a policy
    is a :class:`ConfigError` naming it and the two ways to give one."""
    if policy is None:
        raise ConfigError(
            "no retention policy given: pass policy={'keep_daily': 7, ...} (or a RetentionPolicyBlock name) "
            "for every location, or policy={'<location>': {...}, ...} per location"
        )
    if isinstance(policy, str | RetentionPolicy):
        return {name: policy for name in locations}
    if not isinstance(policy, Mapping):
        raise ConfigError(
            f"policy must be a mapping or a RetentionPolicyBlock name, got {type(policy).__name__}"
        )
    keys = [str(k) for k in policy]
    if keys and all(k in locations for k in keys):
        missing = [name for name in locations if name not in policy]
        if missing:
            raise ConfigError(
                f"no retention policy for location(s) {', '.join(missing)}: policy names only "
                f"{', '.join(keys)}; add {{{missing[0]!r}: {{...}}}} or pass one policy for every location"
            )
        return {name: policy[name] for name in locations}
    return {name: policy for name in locations}


def to_policy(spec: PolicySpec) -> RetentionPolicy:
    if isinstance(spec, RetentionPolicy):
        return spec
    if isinstance(spec, str):
        raise ConfigError(f"retention policy {spec!r} is a block name: the flow resolves it before the core")
    return RetentionPolicy.from_mapping(spec)


@dataclass
class LocationOutcome:
    """What retention planned (and did) at one location."""

    location: str
    rows: list[dict[str, Any]]
    result: ApplyResult | None = None
    refused: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keep": sum(r["decision"] == "keep" for r in self.rows),
            "delete": sum(r["decision"] == "delete" for r in self.rows),
            "bytes_freed": sum(r.get("stored_bytes") or 0 for r in self.rows if r["decision"] == "delete"),
        }
        if self.result is not None:
            out.update(
                deleted=self.result.deleted,
                locked=self.result.locked,
                cleaned=len(self.result.cleaned),
                failed=self.result.failed,
            )
        return out


def apply_at(
    location: Location,
    policy: RetentionPolicy,
    *,
    apply: bool = False,
    grace: timedelta = timedelta(hours=48),
    servers: Sequence[str] | None = None,
    verdicts: Mapping[tuple[str, str, str], Verdict] | None = None,
    now: datetime | None = None,
    reporter: Reporter | None = None,
    pinned: Collection[tuple[str, str]] | None = None,
) -> LocationOutcome:
    """Plan retention at ``location`` and, with ``apply``, carry it out and clean up.
    ``pinned``: ``(server, backup_id)`` pinned at any location (``pins.pinned_backups``);
    by default this location's pin markers decide."""
    say = reporter or Reporter()
    now = now or datetime.now(UTC)
    scan = catalog.scan_location(location)
    for note in scan.notes:
        say.warning(f"{location.name}: {note}")
    plan = plan_for_scan(scan, policy, now, servers, verdicts, pinned)
    outcome = LocationOutcome(location.name, [{"location": location.name, **row} for row in plan.to_rows()])
    say.info(f"{location.name}: {plan.summary()}")  # the summary names the policy
    outcome.refused = [f"location {location.name!r}: {why}" for why in plan.refused]
    for why in outcome.refused:
        say.error(why)
    if not apply:
        return outcome
    store = Store(location)
    outcome.result = result = apply_plan(store, scan, plan)
    if outcome.refused:  # nothing proven there: leave even the garbage for after a restore test passed
        say.warning(f"{location.name}: cleanup skipped: some backups here are not proven yet")
        return outcome
    cleanup(store, catalog.scan_location(location), grace, now, result)
    say.info(
        f"{location.name}: deleted {len(result.deleted)}, kept locked {len(result.locked)}, "
        f"cleaned {len(result.cleaned)}, freed {human_bytes(result.bytes_freed)}"
    )
    if result.locked:
        say.warning(f"{location.name}: storage refused to delete {result.locked} (kept: locked)")
    return outcome


def summary_markdown(outcomes: Sequence[LocationOutcome], errors: Sequence[str], applied: bool) -> str:
    lines = [
        f"# Retention {'applied' if applied else 'plan (dry run)'}",
        "",
        "| location | keep | delete | freed |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        c = o.counts()
        lines.append(f"| {o.location} | {c['keep']} | {c['delete']} | {human_bytes(c['bytes_freed'])} |")
    return "\n".join(lines + [f"\n**error:** {e}" for e in errors])


def failure(outcomes: Sequence[LocationOutcome], errors: Sequence[str]) -> RetentionError | None:
    """Why the run fails: a refused or unreadable location, or deletes that failed."""
    if errors:
        return RetentionError("; ".join(errors))
    failed = {o.location: o.result.failed for o in outcomes if o.result is not None and o.result.failed}
    if failed:
        return RetentionError(f"deletes failed (will be retried by the next run): {failed}")
    return None


def apply(
    locations: Sequence[Location],
    policy: Any,
    *,
    apply: bool = False,
    grace: timedelta = timedelta(hours=48),
    servers: Sequence[str] | None = None,
    now: datetime | None = None,
    reporter: Reporter | None = None,
) -> tuple[list[LocationOutcome], list[str]]:
    """Retention at every location (dry run unless ``apply``), verdicts read across all of them.
    Returns the outcomes and the errors (:func:`failure` turns them into the run's error)."""
    specs = policies_by_location([loc.name for loc in locations], policy)
    scans = catalog.scan(locations)
    verdicts = catalog.verdicts(scans)
    pinned = set(pinned_backups(scans))
    outcomes: list[LocationOutcome] = []
    errors: list[str] = []
    for location in locations:
        try:
            outcome = apply_at(
                location,
                to_policy(specs[location.name]),
                apply=apply,
                grace=grace,
                servers=servers,
                verdicts=verdicts,
                now=now,
                reporter=reporter,
                pinned=pinned,
            )
        except RetentionError as exc:
            (reporter or Reporter()).error(str(exc))
            errors.append(str(exc))
            continue
        errors += outcome.refused
        outcomes.append(outcome)
    return outcomes, errors
