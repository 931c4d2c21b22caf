"""Create or update everything a mysqlops environment needs in Prefect, from one TOML file.

    python -m deployments.setup --config environment.toml

Creates/updates, idempotently (a second run reports everything ``unchanged``):

* ``MySQLServer`` and ``BackupLocation`` blocks (secrets from the environment variables the
  file names, or prompted for when interactive; never plaintext in the file unless
  ``allow_plaintext_secrets = true``);
* the work pool (process by default) and one work queue ``server-<name>`` per server with a
  concurrency limit: the deployments that write a server's backups (backup, apply-retention)
  run from that queue, so two of them never overlap, whatever triggered them;
* a tag concurrency limit ``server:<name>`` per server (a global concurrency limit
  ``tag:server:<name>``): task runs tagged with it (``backup-fleet`` subflows, flows that
  use ``tags("server:<name>")``) never run concurrently on that server;
* the per-server deployments (deployments/servers.py): each ``[servers.<name>]`` table lists
  its flows and schedules (defaults in ``[deployments]``); a deployment named ``<server>``
  under each flow; those setup made and the file no longer lists are deleted (only those:
  they carry the tag ``mysqlops-setup``). A new server is one TOML table and one setup run;
* the notification block and the automations (deployments/automations.py).

First it makes the local Prefect home private (0700, its files 0600): ``prefect.db`` holds the
key to the encrypted blocks. Secrets are never printed. See deployments/README.md and
environment.example.toml.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from blocks import BackupLocation, MySQLServer, RetentionPolicyBlock
from blocks.metrics import METRICS_BLOCK, MetricsBlock
from deployments import automations
from deployments import servers as server_deployments
from mysqlops.adapters.localfs import make_private
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.model import check_safe_name

SERVER_FIELDS = {
    "host",
    "port",
    "socket",
    "user",
    "server_name",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_verify",
    "description",
}
SERVER_SECRETS = ("password",)
LOCATION_FIELDS = {"url", "location_name", "endpoint_url", "storage_options", "offsite", "description"}
LOCATION_SECRETS = ("key", "secret", "token")
WEBHOOK_FIELDS = {"block", "type", "url", "method", "json_data", "form_data", "headers", "params", "timeout"}


def queue_name(server: str) -> str:
    return f"server-{server}"


def tag_limit_name(server: str) -> str:
    return f"tag:{automations.server_tag(server)}"


# --------------------------------------------------------------------------------- config
@dataclass
class SecretSource:
    """Where one secret comes from: an environment variable, the file (if allowed), or nowhere."""

    where: str  # e.g. servers.prod-primary.password
    env: str | None = None
    plaintext: str | None = None


@dataclass
class ServerConfig:
    name: str
    fields: dict[str, Any]
    secrets: dict[str, SecretSource]
    expect_backups: bool = True


@dataclass
class LocationConfig:
    name: str
    fields: dict[str, Any]
    secrets: dict[str, SecretSource]


@dataclass
class WebhookConfig:
    block: str
    type: str = "custom-webhook"
    fields: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, SecretSource] = field(default_factory=dict)  # substitution values


@dataclass
class Environment:
    servers: list[ServerConfig]
    locations: list[LocationConfig]
    work_pool: str = "mysqlops"
    work_pool_type: str = "process"
    work_pool_concurrency: int | None = None
    per_server_concurrency: int = 1
    webhook: WebhookConfig | None = None
    alerts: automations.AlertConfig | None = None
    allow_plaintext_secrets: bool = False
    deployments: server_deployments.DeploymentSettings = field(
        default_factory=server_deployments.DeploymentSettings
    )
    metrics: dict[str, Any] | None = None  # fields of the MetricsBlock "mysqlops-metrics"


def _secret_sources(
    where: str, table: Mapping[str, Any], names: tuple[str, ...], plaintext_ok: bool
) -> dict[str, SecretSource]:
    out: dict[str, SecretSource] = {}
    for name in names:
        env = table.get(f"{name}_env")
        plain = table.get(name)
        if plain is not None and not plaintext_ok:
            raise ConfigError(
                f"{where}.{name} is a plaintext secret in the config file: put it in an environment "
                f'variable and write {name}_env = "VARIABLE_NAME" instead '
                "(or set allow_plaintext_secrets = true at the top of the file, not recommended)"
            )
        if env is not None and not isinstance(env, str):
            raise ConfigError(f"{where}.{name}_env must be the NAME of an environment variable (a string)")
        if env is not None or plain is not None:
            out[name] = SecretSource(f"{where}.{name}", env, None if plain is None else str(plain))
    return out


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"[{where}]: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def parse(doc: Mapping[str, Any], environment: str = "default") -> Environment:
    """Validate a parsed TOML document (a typo is an error, not a silent default). ``environment``:
    the environment's name unless ``[deployments] environment`` gives one (load_config: the
    file's name without .toml); the deployments its setup made carry it in their setup tag."""
    _check_keys(
        "top level",
        doc,
        {
            "allow_plaintext_secrets",
            "work_pool",
            "concurrency",
            "servers",
            "locations",
            "notifications",
            "automations",
            "deployments",
            "metrics",
        },
    )
    plaintext_ok = bool(doc.get("allow_plaintext_secrets", False))
    servers = []
    for name, table in (doc.get("servers") or {}).items():
        check_safe_name("server", name)
        allowed = (
            SERVER_FIELDS
            | {"expect_backups"}
            | set(SERVER_SECRETS)
            | {f"{s}_env" for s in SERVER_SECRETS}
            | server_deployments.SERVER_KEYS
        )
        _check_keys(f"servers.{name}", table, allowed)
        fields = {k: v for k, v in table.items() if k in SERVER_FIELDS}
        servers.append(
            ServerConfig(
                name,
                fields,
                _secret_sources(f"servers.{name}", table, SERVER_SECRETS, plaintext_ok),
                bool(table.get("expect_backups", True)),
            )
        )
    locations = []
    for name, table in (doc.get("locations") or {}).items():
        check_safe_name("location", name)
        allowed = LOCATION_FIELDS | set(LOCATION_SECRETS) | {f"{s}_env" for s in LOCATION_SECRETS}
        _check_keys(f"locations.{name}", table, allowed)
        if "url" not in table:
            raise ConfigError(f'[locations.{name}] needs url = "file:///..." or "s3://bucket/prefix"')
        fields = {k: v for k, v in table.items() if k in LOCATION_FIELDS}
        locations.append(
            LocationConfig(
                name, fields, _secret_sources(f"locations.{name}", table, LOCATION_SECRETS, plaintext_ok)
            )
        )
    if not servers:
        raise ConfigError("the config has no [servers.<name>] table: add at least one server")
    pool = doc.get("work_pool") or {}
    _check_keys("work_pool", pool, {"name", "type", "concurrency_limit"})
    concurrency = doc.get("concurrency") or {}
    _check_keys("concurrency", concurrency, {"per_server"})
    per_server = int(concurrency.get("per_server", 1))
    if per_server < 1:
        raise ConfigError("[concurrency] per_server must be at least 1")
    webhook = None
    notif = doc.get("notifications")
    if notif:
        _check_keys("notifications", notif, WEBHOOK_FIELDS | {"secrets_env", "secrets"})
        if "block" not in notif:
            raise ConfigError('[notifications] needs block = "<name of the notification block>"')
        secrets: dict[str, SecretSource] = {}
        for key, env in (notif.get("secrets_env") or {}).items():
            secrets[key] = SecretSource(f"notifications.secrets_env.{key}", env=str(env))
        for key, value in (notif.get("secrets") or {}).items():
            if not plaintext_ok:
                raise ConfigError(
                    f'notifications.secrets.{key} is a plaintext secret: use secrets_env = {{ {key} = "VARIABLE" }}'
                )
            secrets[key] = SecretSource(f"notifications.secrets.{key}", plaintext=str(value))
        webhook = WebhookConfig(
            block=str(notif["block"]),
            type=str(notif.get("type", "custom-webhook")),
            fields={k: v for k, v in notif.items() if k in WEBHOOK_FIELDS - {"block", "type"}},
            secrets=secrets,
        )
    alerts = None
    auto = doc.get("automations")
    if auto is not None:
        _check_keys(
            "automations",
            auto,
            {
                "enabled",
                "backup_flow",
                "restore_test_flow",
                "backup_absence_hours",
                "backup_absence_seconds",
                "failure_tag",
                "realert_minutes",
                "realert_seconds",
            },
        )
        if webhook is None:
            raise ConfigError("[automations] needs a [notifications] table: where should alerts go?")
        if "backup_absence_seconds" in auto:
            window = timedelta(seconds=float(auto["backup_absence_seconds"]))
        else:
            window = timedelta(hours=float(auto.get("backup_absence_hours", 26)))
        if "realert_seconds" in auto:
            realert = timedelta(seconds=float(auto["realert_seconds"]))
        else:
            realert = timedelta(minutes=float(auto.get("realert_minutes", 60)))
        alerts = automations.AlertConfig(
            backup_servers=tuple(s.name for s in servers if s.expect_backups),
            backup_flow=str(auto.get("backup_flow", "backup")),
            restore_test_flow=str(auto.get("restore_test_flow", "restore-test")),
            backup_absence=window,
            failure_tag=str(auto.get("failure_tag", "mysqlops")),
            enabled=bool(auto.get("enabled", True)),
            realert=realert,
        )
    deployments = server_deployments.parse(
        doc,
        [
            (s.name, str(s.fields.get("server_name") or s.name), s.expect_backups, doc["servers"][s.name])
            for s in servers
        ],
        [loc.name for loc in locations],
        environment,
    )
    metrics = _parse_metrics(doc.get("metrics"))
    return Environment(
        deployments=deployments,
        metrics=metrics,
        servers=servers,
        locations=locations,
        work_pool=str(pool.get("name", "mysqlops")),
        work_pool_type=str(pool.get("type", "process")),
        work_pool_concurrency=None
        if pool.get("concurrency_limit") is None
        else int(pool["concurrency_limit"]),
        per_server_concurrency=per_server,
        webhook=webhook,
        alerts=alerts,
        allow_plaintext_secrets=plaintext_ok,
    )


