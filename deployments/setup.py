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
  under each flow; those the setup of this environment file made and the file no longer lists
  are deleted (only those: they carry the tag ``mysqlops-setup:<environment>``). A new server
  is one TOML table and one setup run;
* the RetentionPolicyBlock ``mysqlops-retention`` from ``[deployments] retention_policy`` (the
  weekly report of prefect.yaml forecasts with it);
* the notification block and the automations (deployments/automations.py).

The file is read and judged by deployments/config.py; this module applies it.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from blocks import BackupLocation, MySQLServer, RetentionPolicyBlock
from blocks.metrics import METRICS_BLOCK, MetricsBlock
from deployments import automations
from deployments import servers as server_deployments
from deployments.config import (
    LOCATION_SECRETS,
    SERVER_SECRETS,
    Environment,
    LocationConfig,
    Prompt,
    ServerConfig,
    secret_value,
)

# the environment file's reading lives in deployments/config.py; these names stay importable here
from deployments.config import SecretSource as SecretSource
from deployments.config import load_config as load_config
from deployments.config import parse as parse
from deployments.config import queue_name as queue_name
from deployments.config import resolve_secret as resolve_secret
from deployments.config import tag_limit_name as tag_limit_name
from mysqlops.adapters.localfs import make_private
from mysqlops.errors import ConfigError, MysqlopsError


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
            current = secret_value(getattr(old, secret, None)) if old is not None else None
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
