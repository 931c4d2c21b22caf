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

from blocks import BackupLocation, MySQLServer, RetentionPolicyBlock
from blocks.metrics import METRICS_BLOCK, MetricsBlock
from mysqlops import metrics, retention, runs
from mysqlops.errors import ConfigError
from mysqlops.metrics import Sample
from mysqlops.model import Location, ServerSpec
from mysqlops.retention import RetentionPolicy
from mysqlops.runs import Reporter, RunContext
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


def server_name(name: str) -> str:
    """The name a server's backups are recorded under: the ``server_name`` of the MySQLServer
    block called ``name`` or, with no such block (a server whose block is gone), ``name``
    itself. ``server``/``servers`` mean the same in every flow: the server, by its block."""
    try:
        block = MySQLServer.load(name)
    except ValueError:
        return name
    return str(cast(MySQLServer, block).server_name or name)


def run_context(
    key_blocks: list[str] | str | None = None,
    *,
    staging_dir: str | None = None,
    progress: str | None = None,
    progress_interval: float = 5.0,
) -> RunContext:
    """The core's run context, made inside a task: the keyring loaded here from its Secret
    block names (key bytes never travel as task parameters), Prefect's run logger as the
    reporter and, with ``progress`` (its description), a progress artifact fed by the core."""
    from prefect import get_run_logger
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    logger = get_run_logger()
    names = [key_blocks] if isinstance(key_blocks, str) else key_blocks
    keyring = load_keyring(names)
    bar: Any = None
    if progress is not None:
        artifact = create_progress_artifact(0.0, description=progress)

        def bar(percent: float) -> None:
            try:
                update_progress_artifact(cast(Any, artifact), min(max(percent, 0.0), 100.0))
            except Exception as exc:  # noqa: BLE001 - progress display must never fail a run
                logger.debug("progress artifact update failed: %s", exc)

    reporter = Reporter(
        info=logger.info,
        warning=logger.warning,
        error=logger.error,
        **({"progress": bar} if bar is not None else {}),
    )
    return RunContext(
        staging_dir=staging_dir, keyring=keyring, reporter=reporter, progress_interval=progress_interval
    )


def resolve_policies(locations: list[str], policy: Any) -> dict[str, RetentionPolicy]:
    """``policy`` per location (by block name), RetentionPolicyBlock names loaded: the one
    meaning of the parameter in apply-retention and backup-report (one policy for all, or
    ``{location: policy}``; see :mod:`mysqlops.retention.locations`)."""
    return {
        name: load_block(
            RetentionPolicyBlock, spec, "Retention Policy", "RetentionPolicyBlock(...)"
        ).to_policy()
        if isinstance(spec, str)
        else retention.to_policy(spec)
        for name, spec in retention.policies_by_location(locations, policy).items()
    }


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
        client.update_flow_run_labels(ctx.flow_run.id, {OWNER_LABEL: runs.owner_label()})


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
        flow_runs = []
        for number in range(pages):  # the API returns at most 200 runs per call
            batch = client.read_flow_runs(flow_run_filter=running, limit=page, offset=number * page)
            flow_runs += batch
            if len(batch) < page:
                break
        for run in flow_runs:
            label = (run.labels or {}).get(OWNER_LABEL)
            gone = runs.gone_owner(str(label)) if label else None
            if gone is None:
                continue
            message = f"its {gone} is gone (killed, or the machine restarted): marked crashed by mysqlops"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            marked.append(f"flow run {run.name} ({run.id}) was stuck RUNNING: {message}")
    return marked


@dataclass
class Leftovers:
    """What :func:`reap_leftovers` found: the reaper's report and the flow runs marked crashed."""

    report: runs.ReapReport
    crashed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.report.lines() + self.crashed + self.problems


def reap_leftovers(*roots: str | None) -> Leftovers:
    """At the start of a run: label this flow run with its process, remove what killed runs
    left (staging, scratch servers, credentials, orphaned ephemeral Prefect servers, see
    :mod:`mysqlops.runs`; ``roots`` are extra directories such as ``staging_dir``)
    and mark crashed the flow runs whose process is gone. Never fails the run: everything is
    logged and returned."""
    from prefect import get_run_logger

    logger = get_run_logger()
    found = Leftovers(runs.ReapReport())
    try:
        claim_flow_run()
    except Exception as exc:  # noqa: BLE001 - labelling is best effort
        found.problems.append(f"could not label this flow run with its process: {exc}")
    found.report = runs.reap_leftovers(roots)
    try:
        found.crashed = crash_orphaned_flow_runs()
    except Exception as exc:  # noqa: BLE001 - the sweep is best effort
        found.problems.append(f"could not look for flow runs stuck RUNNING: {exc}")
    for line in found.lines():
        (logger.info if line.startswith("left alone") else logger.warning)("%s", line)
    return found