METRICS_KEYS = {"pushgateway_url", "textfile_dir", "job", "timeout_seconds"}


def _parse_metrics(table: Any) -> dict[str, Any] | None:
    """``[metrics]``: where the flows send Prometheus metrics (a Pushgateway, a textfile dir)."""
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(
            '[metrics] must be a table, e.g. [metrics] pushgateway_url = "http://pushgateway:9091"'
        )
    _check_keys("metrics", table, METRICS_KEYS)
    fields = {k: table[k] for k in METRICS_KEYS if k in table}
    from mysqlops.metrics import MetricsTarget

    MetricsTarget(  # the same checks the flows apply, at setup time
        pushgateway_url=str(fields.get("pushgateway_url", "")),
        textfile_dir=str(fields.get("textfile_dir", "")),
        job=str(fields.get("job", "mysqlops")),
    )
    return fields


def load_config(path: str | os.PathLike[str]) -> Environment:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found: copy deployments/environment.example.toml"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse(doc, Path(path).stem)


# -------------------------------------------------------------------------------- secrets
Prompt = Callable[[str], str]


def resolve_secret(
    source: SecretSource | None, existing: str | None, interactive: bool, prompt: Prompt = getpass.getpass
) -> str | None:
    """The secret's value: environment variable, then prompt (interactive), then the value
    already stored in the block (so re-running setup without the variable changes nothing)."""
    if source is None:
        return existing
    if source.plaintext is not None:
        return source.plaintext
    assert source.env is not None
    value = os.environ.get(source.env)
    if value:
        return value
    if interactive:
        entered = prompt(f"{source.where} (environment variable {source.env} is not set): ")
        if entered:
            return entered
    if existing is not None:
        return existing
    raise ConfigError(
        f"{source.where}: environment variable {source.env} is not set"
        + ("" if interactive else " (and no terminal to prompt on)")
        + f": export {source.env}=... and run setup again"
    )


