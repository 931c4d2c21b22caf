"""The operator guide (deployments/README.md) followed as written, on a fresh install.

A clean ``git clone`` of this repository (its committed state) into a temporary directory;
there, the guide's commands run in a shell, each one checked to be written in the guide,
adapted only in host, port, paths and credentials: ``make setup`` (with
``UV_COMPILE_BYTECODE=0`` to spare the CPU), ``prefect server start`` from the clone's
virtualenv (sandbox: loopback, a free port, SQLite, short scheduler loops), ``prefect config
set PREFECT_API_URL``, ``python -m mysqlops users`` on each server (a primary and a GTID
replica, sandboxes), the example environment.toml (hosts, ports, the local path, the S3
endpoint of a moto server and the webhook URL changed; nothing else), setup, ``prefect deploy
--all``, ``make worker``, then every scheduled deployment run once with ``prefect deployment
run ... --watch``. Then what the guide says about the results is checked: the storage paths,
the artifact list, the report files, the first check's warnings, no alert, no traceback.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from tests.e2e.conftest import ROOT, PrefectServer, WebhookReceiver, start_child, start_prefect_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(900)]

GUIDE = ROOT / "deployments" / "README.md"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def guide_servers(sandbox_root: str) -> Iterator[list[sandbox.SandboxServer]]:
    """db1 and db2 of the guide: a primary and its GTID replica, of their own."""
    from mysqlops.replication import wire_sandbox_replication

    servers = sandbox.start_cluster(os.path.join(sandbox_root, "guide"), replicas=1, prefix="g")
    try:
        wire_sandbox_replication(servers[0], servers[1:])
        with db.session(servers[0].spec()) as conn:  # a production primary holds data
            db.execute(conn, "CREATE DATABASE shop")
            db.execute(conn, "CREATE TABLE shop.orders (id INT PRIMARY KEY, total DECIMAL(10,2))")
            db.execute(conn, "INSERT INTO shop.orders VALUES (1, 9.99), (2, 120.00), (3, 0.50)")
        yield servers
    finally:
        sandbox.stop_servers(servers)


class Shell:
    """Runs the guide's commands in the clone, each checked to be in the guide."""

    def __init__(self, clone: Path, env: dict[str, str], guide: str) -> None:
        self.clone, self.env, self.guide = clone, env, guide

    def __call__(self, written: str, adapted: str | None = None, timeout: float = 300) -> str:
        assert written in self.guide, f"the guide does not say: {written}"
        done = subprocess.run(
            ["bash", "-c", adapted or written],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        assert done.returncode == 0, f"{adapted or written}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr


def adapt_environment(text: str, primary: int, replica: int, local: Path, moto: str, hook: str) -> str:
    """The example environment.toml with this machine's hosts, ports, paths and endpoints."""
    replacements = [
        ('host = "db1.internal.example.com"\nport = 3306', f'host = "127.0.0.1"\nport = {primary}'),
        ('host = "db2.internal.example.com"\nport = 3306', f'host = "127.0.0.1"\nport = {replica}'),
        ('url = "file:///var/backups/mysql"', f'url = "file://{local}"'),
        ('# endpoint_url = "https://minio.internal:9000"', f'endpoint_url = "{moto}"'),
        ("https://hooks.slack.com/services/", f"{hook}/services/"),
    ]
    for old, new in replacements:
        assert old in text, f"the example environment changed: {old!r} not found"
        text = text.replace(old, new)
    return text


def guide_artifact_patterns(guide: str) -> list[tuple[re.Pattern[str], str]]:
    """(key regex, flows) for every row of the guide's artifact table."""
    rows = []
    for line in guide.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith(("`", "(progress)")):
            continue
        for key in re.findall(r"`([^`]+)`", cells[0]):
            pattern = re.escape(key)
            pattern = re.sub(r"<[a-z]+>", "[^ ]+", pattern.replace(r"\<", "<").replace(r"\>", ">"))
            prefix = "progress:" if cells[0].startswith("(progress)") else ""
            rows.append((re.compile(f"^{prefix}{pattern}$"), cells[1]))
    return rows


def deployment_runs(server: PrefectServer, deployment_id: str, states: list[str]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = server.api(
        "POST",
        "/flow_runs/filter",
        {
            "flow_runs": {
                "deployment_id": {"any_": [deployment_id]},
                "state": {"type": {"any_": states}},
            },
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": 50,
            "offset": 0,
        },
    )
    return runs


def wait_until_clear(server: PrefectServer, deployment_id: str) -> None:
    """No run of the deployment is going or due in the next 60 s: frequent jobs skip a run
    while another one runs (CANCEL_NEW), so a manual run (which takes ~20 s to start on a
    busy machine: the CLI, the worker's poll, the flow-run process) must not race a
    scheduled one."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        soon = datetime.now(UTC) + timedelta(seconds=60)
        busy = [
            r
            for r in deployment_runs(server, deployment_id, ["SCHEDULED", "PENDING", "RUNNING"])
            if r["state_type"] != "SCHEDULED" or datetime.fromisoformat(r["expected_start_time"]) <= soon
        ]
        if not busy:
            return
        time.sleep(2)
    raise AssertionError("a scheduled run of the deployment did not finish in 180 s")


def test_operator_guide_on_a_fresh_install(
    guide_servers: list[sandbox.SandboxServer],
    moto_server: str,
    webhook_receiver: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import boto3

    guide = GUIDE.read_text()
    primary, replica = guide_servers
    work = tmp_path_factory.mktemp("guide")
    clone = work / "mysqlops"
    cloned = subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], capture_output=True, text=True)
    assert cloned.returncode == 0, cloned.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MYSQLOPS_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{Path.home() / '.local' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        PREFECT_HOME=str(work / "prefect-home"),  # the operator's ~/.prefect
        UV_COMPILE_BYTECODE="0",
        AWS_DEFAULT_REGION="us-east-1",
    )
    sh = Shell(clone, env, guide)

    # 1. Install
    sh("make setup                    # uv, the locked virtualenv, mariadb/mysql client tools")
    assert "export PREFECT_SERVER_ANALYTICS_ENABLED=false" in guide
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # `uv run prefect server start` on the server host: the clone's virtualenv, loopback, a free port
    assert "uv run prefect server start --host 0.0.0.0" in guide
    server = start_prefect_server(work / "server", python=str(clone / ".venv" / "bin" / "python"))
    try:
        sh(
            "uv run prefect config set PREFECT_API_URL=http://prefect-host:4200/api",
            f"uv run prefect config set PREFECT_API_URL={server.url}",
        )

        # the database accounts, on every server
        env.update(
            MYSQLOPS_ADMIN_PASSWORD=primary.root_password,
            MYSQLOPS_PROD_PRIMARY_PASSWORD="Bk-" + secrets.token_urlsafe(12),
            MYSQLOPS_PROD_REPLICA_PASSWORD="Mon-" + secrets.token_urlsafe(12),
        )
        for line, db in (
            ("--host db1.internal.example.com", primary),
            ("--host db2.internal.example.com", replica),
        ):
            written = next(
                cmd for cmd in guide.splitlines() if "python -m mysqlops users" in cmd and line in cmd
            )
            env["MYSQLOPS_ADMIN_PASSWORD"] = db.root_password
            out = sh(
                written,
                written.replace(line, f"--host 127.0.0.1 --port {db.port}").replace("10.0.0.%", "127.0.0.1"),
            )
            assert "GRANT" in out and env["MYSQLOPS_PROD_PRIMARY_PASSWORD"] not in out
        del env["MYSQLOPS_ADMIN_PASSWORD"]

        # 2. Configure: the example, adapted in hosts, ports, path, endpoint, webhook
        sh("cp deployments/environment.example.toml environment.toml     # edit servers, locations, webhook")
        local = work / "backups"
        config = clone / "environment.toml"
        config.write_text(
            adapt_environment(
                config.read_text(), primary.port, replica.port, local, moto_server, webhook_receiver.url
            )
        )
        bucket = tomllib.loads(config.read_text())["locations"]["s3"]["url"].split("/")[2]
        s3 = boto3.client(
            "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=bucket)
        env.update(
            MYSQLOPS_S3_KEY_ID="testing",
            MYSQLOPS_S3_SECRET_KEY="testing",
            MYSQLOPS_SLACK_WEBHOOK_PATH="hook-path",
        )
        out = sh("uv run python -m deployments.setup --config environment.toml")
        assert "created    automation                   mysqlops: restore test failed" in out
        assert "created    deployment                   backup/prod-primary" in out  # servers as data
        assert env["MYSQLOPS_PROD_PRIMARY_PASSWORD"] not in out

        # 3. Deploy
        sh("uv run prefect --no-prompt deploy --all", timeout=300)
        deployments = {
            f"{server.api('GET', '/flows/' + d['flow_id'])['name']}/{d['name']}": d
            for d in server.api("POST", "/deployments/filter", {"limit": 50, "offset": 0})
        }

        # 4. Start a worker
        assert "make worker          # = uv run python -m deployments.worker --pool mysqlops" in guide
        worker = start_child("guide-worker", ["make", "worker"], dict(env), work, cwd=clone)
        server.children.append(worker)

        started = datetime.now(UTC)
        finished: dict[str, dict[str, Any]] = {}
        for name in (
            "backup/prod-primary",
            "check/prod-primary",
            "archive-binlogs/prod-primary",
            "replica-health/prod-replica",
            "restore-test/prod-primary",
            "backup-report/weekly",
            "apply-retention/prod-primary",
            "backup-inventory/hourly",
        ):
            deployment = deployments[name]
            wait_until_clear(server, deployment["id"])
            before = {r["id"] for r in deployment_runs(server, deployment["id"], sorted(TERMINAL))}
            sh(f"uv run prefect deployment run '{name}' --watch", timeout=400)
            [run] = [
                r
                for r in deployment_runs(server, deployment["id"], sorted(TERMINAL))
                if r["id"] not in before
            ][:1]
            assert run["state_type"] == "COMPLETED", (
                name,
                run["state_name"],
                run["state"]["message"],
                worker.tail(),
            )
            finished[name] = run
        # run again, after archive-binlogs and restore-test: nothing left to warn about
        wait_until_clear(server, deployments["check/prod-primary"]["id"])
        before = {
            r["id"] for r in deployment_runs(server, deployments["check/prod-primary"]["id"], ["COMPLETED"])
        }
        sh("uv run prefect deployment run 'check/prod-primary' --watch", timeout=400)
        [second_check] = [
            r["id"]
            for r in deployment_runs(server, deployments["check/prod-primary"]["id"], ["COMPLETED"])
            if r["id"] not in before
        ]

        # 5. Read the results: the first check warned (no binlog archive, no restore test yet)
        first_check = finished["check/prod-primary"]["id"]
        artifacts = server.api(
            "POST",
            "/artifacts/filter",
            {
                "artifacts": {"flow_run_id": {"any_": [r["id"] for r in finished.values()]}},
                "limit": 200,
                "offset": 0,
            },
        )
        [check_rows] = [
            a["data"] for a in artifacts if a["flow_run_id"] == first_check and a["key"] == "check"
        ]
        check_rows = check_rows if isinstance(check_rows, list) else json.loads(check_rows)
        verdicts = {(r["location"], r["check"]): r for r in check_rows}
        archived_before = [
            r
            for r in deployment_runs(server, deployments["archive-binlogs/prod-primary"]["id"], ["COMPLETED"])
            if datetime.fromisoformat(r["end_time"])
            < datetime.fromisoformat(finished["check/prod-primary"]["start_time"])
        ]
        for location in ("local", "s3"):
            binlog = verdicts[(location, "binlog archive age")]
            if not archived_before:  # (a scheduled archive run may have been first)
                assert binlog["status"] == "warning" and "no binlog archived yet" in binlog["detail"], binlog
            restore = verdicts[(location, "restore test")]
            assert restore["status"] == "warning" and "no restore test yet" in restore["detail"], restore
        assert not [r for r in check_rows if r["status"] == "failed"], check_rows
        schedules = [r for r in check_rows if r["server"] == "prefect"]
        # setup's 6 per-server deployments + the weekly report and the hourly inventory; the
        # on-demand deployments of prefect.yaml have no schedule to check: no row at all
        assert len(schedules) == 8 and {r["status"] for r in schedules} == {"ok"}, schedules
        assert not [r for r in schedules if r["location"].endswith("/on-demand")], schedules
        logs = server.api(
            "POST",
            "/logs/filter",
            {"logs": {"flow_run_id": {"any_": [first_check]}}, "limit": 200, "offset": 0},
        )
        assert not any("Traceback" in entry["message"] for entry in logs)

        [again] = server.api(
            "POST",
            "/artifacts/filter",
            {
                "artifacts": {"flow_run_id": {"any_": [second_check]}, "key": {"any_": ["check"]}},
                "limit": 5,
                "offset": 0,
            },
        )
        again_rows = again["data"] if isinstance(again["data"], list) else json.loads(again["data"])
        later = {(r["location"], r["check"]): r["status"] for r in again_rows}
        for location in ("local", "s3"):
            assert later[(location, "binlog archive age")] == "ok", again_rows
            assert later[(location, "restore test")] == "ok", again_rows
        assert later[("", "replication")] == "skipped"  # the backup account reads the replica status

        # the storage paths of the guide
        assert "<location>/<server>/full/<backup-id>/manifest.json" in guide
        manifests = list(local.glob("prod-primary/full/*/manifest.json"))
        assert len(manifests) == 1, sorted(str(p) for p in local.rglob("*"))[:40]
        assert list(manifests[0].parent.glob("restore-test-*.json")), (
            "no restore certificate next to the backup"
        )
        assert list(local.glob("prod-primary/binlogs/*.json")), "no archived binlog"
        reports = list(local.glob("reports/*/report.html"))
        assert len(reports) == 1, "the weekly report wrote no report.html"
        assert list(reports[0].parent.glob("*.csv")) and list(reports[0].parent.glob("*.parquet"))

        # the artifact list of the guide is complete for what ran
        rows = guide_artifact_patterns(guide)
        flow_of = {r["id"]: name.split("/")[0] for name, r in finished.items()}
        for artifact in artifacts:
            label = artifact["key"] or f"progress:{(artifact.get('description') or '').split(':')[0]}"
            matching = [flows for pattern, flows in rows if pattern.match(label)]
            assert matching, f"artifact {label!r} of {flow_of[artifact['flow_run_id']]} is not in the guide"
            assert any(flow_of[artifact["flow_run_id"]] in flows for flows in matching), (label, matching)

        # nothing failed, so nothing alerted; the server logged no traceback
        assert webhook_receiver.requests == []
        assert server.tracebacks() == [], "\n\n".join(server.tracebacks())[:6000]
        assert started < datetime.now(UTC)

        # the worker stops cleanly (Ctrl-C / SIGTERM)
        worker.stop()
    finally:
        server.stop()
