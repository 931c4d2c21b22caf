"""The environment file of ``deployments.setup``, read and judged: servers, locations,
webhook and alerts, metrics, the per-server deployments' settings, and where each secret comes
from (an environment variable, a prompt, the block as it is; never plaintext unless allowed).
Pure but for reading the file and the environment; nothing here talks to Prefect."""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from deployments import automations
from deployments import servers as server_deployments
from mysqlops.errors import ConfigError
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


def secret_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)
