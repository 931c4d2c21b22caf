"""The automations of a mysqlops environment, built from its config and applied idempotently.

Three kinds, all delivered to one notification block (a Custom Webhook by default):

* ``mysqlops: flow run failed``: any flow run tagged ``failure_tag`` (every deployment in
  prefect.yaml carries ``mysqlops``) ends Failed, Crashed or TimedOut, except runs of the
  restore-test flow (they have their own alert: one failed restore test is ONE alert).
* ``mysqlops: no backup of <server> in <N>h``: a *proactive* trigger per backed-up server: no
  ``prefect.flow-run.Completed`` event of the ``backup`` flow with tag ``server:<server>``
  within the window. Deployment runs get the tag from their deployment, ``backup-fleet``
  subflows from ``tags()``.
* ``mysqlops: restore test failed``: a run of the restore-test flow ends Failed/Crashed/TimedOut.

Re-alert window: the two failure alerts fire at most once per deployment per ``realert``
(default 1 hour; ``[automations] realert_minutes``). They are reactive triggers with threshold 1
``within`` the window, evaluated separately for each deployment (``for_each`` on the run's
related deployment): the first failure alerts at once, and Prefect ignores further failures
of that deployment until the window after it has passed, so a deployment failing every 5
minutes pages once an hour, not twelve times. Ad-hoc runs (no deployment) share one window.
A window of 0 alerts on every failure.

Everything named ``mysqlops: ...`` belongs to setup: automations with that prefix that the
config no longer describes are deleted, duplicates are removed, changed ones updated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from mysqlops.errors import ConfigError

PREFIX = "mysqlops: "
FAILED_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
# one window per deployment: the label Prefect reads from the run's related deployment
PER_DEPLOYMENT = "related:deployment:prefect.resource.id"

FAILURE_BODY = (
    "Flow run {{ flow_run.name }} of flow {{ flow.name }} ended {{ flow_run.state.name }}.\n"
    "Deployment: {{ deployment.name if deployment else 'none (ad-hoc run)' }}\n"
    "Tags: {{ flow_run.tags | join(', ') }}\n"
    "Message: {{ flow_run.state.message }}\n"
    "{{ flow_run | ui_url }}"
)
RESTORE_BODY = (
    "RESTORE TEST FAILED: a backup could not be proven restorable.\n"
    "Flow run {{ flow_run.name }} ({{ deployment.name if deployment else 'ad-hoc' }}) ended "
    "{{ flow_run.state.name }}: {{ flow_run.state.message }}\n"
    "Look at its artifacts (restore certificate, failed checks) and run the check flow.\n"
    "{{ flow_run | ui_url }}"
)


@dataclass(frozen=True)
class AlertConfig:
    """What the automations watch (the ``[automations]`` table of the environment file)."""

    backup_servers: tuple[str, ...]
    backup_flow: str = "backup"
    restore_test_flow: str = "restore-test"
    backup_absence: timedelta = timedelta(hours=26)
    failure_tag: str = "mysqlops"
    enabled: bool = True
    realert: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.realert < timedelta(0):
            raise ConfigError(
                "[automations] realert_minutes must not be negative (0 = alert on every failure)"
            )
        if self.backup_absence <= timedelta(0):
            raise ConfigError("[automations] backup_absence_hours must be positive, e.g. 26")


def server_tag(server: str) -> str:
    return f"server:{server}"


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g}h" if hours >= 1 else f"{delta.total_seconds():g}s"


def _window(delta: timedelta) -> str:
    if delta <= timedelta(0):
        return "every failure alerts"
    seconds = delta.total_seconds()
    every = (
        _hours(delta) if seconds >= 3600 else f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g}s"
    )
    return f"at most one alert per deployment per {every}"


def absence_name(server: str, window: timedelta) -> str:
    return f"{PREFIX}no backup of {server} in {_hours(window)}"


def build(config: AlertConfig, block_document_id: UUID) -> list[AutomationCore]:
    """The automations the config describes (not yet sent anywhere)."""

    def notify(subject: str, body: str) -> SendNotification:
        return SendNotification(block_document_id=block_document_id, subject=subject, body=body)

    # every failure but the restore test's (it has its own alert): one alert per failed run
    failure_related: Any = [
        {"prefect.resource.role": "flow", "prefect.resource.name": f"!{config.restore_test_flow}"}
    ]
    if config.failure_tag:
        failure_related.insert(
            0, {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{config.failure_tag}"}
        )
    per_deployment = {PER_DEPLOYMENT} if config.realert > timedelta(0) else set()
    out = [
        AutomationCore(
            name=f"{PREFIX}flow run failed",
            description=(
                "A mysqlops flow run (not a restore test) ended Failed, Crashed or TimedOut; "
                f"{_window(config.realert)}."
            ),
            enabled=config.enabled,
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=failure_related,
                for_each=per_deployment,
                expect=set(FAILED_EVENTS),
                posture=Posture.Reactive,
                threshold=1,
                within=config.realert,
            ),
            actions=[notify("mysqlops: {{ flow.name }} run {{ flow_run.name }} failed", FAILURE_BODY)],
        ),
        AutomationCore(
            name=f"{PREFIX}restore test failed",
            description=(
                f"A run of flow {config.restore_test_flow!r} did not complete: a backup is not proven; "
                f"{_window(config.realert)}."
            ),
            enabled=config.enabled,
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related={
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": config.restore_test_flow,
                },
                for_each=per_deployment,
                expect=set(FAILED_EVENTS),
                posture=Posture.Reactive,
                threshold=1,
                within=config.realert,
            ),
            actions=[notify("mysqlops: RESTORE TEST FAILED ({{ flow_run.name }})", RESTORE_BODY)],
        ),
    ]
    for server in config.backup_servers:
        window = config.backup_absence
        out.append(
            AutomationCore(
                name=absence_name(server, window),
                description=(
                    f"No completed run of flow {config.backup_flow!r} tagged {server_tag(server)!r} "
                    f"within {_hours(window)}."
                ),
                enabled=config.enabled,
                trigger=EventTrigger(
                    match={"prefect.resource.id": "prefect.flow-run.*"},
                    match_related=[
                        {"prefect.resource.role": "flow", "prefect.resource.name": config.backup_flow},
                        {
                            "prefect.resource.role": "tag",
                            "prefect.resource.id": f"prefect.tag.{server_tag(server)}",
                        },
                    ],
                    expect={"prefect.flow-run.Completed"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=window,
                ),
                actions=[
                    notify(
                        f"mysqlops: NO BACKUP of {server} in {_hours(window)}",
                        f"No successful {config.backup_flow!r} flow run of server {server!r} "
                        f"(tag {server_tag(server)!r}) in the last {_hours(window)}. Newer data is "
                        "not protected. Look at the backup deployment's runs, its schedule "
                        "(paused?), the work pool's workers (running?), then run the check flow.",
                    )
                ],
            )
        )
    return out


def _comparable(automation: AutomationCore) -> dict[str, Any]:
    doc = AutomationCore.model_validate(automation.model_dump()).model_dump(mode="json")
    return _drop_ids(doc)


def _drop_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_ids(v) for k, v in value.items() if k not in ("id", "created", "updated")}
    if isinstance(value, list):
        items = [_drop_ids(v) for v in value]
        try:
            return sorted(items, key=repr)
        except TypeError:
            return items
    return value


async def apply(client: Any, wanted: list[AutomationCore], prune: bool = True) -> list[tuple[str, str]]:
    """Create, update or leave each automation; delete stale ``mysqlops: `` ones.

    Returns ``(action, name)`` pairs, action in created/updated/unchanged/deleted.
    """
    results: list[tuple[str, str]] = []
    for automation in wanted:
        existing = await client.read_automations_by_name(automation.name)
        existing = [a for a in existing if a.name == automation.name]
        if not existing:
            await client.create_automation(automation)
            results.append(("created", automation.name))
            continue
        keep, extra = existing[0], existing[1:]
        for duplicate in extra:
            await client.delete_automation(duplicate.id)
            results.append(("deleted", f"{automation.name} (duplicate {duplicate.id})"))
        if _comparable(keep) == _comparable(automation):
            results.append(("unchanged", automation.name))
        else:
            await client.update_automation(keep.id, automation)
            results.append(("updated", automation.name))
    if prune:
        names = {a.name for a in wanted}
        response = await client.request(
            "POST", "/automations/filter", json={"sort": "NAME_ASC", "limit": 200, "offset": 0}
        )
        for doc in response.json():
            name = str(doc.get("name", ""))
            if name.startswith(PREFIX) and name not in names:
                await client.delete_automation(UUID(doc["id"]))
                results.append(("deleted", name))
    return results
