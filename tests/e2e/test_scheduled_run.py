"""End to end: Prefect's scheduler service creates the runs of a mysqlops deployment and a
worker runs them, on a SQLite- and on a PostgreSQL-backed ``prefect server start``.

The deployment is ``archive-binlogs/prod-primary`` as ``deployments.setup`` makes it from the
environment file (pool, queue, tags, concurrency limit as shipped), with its schedule replaced
through the API by a 60 s interval anchored ~45 s ahead, so that its first run is due while the test watches. The run must be
created by the scheduler (``auto_scheduled``, the scheduler's idempotency key, created before
it was due, expected at a fire time of the schedule), reach Completed, and the check flow's
scheduler verdict must be OK. The server's log must hold no traceback.

With prefect 3.8.8 and SQLAlchemy 2.1 (the lock before issue 14) the scheduler service failed
every loop with ``Can't evaluate bulk DML statement`` and no run was ever created.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from tests.e2e.conftest import (
    ROOT,
    PrefectServer,
    postgres_database,
    prefect_cli,
    start_child,
    start_prefect_server,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(400)]

INTERVAL = 60
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def schedule_ahead(server: PrefectServer, deployment: dict[str, Any], anchor: datetime) -> dict[str, Any]:
    """The deployment's schedule replaced by a 60 s interval due at ``anchor``; the deployment again."""
    for schedule in deployment["schedules"]:
        server.api("DELETE", f"/deployments/{deployment['id']}/schedules/{schedule['id']}")
    server.api(
        "POST",
        f"/deployments/{deployment['id']}/schedules",
        [
            {
                "schedule": {"interval": INTERVAL, "anchor_date": anchor.isoformat(), "timezone": "UTC"},
                "active": True,
            }
        ],
    )
    found: dict[str, Any] = server.api("GET", f"/deployments/{deployment['id']}")
    return found


def config_text(primary: sandbox.SandboxServer, local_dir: Path) -> str:
    return f"""
[deployments]
flows = ["archive-binlogs"]

[servers.prod-primary]
host = "127.0.0.1"
port = {primary.port}
user = "root"
password_env = "E2E_PRIMARY_PASSWORD"

[locations.local]
url = "file://{local_dir}"
"""


def wait_for_scheduled_run(server: PrefectServer, deployment_id: str, timeout: float) -> dict[str, Any]:
    """The first run of the deployment that reached a terminal state."""
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = server.api(
            "POST",
            "/flow_runs/filter",
            {
                "flow_runs": {"deployment_id": {"any_": [deployment_id]}},
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 20,
                "offset": 0,
            },
        )
        done = [r for r in runs if r["state_type"] in TERMINAL]
        if done:
            return done[0]
        time.sleep(1)
    raise AssertionError(
        f"no run of the scheduled deployment finished within {timeout}s; runs: "
        f"{[(r['expected_start_time'], r['state_name'], r['auto_scheduled']) for r in runs]}\n"
        f"server log:\n{server.children[0].tail(30)}"
    )


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_scheduled_run_fires(
    database: str, cluster: list[sandbox.SandboxServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    primary = cluster[0]
    work = tmp_path_factory.mktemp(f"scheduled-{database}")
    with db.session(primary.spec()) as conn:  # a transaction, so that there is a binlog to close
        db.execute(conn, "CREATE DATABASE IF NOT EXISTS e2e_scheduled")
        db.execute(conn, "CREATE TABLE IF NOT EXISTS e2e_scheduled.t (id INT PRIMARY KEY, at DATETIME(6))")
        db.execute(conn, "REPLACE INTO e2e_scheduled.t VALUES (1, NOW(6))")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database()) if database == "postgresql" else None
        server = start_prefect_server(work / "server", url)
        stack.callback(server.stop)

        local_dir = work / "backups"
        config = work / "environment.toml"
        config.write_text(config_text(primary, local_dir))
        setup = run(
            [sys.executable, "-m", "deployments.setup", "--config", str(config), "--no-input"],
            server.env(E2E_PRIMARY_PASSWORD=primary.root_password),
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr

        anchor = (datetime.now(UTC) + timedelta(seconds=45)).replace(microsecond=0)
        [made] = server.api("POST", "/deployments/filter", {"limit": 10, "offset": 0})
        assert made["name"] == "prod-primary" and made["entrypoint"] == "flows/binlogs.py:archive_binlogs"
        deployment = schedule_ahead(server, made, anchor)
        assert [s["active"] for s in deployment["schedules"]] == [True]

        worker = start_child(
            f"worker-{uuid.uuid4().hex[:6]}",
            prefect_cli("worker", "start", "--pool", "mysqlops", "--type", "process"),
            server.env(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5"),
            server.logdir,
        )
        server.children.append(worker)

        finished = wait_for_scheduled_run(server, deployment["id"], timeout=150 + INTERVAL)
        states = (finished["state_name"], (finished.get("state") or {}).get("message"))
        assert finished["state_type"] == "COMPLETED", f"{states}\nworker:\n{worker.tail()}"
        # created by the scheduler service, not by run_deployment / the UI / the API
        assert finished["auto_scheduled"] is True
        schedule_id = deployment["schedules"][0]["id"]
        assert finished["idempotency_key"].startswith(f"scheduled {deployment['id']} {schedule_id} ")
        expected = datetime.fromisoformat(finished["expected_start_time"])
        offset = (expected - anchor).total_seconds()
        assert offset >= 0 and offset % INTERVAL == 0, f"{expected} is not a fire time of the schedule"
        assert datetime.fromisoformat(finished["created"]) < expected, "the run was not created ahead"
        assert finished["work_queue_name"] == made["work_queue_name"] == "default"
        assert set(finished["tags"]) >= {"mysqlops", "server:prod-primary"}

        # the run did its job: binlogs archived to the location
        scan = catalog.scan_location(Location("local", f"file://{local_dir}"))
        assert scan.errors == [] and any(b.server == "prod-primary" for b in scan.binlogs)

        # the check flow's view of the scheduler: alive for this deployment
        from prefect.client.orchestration import SyncPrefectClient

        from flows.check import schedule_checks

        with SyncPrefectClient(server.url) as client:
            [verdict] = schedule_checks(client, "mysqlops")
            # without the grace after a deploy, the run due last counts: it was created ahead
            [due] = schedule_checks(client, "mysqlops", grace=timedelta(0))
        assert verdict.status.value == "ok", verdict
        assert verdict.location == "archive-binlogs/prod-primary"
        assert due.status.value == "ok" and "ahead" in due.detail, due

        worker.stop()
        assert server.tracebacks() == [], "\n\n".join(server.tracebacks())[:6000]
