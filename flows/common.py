"""Helpers shared by the flows: block loading, JSON-safe artifacts, logging."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.core import Block

from blocks import BackupLocation, MySQLServer
from blocks.metrics import METRICS_BLOCK, MetricsBlock
from mysqlops import metrics
from mysqlops.adapters import reaper
from mysqlops.errors import ConfigError
from mysqlops.metrics import Sample
from mysqlops.model import Location, ServerSpec
from mysqlops.streams.crypto import Keyring

B = TypeVar("B", bound=Block)


def load_block(cls: type[B], name: str, ui_name: str, example: str) -> B:
    """Load a block by name, or fail with an error that says how to create it."""
    try:
        return cast(B, cls.load(name))
    except ValueError as exc:
        raise ConfigError(
            f"no {cls.__name__} block named {name!r}: create it in the Prefect UI "
            f"(Blocks > {ui_name}) or with {example}.save({name!r})"
        ) from exc


def load_server(block_name: str) -> ServerSpec:
    """Load a ``MySQLServer`` block by name; a clear error when it does not exist."""
    block = load_block(MySQLServer, block_name, "MySQL Server", "MySQLServer(...)")
    return block.to_spec(block.server_name or block_name)


def load_location(block_name: str) -> Location:
    block = load_block(BackupLocation, block_name, "Backup Location", "BackupLocation(url=...)")
    return block.to_location(block.location_name or block_name)


def publish_metrics(samples: Sequence[Sample]) -> None:
    """Send ``samples`` where the ``mysqlops-metrics`` block says; no block: metrics are off.
    A metrics failure is logged as a warning and never fails the flow."""
    logger = get_run_logger()
    try:
        block = cast(MetricsBlock, MetricsBlock.load(METRICS_BLOCK))
    except ValueError:
        logger.debug("no %s block: metrics are off", METRICS_BLOCK)
        return
    try:
        problems = metrics.send(samples, block.to_target())
    except Exception as exc:  # noqa: BLE001 - metrics never fail a backup
        problems = [f"metrics not sent: {exc}"]
    for problem in problems:
        logger.warning("%s", problem)


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow ``[a-z0-9-]`` only."""
    key = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return key[:100] or "mysqlops"


def json_safe(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in json.loads(json.dumps(list(rows), default=str))]


def table_artifact(key: str, rows: Sequence[Mapping[str, Any]], description: str) -> None:
    create_table_artifact(key=artifact_key(key), table=json_safe(rows), description=description)


def markdown_artifact(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)


def load_keyring(secret_blocks: list[str] | None) -> Keyring | None:
    """Encryption keys from Prefect Secret blocks: the first is current, the rest are older
    keys still needed to read older backups. None when no block is named."""
    if not secret_blocks:
        return None
    from prefect.blocks.system import Secret

    texts = [
        str(load_block(Secret, name, "Secret", "Secret(value='<base64 32-byte key>')").get())
        for name in secret_blocks
    ]
    return Keyring.from_text(texts[0], texts[1:])


# --------------------------------------------------------------------------- killed runs
OWNER_LABEL = "mysqlops.owner"


def claim_flow_run() -> None:
    """Label the current flow run with the process that runs it (PID, start time, boot id,
    host): if that process is killed, :func:`crash_orphaned_flow_runs` proves it gone."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(ctx.flow_run.id, {OWNER_LABEL: reaper.owner_env_value()})


def crash_orphaned_flow_runs(page: int = 200, pages: int = 10) -> list[str]:
    """Mark CRASHED every RUNNING flow run whose labelled process (:func:`claim_flow_run`) is
    gone: killed with SIGKILL, or the machine rebooted. Runs labelled on another host are left
    to that host (and to Prefect's heartbeat automation). Returns one line per run marked."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    marked: list[str] = []
    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
    with get_client(sync_client=True) as client:
        runs = []
        for number in range(pages):  # the API returns at most 200 runs per call
            batch = client.read_flow_runs(flow_run_filter=running, limit=page, offset=number * page)
            runs += batch
            if len(batch) < page:
                break
        for run in runs:
            label = (run.labels or {}).get(OWNER_LABEL)
            owner = reaper.Owner.parse(str(label)) if label else None
            if owner is None or reaper.owner_state(owner) != "gone":
                continue
            message = (
                f"its process {owner.pid} on {owner.host} is gone (killed, or the machine restarted): "
                "marked crashed by mysqlops"
            )
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            marked.append(f"flow run {run.name} ({run.id}) was stuck RUNNING: {message}")
    return marked


@dataclass
class Leftovers:
    """What :func:`reap_leftovers` found: the reaper's report and the flow runs marked crashed."""

    report: reaper.ReapReport
    crashed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.report.lines() + self.crashed + self.problems


def reap_leftovers(*roots: str | None) -> Leftovers:
    """At the start of a run: label this flow run with its process, remove what killed runs
    left (staging, scratch servers, credentials, orphaned ephemeral Prefect servers, see
    :mod:`mysqlops.adapters.reaper`; ``roots`` are extra directories such as ``staging_dir``)
    and mark crashed the flow runs whose process is gone. Never fails the run: everything is
    logged and returned."""
    from prefect import get_run_logger

    logger = get_run_logger()
    found = Leftovers(reaper.ReapReport())
    try:
        claim_flow_run()
    except Exception as exc:  # noqa: BLE001 - labelling is best effort
        found.problems.append(f"could not label this flow run with its process: {exc}")
    found.report = reaper.reap(roots)
    try:
        found.crashed = crash_orphaned_flow_runs()
    except Exception as exc:  # noqa: BLE001 - the sweep is best effort
        found.problems.append(f"could not look for flow runs stuck RUNNING: {exc}")
    for line in found.lines():
        (logger.info if line.startswith("left alone") else logger.warning)("%s", line)
    return found
