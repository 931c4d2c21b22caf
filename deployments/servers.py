"""Servers as data: the per-server deployments that ``deployments.setup`` creates, updates and
removes through Prefect's API, from the environment file.

Each ``[servers.<name>]`` table may list its flows and schedules; everything else comes from
the ``[deployments]`` table and the defaults below::

    [deployments]
    environment = "prod"                  # its deployments' setup tag (default: the file's name)
    timezone = "Europe/Berlin"            # of every cron below (default UTC)
    locations = ["local", "s3"]           # default: every [locations.*] table
    flows = ["backup", "archive-binlogs", "restore-test", "apply-retention", "check"]
    replica_flows = ["replica-health"]    # servers with expect_backups = false
    schedules = { backup = "15 1 * * *" } # override a default cron ("" = no schedule)
    parameters = { backup = { parallel = 4 } }
    retention_policy = { keep_daily = 14, keep_weekly = 8, keep_monthly = 12, min_redundancy = 2 }
    directory = "/opt/mysqlops"           # where workers find flows/ (default: this project)
    job_variables = { image = "registry/mysqlops:1.2" }   # Docker/Kubernetes pools

    [servers.db3]
    host = "db3.internal"
    ...
    flows = ["backup", "archive-binlogs"]            # optional, default as above
    schedules = { backup = "0 2 * * *" }             # optional
    parameters = { backup = { parallel = 2 } }       # optional
    replica_of = "prod-primary"                      # replica-health compares with it

Every deployment is named after the server, under its flow (``backup/db3``), runs on the work
pool, carries the tags ``mysqlops``, ``server:<name>``, ``mysqlops-setup`` (made by a setup) and
``mysqlops-setup:<environment>`` (made by the setup of this environment file: ``[deployments]
environment``, by default the file's name without ``.toml``). Setup removes the deployments of
its own environment no longer in the file, every page of them, and never touches any other
(another environment file's on the same Prefect server, or a hand-made one). The flows that write a server's backups (backup, apply-retention) take their runs
from the queue ``server-<name>`` (limited by setup), the others from ``default``. Each
deployment has a concurrency limit of 1 (backups, retention, restore tests queue; frequent
jobs skip a run while the previous one is still going). The deployment's ``version`` is a
hash of what setup wants, so a second run reports ``unchanged`` and leaves the scheduled runs
alone.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mysqlops.errors import ConfigError

MANAGED_TAG = "mysqlops-setup"  # every deployment any setup made
PAGE = 200  # deployments read per API call (the server's default and largest page)


def setup_tag(environment: str) -> str:
    """The tag of the deployments the setup of one environment file made: the only ones it
    ever deletes (another environment's, on the same Prefect server, are never touched)."""
    return f"{MANAGED_TAG}:{environment}"


VERSION_PREFIX = "mysqlops-setup:"
PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = {"keep_daily": 14, "keep_weekly": 8, "keep_monthly": 12, "min_redundancy": 2}


@dataclass(frozen=True)
class FlowKind:
    flow: str  # the flow's name in Prefect
    entrypoint: str
    cron: str  # default schedule ("" = none)
    writes: bool  # writes the server's backups: queue server-<name>
    collision: str  # ENQUEUE | CANCEL_NEW
    description: str  # {server} is replaced
    params: Callable[[ServerDeployments], dict[str, Any]]


@dataclass
class ServerDeployments:
    """What one server's table asks for (resolved against [deployments])."""

    block: str  # the MySQLServer block name (= the table name)
    stored_name: str  # the server name in backup paths (server_name or the block name)
    flows: list[str]
    schedules: dict[str, str]
    parameters: dict[str, dict[str, Any]]
    locations: list[str]
    replica_of: str | None = None
    retention_policy: Any = None


FLOWS: dict[str, FlowKind] = {
    k.flow: k
    for k in (
        FlowKind(
            "backup",
            "flows/backup.py:backup",
            "15 1 * * *",
            True,
            "ENQUEUE",
            "Nightly verified logical backup of {server} to every location.",
            lambda s: {"server": s.block, "locations": s.locations},
        ),
        FlowKind(
            "archive-binlogs",
            "flows/binlogs.py:archive_binlogs",
            "*/15 * * * *",
            False,
            "CANCEL_NEW",
            "Archive closed binary logs of {server} (recovery point = age of the last run).",
            lambda s: {"server": s.block, "locations": s.locations},
        ),
        FlowKind(
            "restore-test",
            "flows/restore.py:restore_test",
            "15 3 * * *",
            False,
            "ENQUEUE",
            "Restore every copy of the newest backup of {server} into a throwaway server and verify it "
            "(proves it for retention and freshness).",
            lambda s: {"servers": [s.block], "locations": s.locations},
        ),
        FlowKind(
            "apply-retention",
            "flows/retention.py:apply_retention",
            "45 4 * * *",
            True,
            "ENQUEUE",
            "Apply the retention policy to {server}'s backups and binlog archives (pinned backups stay).",
            lambda s: {
                "servers": [s.block],
                "locations": s.locations,
                "policy": s.retention_policy,  # fields, a RetentionPolicyBlock name, or per location
                "apply": True,
            },
        ),
        FlowKind(
            "check",
            "flows/check.py:check",
            "0 7 * * *",
            False,
            "CANCEL_NEW",
            "barman-check style health check of {server} and the locations; Failed when any check fails.",
            lambda s: {"servers": [s.block], "locations": s.locations},
        ),
        FlowKind(
            "replica-health",
            "flows/replication.py:replica_health",
            "*/5 * * * *",
            False,
            "CANCEL_NEW",
            "Replication health of {server} (threads, errors, lag).",
            lambda s: {"replicas": [s.block]} | ({"primary": s.replica_of} if s.replica_of else {}),
        ),
    )
}
DEFAULT_FLOWS = ["backup", "archive-binlogs", "restore-test", "apply-retention", "check"]
DEFAULT_REPLICA_FLOWS = ["replica-health"]
SERVER_KEYS = {"flows", "schedules", "parameters", "replica_of", "locations", "retention_policy"}


@dataclass
class DeploymentSettings:
    environment: str = "default"  # which environment file made them: its own setup tag
    timezone: str = "UTC"
    directory: str = str(PROJECT_DIR)
    servers: list[ServerDeployments] = field(default_factory=list)
    job_variables: dict[str, Any] = field(default_factory=dict)  # Docker/Kubernetes: image, volumes
    retention_policy: Any = field(default_factory=lambda: dict(DEFAULT_POLICY))  # [deployments]'s


def _flow_list(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where} must be a list of flow names, e.g. ["backup", "archive-binlogs"]')
    unknown = [v for v in value if v not in FLOWS]
    if unknown:
        raise ConfigError(f"{where}: unknown flow(s) {', '.join(unknown)}; known: {', '.join(FLOWS)}")
    return list(dict.fromkeys(value))


def _table_of_flows(where: str, value: Any, kind: type) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table keyed by flow name, e.g. {{ backup = ... }}")
    unknown = [k for k in value if k not in FLOWS]
    if unknown:
        raise ConfigError(f"{where}: unknown flow(s) {', '.join(unknown)}; known: {', '.join(FLOWS)}")
    for k, v in value.items():
        if not isinstance(v, kind):
            raise ConfigError(f"{where}.{k} must be a {kind.__name__}")
    return dict(value)


def parse(
    doc: Mapping[str, Any],
    servers: Sequence[tuple[str, str, bool, Mapping[str, Any]]],
    location_names: Sequence[str],
    environment: str = "default",
) -> DeploymentSettings:
    """``servers``: (block name, stored name, expect_backups, the server's table);
    ``environment``: the environment's name unless ``[deployments] environment`` gives one
    (setup passes the file's name)."""
    table = doc.get("deployments") or {}
    allowed = {
        "environment",
        "timezone",
        "directory",
        "locations",
        "flows",
        "replica_flows",
        "schedules",
        "parameters",
        "retention_policy",
        "job_variables",
    }
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"[deployments]: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    environment = str(table.get("environment", environment))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", environment):
        raise ConfigError(
            f"[deployments] environment {environment!r}: letters, digits, '.', '_' and '-' only "
            '(at most 63), e.g. environment = "prod"'
        )
    timezone = str(table.get("timezone", "UTC"))
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(timezone)
    except (KeyError, ValueError, ModuleNotFoundError):
        raise ConfigError(
            f"[deployments] timezone {timezone!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)"
        ) from None
    directory = str(table.get("directory", PROJECT_DIR))
    if not Path(directory).is_absolute():
        raise ConfigError(f"[deployments] directory {directory!r} must be an absolute path (where flows/ is)")
    default_locations = table.get("locations", list(location_names))
    flows = _flow_list("[deployments] flows", table.get("flows", DEFAULT_FLOWS))
    replica_flows = _flow_list(
        "[deployments] replica_flows", table.get("replica_flows", DEFAULT_REPLICA_FLOWS)
    )
    schedules = _table_of_flows("[deployments] schedules", table.get("schedules"), str)
    parameters = _table_of_flows("[deployments] parameters", table.get("parameters"), dict)
    policy = table.get("retention_policy", DEFAULT_POLICY)
    job_variables = table.get("job_variables", {})
    if not isinstance(job_variables, Mapping):
        raise ConfigError(
            '[deployments] job_variables must be a table, e.g. { image = "registry/mysqlops:1.2" }'
        )
    settings = DeploymentSettings(
        environment=environment,
        timezone=timezone,
        directory=directory,
        job_variables=dict(job_variables),
        retention_policy=policy,
    )
    block_names = {b for b, _, _, _ in servers}
    for block, stored, expect_backups, server_table in servers:
        where = f"[servers.{block}]"
        locations = server_table.get("locations", default_locations)
        if not isinstance(locations, list) or not all(isinstance(x, str) for x in locations):
            raise ConfigError(f"{where} locations must be a list of location names")
        missing = [x for x in locations if x not in location_names]
        if missing:
            raise ConfigError(
                f"{where}: location(s) {', '.join(missing)} have no [locations.<name>] table in this file"
            )
        replica_of = server_table.get("replica_of")
        if replica_of is not None and replica_of not in block_names:
            raise ConfigError(
                f"{where} replica_of = {replica_of!r}: no [servers.{replica_of}] table in this file"
            )
        chosen = _flow_list(
            f"{where} flows", server_table.get("flows", flows if expect_backups else replica_flows)
        )
        if chosen and not locations and any(f != "replica-health" for f in chosen):
            raise ConfigError(
                f"{where}: its flows need at least one location ([locations.<name>] or locations = [...])"
            )
        own_params = _table_of_flows(f"{where} parameters", server_table.get("parameters"), dict)
        settings.servers.append(
            ServerDeployments(
                block=block,
                stored_name=stored,
                flows=chosen,
                schedules=schedules
                | _table_of_flows(f"{where} schedules", server_table.get("schedules"), str),
                parameters={k: parameters.get(k, {}) | own_params.get(k, {}) for k in chosen},
                locations=list(locations),
                replica_of=replica_of,
                retention_policy=server_table.get("retention_policy", policy),
            )
        )
    return settings