def _secret_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


# ---------------------------------------------------------------------------------- apply
class SetupLog:
    """What setup created, updated or left alone, printed as it goes (not the backup report)."""

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.rows: list[tuple[str, str, str]] = []
        self.out = out

    def add(self, action: str, kind: str, name: str) -> None:
        self.rows.append((action, kind, name))
        self.out(f"{action:<10} {kind:<28} {name}")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for action, _, _ in self.rows:
            out[action] = out.get(action, 0) + 1
        return out


def _fields(block: Any, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The block's configuration (secrets compare by value), without document metadata."""
    return {k: v for k, v in block.model_dump().items() if not k.startswith("_") and k not in exclude}


async def _load_block(cls: Any, name: str) -> Any | None:
    try:
        return await cls.aload(name)
    except ValueError:
        return None


async def _save_block(report: SetupLog, kind: str, name: str, new: Any, old: Any | None) -> Any:
    if old is not None and _fields(old) == _fields(new):
        report.add("unchanged", kind, name)
        return old
    await new.asave(name, overwrite=True)
    report.add("updated" if old is not None else "created", kind, name)
    return new


async def _apply_blocks(
    entries: list[ServerConfig] | list[LocationConfig],
    cls: Any,
    secret_names: tuple[str, ...],
    kind: str,
    report: SetupLog,
    interactive: bool,
    prompt: Prompt,
) -> None:
    """Create or update one ``cls`` block an entry; each secret from its source, else kept as it is."""
    for entry in entries:
        old = await _load_block(cls, entry.name)
        values = dict(entry.fields)
        for secret in secret_names:
            current = _secret_value(getattr(old, secret, None)) if old is not None else None
            value = resolve_secret(entry.secrets.get(secret), current, interactive, prompt)
            values[secret] = SecretStr(value) if value is not None else None
        await _save_block(report, kind, entry.name, cls(**values), old)


async def apply_servers(env: Environment, report: SetupLog, interactive: bool, prompt: Prompt) -> None:
    await _apply_blocks(
        env.servers, MySQLServer, SERVER_SECRETS, "block mysql-server", report, interactive, prompt
    )


async def apply_locations(env: Environment, report: SetupLog, interactive: bool, prompt: Prompt) -> None:
    await _apply_blocks(
        env.locations, BackupLocation, LOCATION_SECRETS, "block backup-location", report, interactive, prompt
    )


#: the RetentionPolicyBlock setup saves from ``[deployments] retention_policy``: prefect.yaml's
#: weekly report forecasts with it, so the report keeps what apply-retention keeps (one source)
RETENTION_BLOCK = "mysqlops-retention"


async def apply_retention_block(env: Environment, report: SetupLog) -> None:
    """Save ``[deployments] retention_policy`` (one policy, or the name of a RetentionPolicyBlock
    whose fields are copied) as the block :data:`RETENTION_BLOCK`. A per-location policy has no
    one block: the block is left as it is, and said so."""
    policy = env.deployments.retention_policy
    fields: dict[str, Any] | None
    if isinstance(policy, str):
        named = await _load_block(RetentionPolicyBlock, policy)
        if named is None:
            raise ConfigError(
                f"[deployments] retention_policy names the RetentionPolicyBlock {policy!r}, which does not exist: "
                "create it first, or write the policy's fields in the file"
            )
        fields = _fields(named)
    elif isinstance(policy, Mapping) and not (policy and set(policy) <= {loc.name for loc in env.locations}):
        fields = dict(policy)  # one policy (a mapping whose keys are all locations is one per location)
    else:
        fields = None
    if fields is None:
        report.add(
            "left alone",
            "block retention policy",
            f"{RETENTION_BLOCK} ([deployments] retention_policy is per location: the weekly report forecasts with the block as it is)",
        )
        return
    try:
        new = RetentionPolicyBlock(**fields)
        new.to_policy()
    except (ValueError, MysqlopsError) as exc:
        raise ConfigError(f"[deployments] retention_policy: {exc}") from None
    old = await _load_block(RetentionPolicyBlock, RETENTION_BLOCK)
    await _save_block(report, "block retention policy", RETENTION_BLOCK, new, old)


async def apply_metrics(env: Environment, report: SetupLog) -> None:
    if env.metrics is None:
        return
    old = await _load_block(MetricsBlock, METRICS_BLOCK)
    await _save_block(report, "block metrics", METRICS_BLOCK, MetricsBlock(**env.metrics), old)


async def apply_work_pool(client: Any, env: Environment, report: SetupLog) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    try:
        pool = await client.read_work_pool(env.work_pool)
    except ObjectNotFound:
        template = await get_default_base_job_template_for_infrastructure_type(env.work_pool_type)
        if template is None:
            raise ConfigError(
                f"no base job template for work pool type {env.work_pool_type!r}: install its worker "
                f"package (prefect-docker, prefect-kubernetes) or create the pool with "
                f"`prefect work-pool create {env.work_pool} --type {env.work_pool_type}` first"
            ) from None
        await client.create_work_pool(
            WorkPoolCreate(
                name=env.work_pool,
                type=env.work_pool_type,
                base_job_template=template,
                concurrency_limit=env.work_pool_concurrency,
                description="mysqlops flows (backup, binlog archiving, retention, restore tests, health)",
            )
        )
        report.add("created", f"work pool ({env.work_pool_type})", env.work_pool)
    else:
        if pool.type != env.work_pool_type:
            raise ConfigError(
                f"work pool {env.work_pool!r} exists with type {pool.type!r}, the config says "
                f"{env.work_pool_type!r}: change the config or use another pool name"
            )
        if pool.concurrency_limit != env.work_pool_concurrency:
            await client.update_work_pool(
                env.work_pool, WorkPoolUpdate(concurrency_limit=env.work_pool_concurrency)
            )
            report.add("updated", f"work pool ({env.work_pool_type})", env.work_pool)
        else:
            report.add("unchanged", f"work pool ({env.work_pool_type})", env.work_pool)


async def apply_queues_and_limits(client: Any, env: Environment, report: SetupLog) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    limit = env.per_server_concurrency
    for server in env.servers:
        name = queue_name(server.name)
        try:
            queue = await client.read_work_queue_by_name(name, work_pool_name=env.work_pool)
        except ObjectNotFound:
            await client.create_work_queue(
                name=name,
                work_pool_name=env.work_pool,
                concurrency_limit=limit,
                description=f"Runs that write backups of {server.name}: at most {limit} at a time",
            )
            report.add("created", "work queue (limit)", f"{env.work_pool}/{name} = {limit}")
        else:
            if queue.concurrency_limit != limit:
                await client.update_work_queue(queue.id, concurrency_limit=limit)
                report.add("updated", "work queue (limit)", f"{env.work_pool}/{name} = {limit}")
            else:
                report.add("unchanged", "work queue (limit)", f"{env.work_pool}/{name} = {limit}")
        gcl = tag_limit_name(server.name)
        try:
            current = await client.read_global_concurrency_limit_by_name(gcl)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=limit))
            report.add("created", "tag concurrency limit", f"{gcl} = {limit}")
        else:
            if current.limit != limit or not current.active:
                await client.update_global_concurrency_limit(
                    gcl, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
                )
                report.add("updated", "tag concurrency limit", f"{gcl} = {limit}")
            else:
                report.add("unchanged", "tag concurrency limit", f"{gcl} = {limit}")