# ---------------------------------------------------------------------------------- wanted
@dataclass(frozen=True)
class Wanted:
    flow: str
    name: str
    spec: dict[str, Any]  # everything compared (and hashed into the version)

    @property
    def version(self) -> str:
        text = json.dumps(self.spec, sort_keys=True, default=str)
        return VERSION_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def wanted(settings: DeploymentSettings, work_pool: str, queue_of: Callable[[str], str]) -> list[Wanted]:
    out = []
    for s in settings.servers:
        for name in s.flows:
            kind = FLOWS[name]
            cron = s.schedules.get(name, kind.cron)
            spec = {
                "entrypoint": kind.entrypoint,
                "description": kind.description.format(server=s.block),
                "parameters": kind.params(s) | s.parameters.get(name, {}),
                "tags": ["mysqlops", f"server:{s.block}", MANAGED_TAG, setup_tag(settings.environment)],
                "work_pool": work_pool,
                "work_queue": queue_of(s.block) if kind.writes else "default",
                "schedules": [{"cron": cron, "timezone": settings.timezone}] if cron else [],
                "collision": kind.collision,
                "directory": settings.directory,
            }
            if settings.job_variables:
                spec["job_variables"] = settings.job_variables
            out.append(Wanted(name, s.block, spec))
    return out


def _parameter_schema(entrypoint: str) -> dict[str, Any]:
    """The flow's parameter schema (types and the docstring's descriptions: the UI's form)."""
    path, _, attr = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return dict(getattr(module, attr).parameters.model_dump(exclude_unset=True))


async def apply(client: Any, want: list[Wanted], report: Any, *, tag: str, page: int = PAGE) -> None:
    """Create/update the wanted deployments; delete the ones the setup of this environment
    made (tagged ``tag``, :func:`setup_tag`) that are not wanted, every page of them."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectNotFound

    flow_names: dict[Any, str] = {}
    for w in want:
        label = f"{w.flow}/{w.name}"
        try:
            current = await client.read_deployment_by_name(label)
        except ObjectNotFound:
            current = None
        if current is not None and current.version == w.version:
            report.add("unchanged", "deployment", label)
            continue
        spec = w.spec
        flow_id = await client.create_flow_from_name(w.flow)
        await client.create_deployment(
            flow_id=flow_id,
            name=w.name,
            version=w.version,
            description=spec["description"],
            entrypoint=spec["entrypoint"],
            parameters=spec["parameters"],
            parameter_openapi_schema=_parameter_schema(spec["entrypoint"]),
            tags=spec["tags"],
            work_pool_name=spec["work_pool"],
            work_queue_name=spec["work_queue"],
            schedules=[
                DeploymentScheduleCreate(
                    schedule=CronSchedule(cron=s["cron"], timezone=s["timezone"]), active=True
                )
                for s in spec["schedules"]
            ],
            concurrency_limit=1,
            concurrency_options=ConcurrencyOptions(
                collision_strategy=ConcurrencyLimitStrategy(spec["collision"])
            ),
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": spec["directory"]}}
            ],
            enforce_parameter_schema=True,
            job_variables=spec.get("job_variables"),
        )
        report.add("updated" if current is not None else "created", "deployment", label)
    keep = {(w.flow, w.name) for w in want}
    for d in await read_all_deployments(client, MANAGED_TAG, page):
        tags = set(d.tags or ())
        if tag not in tags:
            if not any(t.startswith(MANAGED_TAG + ":") for t in tags):
                report.add(
                    "left alone",
                    "deployment",
                    f"{d.name} (made by an older setup: delete it by hand if unwanted)",
                )
            continue  # another environment's
        if d.flow_id not in flow_names:
            flow_names[d.flow_id] = (await client.read_flow(d.flow_id)).name
        if (flow_names[d.flow_id], d.name) not in keep:
            await client.delete_deployment(d.id)
            report.add("deleted", "deployment", f"{flow_names[d.flow_id]}/{d.name} (no longer in the file)")


async def read_all_deployments(client: Any, tag: str, page: int = PAGE) -> list[Any]:
    """Every deployment tagged ``tag``, page after page (one call returns at most ``page``),
    read in full before anything is deleted. Newest first: one created meanwhile shifts the
    pages down and is read twice (kept once), never missed."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
    from prefect.client.schemas.sorting import DeploymentSort

    found: dict[Any, Any] = {}
    offset = 0
    while True:
        batch = await client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[tag])),
            sort=DeploymentSort.CREATED_DESC,
            limit=page,
            offset=offset,
        )
        found.update((d.id, d) for d in batch if d.id not in found)
        offset += len(batch)
        if len(batch) < page:
            return list(found.values())