async def apply_notification_block(
    env: Environment, report: SetupLog, interactive: bool, prompt: Prompt
) -> Any:
    """The notification block's document id (created/updated for ``custom-webhook``)."""
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    hook = env.webhook
    assert hook is not None
    if hook.type != "custom-webhook":
        block: Any = await Block.aload(f"{hook.type}/{hook.block}")
        report.add("unchanged", f"block {hook.type}", f"{hook.block} (managed outside setup)")
        return block._block_document_id
    old: Any = await _load_block(CustomWebhookNotificationBlock, hook.block)
    stored: dict[str, Any] = old.secrets.get_secret_value() if old is not None else {}
    resolved = {
        key: resolve_secret(source, stored.get(key), interactive, prompt)
        for key, source in hook.secrets.items()
    }
    secret_values: Any = {key: value for key, value in resolved.items() if value is not None}
    if "url" not in hook.fields:
        if old is None:
            raise ConfigError(f'[notifications] needs url = "https://..." to create block {hook.block!r}')
        fields = {k: getattr(old, k) for k in ("url",)} | hook.fields
    else:
        fields = dict(hook.fields)
    new = CustomWebhookNotificationBlock(name=hook.block, secrets=secret_values, **fields)
    no_secrets = frozenset({"secrets"})
    same = old is not None and (_fields(old, no_secrets), stored) == (_fields(new, no_secrets), secret_values)
    if same:
        report.add("unchanged", "block custom-webhook", hook.block)
        return old._block_document_id
    await new.asave(hook.block, overwrite=True)
    report.add("updated" if old is not None else "created", "block custom-webhook", hook.block)
    saved: Any = await CustomWebhookNotificationBlock.aload(hook.block)
    return saved._block_document_id


async def run(
    env: Environment,
    *,
    interactive: bool,
    prompt: Prompt = getpass.getpass,
    out: Callable[[str], None] = print,
) -> SetupLog:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    report = SetupLog(out)
    out(f"Prefect API: {PREFECT_API_URL.value() or '(ephemeral: set PREFECT_API_URL to your server)'}")
    await apply_servers(env, report, interactive, prompt)
    await apply_locations(env, report, interactive, prompt)
    await apply_metrics(env, report)
    await apply_retention_block(env, report)
    async with get_client() as client:
        await apply_work_pool(client, env, report)
        await apply_queues_and_limits(client, env, report)
        per_server = server_deployments.wanted(env.deployments, env.work_pool, queue_name)
        await server_deployments.apply(
            client, per_server, report, tag=server_deployments.setup_tag(env.deployments.environment)
        )
        if env.webhook is not None:
            block_id = await apply_notification_block(env, report, interactive, prompt)
            if env.alerts is not None:
                wanted = automations.build(env.alerts, block_id)
                for action, name in await automations.apply(client, wanted):
                    report.add(action, "automation", name)
    counts = report.counts()
    out("done: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
    return report


def secure_prefect_home(home: str | None = None, out: Callable[[str], None] = print) -> str:
    """Make the Prefect home private before Prefect writes to it: 0700, and every file in it
    0600. ``prefect.db`` holds the key that decrypts the blocks' secrets (database
    passwords, storage keys) and is created 0644; ``profiles.toml`` may hold an API key."""
    if home is None:
        from prefect.settings import PREFECT_HOME

        home = str(PREFECT_HOME.value())
    changed = make_private(home)
    if changed:
        out(f"Prefect home {home}: made private (0700, files 0600): {', '.join(changed)}")
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.setup",
        description="Create/update the blocks, work pool, concurrency limits and automations of a "
        "mysqlops environment (idempotent).",
    )
    parser.add_argument(
        "--config", required=True, help="environment TOML file (see environment.example.toml)"
    )
    parser.add_argument(
        "--no-input",
        action="store_true",
        help="never prompt for secrets (fail when an env variable is missing)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    secure_prefect_home()
    try:
        env = load_config(Path(args.config))
        interactive = not args.no_input and sys.stdin.isatty()
        asyncio.run(run(env, interactive=interactive))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
