"""The ``check`` and ``backup-fleet`` flows against sandbox servers (plus pure check verdicts)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import catalog, checks
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from mysqlops.sql import ReplicaStatus

# --------------------------------------------------------------------------- pure verdicts


def test_binlog_retention_seconds() -> None:
    assert (
        checks.binlog_retention_seconds({"binlog_expire_logs_seconds": "3600", "expire_logs_days": "7"})
        == 3600
    )
    assert (
        checks.binlog_retention_seconds({"binlog_expire_logs_seconds": "0", "expire_logs_days": "2"})
        == 172800
    )
    assert checks.binlog_retention_seconds({"expire_logs_days": "0.5"}) == 43200
    assert checks.binlog_retention_seconds({"BINLOG_EXPIRE_LOGS_SECONDS": "0", "expire_logs_days": "0"}) == 0
    assert checks.binlog_retention_seconds({}) is None


def test_evaluate_binlog_verdicts() -> None:
    day = timedelta(hours=26)
    off = checks.evaluate_binlog("db1", {"log_bin": "OFF"}, day)
    assert [r.status for r in off] == [checks.Status.FAILED, checks.Status.SKIPPED]
    assert "log_bin = mysql-bin" in off[0].detail
    short = checks.evaluate_binlog(
        "db1", {"log_bin": "ON", "binlog_format": "ROW", "binlog_expire_logs_seconds": "3600"}, day
    )
    assert short[1].status is checks.Status.FAILED
    assert "binlog_expire_logs_seconds = 93600" in short[1].detail
    assert "expire_logs_days = 2" in short[1].detail
    ok = checks.evaluate_binlog("db1", {"log_bin": "ON", "expire_logs_days": "7"}, day)
    assert [r.status for r in ok] == [checks.Status.OK, checks.Status.OK]
    stmt = checks.evaluate_binlog("db1", {"log_bin": "1", "binlog_format": "STATEMENT"}, day)
    assert stmt[0].status is checks.Status.WARNING


def test_evaluate_replica() -> None:
    assert checks.evaluate_replica("r", None, 60).status is checks.Status.SKIPPED
    healthy = ReplicaStatus("10.0.0.1", 3306, "Yes", "Yes", 3)
    assert checks.evaluate_replica("r", healthy, 60).status is checks.Status.OK
    lagging = ReplicaStatus("10.0.0.1", 3306, "Yes", "Yes", 600)
    assert checks.evaluate_replica("r", lagging, 60).status is checks.Status.FAILED
    broken = ReplicaStatus("10.0.0.1", 3306, "No", "Yes", None, last_io_error="boom", last_io_errno=1236)
    result = checks.evaluate_replica("r", broken, 60)
    assert result.status is checks.Status.FAILED and "IO thread" in result.detail


def test_evaluate_disk_and_paths() -> None:
    policy = checks.CheckPolicy(min_free_bytes=10, free_space_factor=2)
    assert checks.evaluate_disk("l", "/x", 100, 1000, 40, policy).status is checks.Status.OK
    low = checks.evaluate_disk("l", "/x", 100, 1000, 60, policy)
    assert low.status is checks.Status.FAILED and "may not fit" in low.detail
    assert checks.local_path(Location("l", "file:///var/backups/my%20sql")) == "/var/backups/my sql"
    assert checks.local_path(Location("s", "s3://bucket/p")) is None
    with pytest.raises(Exception, match="positive"):
        checks.CheckPolicy(max_backup_age=timedelta(0))


def test_empty_location_fails_backup_age_and_restore_test(tmp_path: Any) -> None:
    scan = catalog.scan_location(Location("local", f"file://{tmp_path}"))
    results = checks.evaluate_location(scan, ["db1"], checks.CheckPolicy(), datetime.now(UTC), {"db1": True})
    by_check = {r.check: r for r in results}
    assert by_check["location readable"].status is checks.Status.OK
    assert by_check["backup age"].status is checks.Status.FAILED
    assert by_check["binlog archive age"].status is checks.Status.FAILED
    assert by_check["restore test"].status is checks.Status.FAILED
    off = checks.evaluate_location(scan, ["db1"], checks.CheckPolicy(), datetime.now(UTC), {"db1": False})
    assert {r.check: r.status for r in off}["binlog archive age"] is checks.Status.SKIPPED


def test_fresh_install_warns_until_the_first_archive_and_restore_test_are_due(
    local_location: Location,
) -> None:
    """Right after the first backup, a missing binlog archive and restore test are warnings
    that say when they are due; once the first backup is older than their limit, failures."""
    from types import SimpleNamespace

    now = datetime.now(UTC)

    def with_backup(age: timedelta) -> catalog.LocationScan:
        # only the fields the evaluators read of a complete backup's manifest
        backup: Any = SimpleNamespace(
            server="db1", status=SimpleNamespace(value="complete"), finished_at=now - age, backup_id="b1"
        )
        return catalog.LocationScan(local_location, backups=[backup])

    policy = checks.CheckPolicy()
    young = {
        r.check: r for r in checks.evaluate_location(with_backup(timedelta(minutes=5)), ["db1"], policy, now)
    }
    assert young["binlog archive age"].status is checks.Status.WARNING
    assert "no binlog archived yet" in young["binlog archive age"].detail
    assert "archive-binlogs/db1" in young["binlog archive age"].detail
    assert young["restore test"].status is checks.Status.WARNING
    assert "no restore test yet" in young["restore test"].detail
    assert young["backup age"].status is checks.Status.OK
    old = {
        r.check: r for r in checks.evaluate_location(with_backup(timedelta(hours=2)), ["db1"], policy, now)
    }
    assert old["binlog archive age"].status is checks.Status.FAILED
    assert "first backup is 2h 00m old" in old["binlog archive age"].detail
    assert old["restore test"].status is checks.Status.WARNING  # 8 days to the first test
    ancient = {
        r.check: r for r in checks.evaluate_location(with_backup(timedelta(days=9)), ["db1"], policy, now)
    }
    assert ancient["restore test"].status is checks.Status.FAILED


def _run(
    expected: datetime, created: datetime, state: str = "SCHEDULED", auto: bool = True
) -> checks.ScheduledRun:
    name = {"SCHEDULED": "Scheduled", "COMPLETED": "Completed", "RUNNING": "Running"}[state]
    return checks.ScheduledRun(expected, created, state, name, auto)


def test_evaluate_schedule_verdicts() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    due = now - timedelta(minutes=10)

    def facts(
        runs: list[checks.ScheduledRun], last_due: datetime | None = due, active: int = 1
    ) -> checks.ScheduleFacts:
        return checks.ScheduleFacts("backup/db1", 1, active, last_due, runs, "mysqlops/server-db1")

    upcoming = _run(now + hour, now - 2 * hour)
    ok = checks.evaluate_schedule(facts([_run(due, now - 2 * hour, "COMPLETED"), upcoming]), now)
    assert ok.status is checks.Status.OK and ok.location == "backup/db1" and "next run" in ok.detail
    assert checks.evaluate_schedule(facts([upcoming], last_due=None), now).status is checks.Status.OK
    # an active schedule without an upcoming run: the scheduler is dead
    dead = checks.evaluate_schedule(facts([_run(due, now - 2 * hour, "COMPLETED")]), now)
    assert dead.status is checks.Status.FAILED
    assert "no upcoming run" in dead.detail and "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED" in dead.detail
    # a manual run in the future is not the scheduler's
    manual = checks.evaluate_schedule(facts([_run(now + hour, now, auto=False)], last_due=None), now)
    assert manual.status is checks.Status.FAILED
    # the run that was due was never created
    missed = checks.evaluate_schedule(facts([upcoming]), now)
    assert (
        missed.status is checks.Status.FAILED
        and "no run was created for 2026-11-23 09:50:00Z" in missed.detail
    )
    # created after it was due: the scheduler was down and came back
    lagging = checks.evaluate_schedule(
        facts([_run(due, due + timedelta(minutes=3), "COMPLETED"), upcoming]), now
    )
    assert lagging.status is checks.Status.WARNING and "after it was due" in lagging.detail
    # due 10 minutes ago and still waiting: no worker
    waiting = checks.evaluate_schedule(facts([_run(due, now - hour), upcoming]), now)
    assert waiting.status is checks.Status.WARNING and "mysqlops/server-db1" in waiting.detail
    paused = checks.evaluate_schedule(facts([], active=0), now)
    assert paused.status is checks.Status.WARNING and "schedule resume" in paused.detail
    none = checks.evaluate_schedule(checks.ScheduleFacts("restore/x", 0, 0, None, []), now)
    assert none.status is checks.Status.SKIPPED


# ----------------------------------------------- deployments.setup config and automations (pure)


def test_setup_config_refuses_plaintext_secrets_and_typos() -> None:
    from deployments import setup
    from mysqlops.errors import ConfigError

    base = {"servers": {"db1": {"host": "h", "password_env": "DB1_PW"}}, "deployments": {"flows": []}}
    env = setup.parse(base)
    assert env.servers[0].secrets["password"].env == "DB1_PW" and env.work_pool == "mysqlops"
    with pytest.raises(ConfigError, match="plaintext secret"):
        setup.parse({"servers": {"db1": {"host": "h", "password": "hunter2"}}})
    assert setup.parse(
        {**base, "allow_plaintext_secrets": True, "servers": {"db1": {"password": "x"}}}
    ).servers
    with pytest.raises(ConfigError, match="unknown key"):
        setup.parse({"servers": {"db1": {"hots": "h"}}})
    with pytest.raises(ConfigError, match="not allowed"):
        setup.parse({"servers": {"../etc": {"host": "h"}}})
    with pytest.raises(ConfigError, match="notifications"):
        setup.parse({**base, "automations": {}})


def test_setup_resolves_secrets_env_prompt_or_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.setup import SecretSource, resolve_secret
    from mysqlops.errors import ConfigError

    source = SecretSource("servers.db1.password", env="MYSQLOPS_TEST_PW")
    monkeypatch.setenv("MYSQLOPS_TEST_PW", "from-env")
    assert resolve_secret(source, "stored", interactive=False) == "from-env"
    monkeypatch.delenv("MYSQLOPS_TEST_PW")
    assert resolve_secret(source, "stored", interactive=False) == "stored"
    assert resolve_secret(source, None, interactive=True, prompt=lambda _: "typed") == "typed"
    with pytest.raises(ConfigError, match="MYSQLOPS_TEST_PW is not set") as info:
        resolve_secret(source, None, interactive=False)
    assert "stored" not in str(info.value)
    assert resolve_secret(None, None, interactive=False) is None


def test_automations_absence_trigger_is_proactive_per_server() -> None:
    from deployments import automations

    config = automations.AlertConfig(backup_servers=("db1", "db2"), backup_absence=timedelta(hours=26))
    built = automations.build(config, uuid.uuid4())
    names = [a.name for a in built]
    assert names == [
        "mysqlops: flow run failed",
        "mysqlops: restore test failed",
        "mysqlops: no backup of db1 in 26h",
        "mysqlops: no backup of db2 in 26h",
    ]
    absence = built[2].trigger
    assert absence.posture == "Proactive" and absence.within == timedelta(hours=26)  # type: ignore[union-attr]
    assert absence.expect == {"prefect.flow-run.Completed"}  # type: ignore[union-attr]
    related = [r.model_dump(mode="json") for r in absence.match_related]  # type: ignore[union-attr]
    assert {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.server:db1"} in related
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "backup"} in related
    block_id = uuid.uuid4()
    again = automations.build(config, block_id)
    assert automations._comparable(again[0]) == automations._comparable(
        automations.build(config, block_id)[0]
    )


def test_automations_failure_alerts_have_a_realert_window_per_deployment() -> None:
    from deployments import automations, setup
    from mysqlops.errors import ConfigError

    base = {
        "servers": {"db1": {"host": "h", "password_env": "P"}},
        "notifications": {"block": "b", "url": "https://x"},
        "deployments": {"flows": []},
    }
    default = setup.parse({**base, "automations": {}}).alerts
    assert default is not None and default.realert == timedelta(hours=1)
    config = setup.parse({**base, "automations": {"realert_minutes": 30}}).alerts
    assert config is not None and config.realert == timedelta(minutes=30)
    failed, restore = automations.build(config, uuid.uuid4())[:2]
    for automation in (failed, restore):
        trigger: Any = automation.trigger
        assert trigger.within == timedelta(minutes=30) and trigger.threshold == 1
        assert trigger.for_each == {"related:deployment:prefect.resource.id"}
        assert "at most one alert per deployment per 30 min" in (automation.description or "")
    # the restore test is not also "a flow run failed"
    related = [r.model_dump(mode="json") for r in failed.trigger.match_related]  # type: ignore[union-attr]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "!restore-test"} in related
    every: Any = setup.parse({**base, "automations": {"realert_minutes": 0}}).alerts
    assert automations.build(every, uuid.uuid4())[0].trigger.within == timedelta(0)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="realert_minutes"):
        setup.parse({**base, "automations": {"realert_minutes": -5}})


# ------------------------------------------------------------------------------ flow tests


def latest_artifact(key: str) -> Any:
    """The newest artifact with ``key``, or None.

    The raw endpoint with every filter spelled out (no ``null`` filters: prefect 3.8.8 with
    fastapi 0.154 answered 422 to them; this works on every version).
    """
    from prefect import get_client

    with get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/artifacts/filter",
            json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0},
        )
    found = response.json()
    return found[0] if found else None


def _save_server(
    block: str, server: sandbox.SandboxServer, user: str = "root", password: str | None = None
) -> None:
    from blocks import MySQLServer

    MySQLServer(
        host="127.0.0.1",
        port=server.port,
        user=user,
        password=SecretStr(password if password is not None else server.root_password),
    ).save(block, overwrite=True)


def _save_location(block: str, path: str) -> Location:
    from blocks import BackupLocation

    BackupLocation(url=f"file://{path}").save(block, overwrite=True)
    return Location(block, f"file://{path}")


@pytest.fixture(scope="module")
def fleet_env(
    cluster: list[sandbox.SandboxServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Blocks: two real servers, one that does not answer, one local location."""
    from blocks import MySQLServer

    primary, replica = cluster
    suffix = uuid.uuid4().hex[:6]
    names = {"a": f"fa-{suffix}", "b": f"fb-{suffix}", "broken": f"fx-{suffix}", "loc": f"fl-{suffix}"}
    with db.session(primary.spec()) as conn:
        db.execute(conn, "CREATE DATABASE IF NOT EXISTS fleet_shop")
        db.execute(conn, "CREATE TABLE IF NOT EXISTS fleet_shop.t (id INT PRIMARY KEY, v VARCHAR(20))")
        db.execute(conn, "REPLACE INTO fleet_shop.t VALUES (1, 'a'), (2, 'b')")
    _save_server(names["a"], primary)
    _save_server(names["b"], replica)
    MySQLServer(host="127.0.0.1", port=sandbox.free_port(), user="root", password=SecretStr("x")).save(
        names["broken"], overwrite=True
    )
    path = str(tmp_path_factory.mktemp("fleet") / "backups")
    location = _save_location(names["loc"], path)
    yield {**names, "location": location, "primary": primary, "replica": replica}


@pytest.mark.flows
@pytest.mark.integration
def test_backup_fleet_one_failure_does_not_stop_the_others(fleet_env: dict[str, Any]) -> None:
    from flows.fleet import backup_fleet

    servers = [fleet_env["a"], fleet_env["broken"], fleet_env["b"]]
    state = backup_fleet(servers=servers, locations=[fleet_env["loc"]], max_concurrency=2, return_state=True)
    assert state.is_failed()
    assert fleet_env["broken"] in (state.message or "")
    assert fleet_env["a"] not in (state.message or "").split(";")[0]
    scan = catalog.scan_location(fleet_env["location"])
    assert {m.server for m in scan.backups} == {fleet_env["a"], fleet_env["b"]}
    artifact = latest_artifact("backup-fleet")
    assert artifact is not None
    rows = artifact["data"] if isinstance(artifact["data"], list) else json.loads(str(artifact["data"]))
    status = {r["server"]: r["status"] for r in rows}
    assert status == {fleet_env["a"]: "ok", fleet_env["broken"]: "FAILED", fleet_env["b"]: "ok"}


@pytest.mark.flows
@pytest.mark.integration
def test_check_passes_after_backup_and_binlog_archive(fleet_env: dict[str, Any]) -> None:
    from flows.backup import backup
    from flows.binlogs import archive_binlogs
    from flows.check import check

    server, loc = fleet_env["a"], fleet_env["loc"]
    if not any(m.server == server for m in catalog.scan_location(fleet_env["location"]).backups):
        backup(server=server, locations=[loc])
    archive_binlogs(server=server, locations=[loc])
    rows = check(servers=[server], locations=[loc], max_restore_test_age_days=None, min_free_gb=0)
    by_check = {(r["location"], r["check"]): r["status"] for r in rows}
    assert by_check[("", "reachable")] == "ok"
    assert by_check[("", "privileges")] == "ok"
    assert by_check[("", "binlog")] == "ok"
    assert by_check[("", "binlog retention")] == "ok"
    assert by_check[("", "replication")] == "skipped"
    assert by_check[(loc, "backup age")] == "ok"
    assert by_check[(loc, "binlog archive age")] == "ok"
    assert by_check[(loc, "restore test")] == "skipped"
    assert by_check[(loc, "free disk")] == "ok"
    assert latest_artifact("check") is not None


@pytest.mark.flows
@pytest.mark.integration
def test_check_fails_and_names_each_problem(fleet_env: dict[str, Any]) -> None:
    from flows.check import check

    replica: sandbox.SandboxServer = fleet_env["replica"]
    weak = f"fw-{uuid.uuid4().hex[:6]}"
    with db.session(replica.spec()) as conn:
        db.execute(conn, "CREATE USER IF NOT EXISTS 'weak'@'127.0.0.1' IDENTIFIED BY 'weak-pw-1'")
        db.execute(conn, "GRANT SELECT ON *.* TO 'weak'@'127.0.0.1'")
        old = db.scalar(conn, "SELECT @@GLOBAL.binlog_expire_logs_seconds")
        db.execute(conn, "SET GLOBAL binlog_expire_logs_seconds = 3600")
    _save_server(weak, replica, user="weak", password="weak-pw-1")
    try:
        state = check(
            servers=[weak, fleet_env["broken"]],
            locations=[fleet_env["loc"]],
            min_free_gb=0,
            return_state=True,
        )
    finally:
        with db.session(replica.spec()) as conn:
            db.execute(conn, f"SET GLOBAL binlog_expire_logs_seconds = {int(old or 0)}")
    assert state.is_failed()
    message = state.message or ""
    for expected in (
        f"{weak} privileges",
        f"{weak} binlog retention",
        f"{weak} / {fleet_env['loc']} backup age",
        f"{weak} / {fleet_env['loc']} restore test",
        f"{fleet_env['broken']} reachable",
    ):
        assert expected in message, (expected, message)
    artifact = latest_artifact("check")
    assert artifact is not None
    text = str(artifact["data"])
    assert "GRANT" in text and "weak-pw-1" not in text and "binlog_expire_logs_seconds = 93600" in text


@pytest.mark.integration
def test_no_secret_in_check_results(cluster: list[sandbox.SandboxServer], tmp_path: Any) -> None:
    """Server checks never echo the password, also when the login fails."""
    primary = cluster[0]
    spec = primary.spec(name="s1").with_credentials("root", "definitely-wrong-pw")
    facts = checks.server_checks(spec, checks.CheckPolicy())
    assert facts.results[0].status is checks.Status.FAILED
    assert all("definitely-wrong-pw" not in r.detail for r in facts.results)
    assert os.path.exists(primary.socket)


@pytest.mark.flows
def test_server_tag_limit_serializes_tagged_task_runs() -> None:
    """The mechanism setup relies on, in prefect 3.9: task runs tagged ``server:<name>``
    wait for the global concurrency limit ``tag:server:<name>`` (limit 1)."""
    import time

    from prefect import flow, get_client, tags, task
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from deployments.setup import tag_limit_name
    from flows.fleet import server_tag

    server = f"lim-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=tag_limit_name(server), limit=1)
        )

    @task
    def hold(i: int) -> tuple[float, float]:
        start = time.monotonic()
        time.sleep(1.0)
        return start, time.monotonic()

    @flow
    def two_on_one_server() -> list[tuple[float, float]]:
        with tags(server_tag(server)):
            futures = [hold.submit(i) for i in range(2)]
        return [f.result() for f in futures]

    spans = sorted(two_on_one_server())
    assert spans[0][1] <= spans[1][0], f"tagged task runs overlapped: {spans}"


@pytest.mark.flows
def test_check_fails_when_an_active_schedule_has_no_upcoming_run() -> None:
    """The test harness's server runs no scheduler service: a deployment with an active
    schedule gets no runs, as on a server whose scheduler is dead. The check flow fails with
    the fix, and logs no traceback (a Failed state, not an exception)."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.schedules import CronSchedule

    from flows.check import check

    tag = f"sched-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(f"probe-{tag}")
        client.create_deployment(
            flow_id=flow_id,
            name="every-5-minutes",
            entrypoint="flows/smoke.py:smoke",
            tags=[tag],
            schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron="*/5 * * * *"), active=True)],
        )
        paused = client.create_deployment(
            flow_id=flow_id,
            name="paused",
            entrypoint="flows/smoke.py:smoke",
            tags=[tag],
            schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron="0 1 * * *"), active=False)],
        )
    state = check(servers=[], locations=[], deployments_tag=tag, return_state=True)
    assert state.is_failed()
    assert state.message == f"1 check(s) failed: prefect / probe-{tag}/every-5-minutes schedule"
    artifact = latest_artifact("check")
    rows = artifact["data"] if isinstance(artifact["data"], list) else json.loads(str(artifact["data"]))
    verdicts = {r["location"]: r for r in rows}
    dead = verdicts[f"probe-{tag}/every-5-minutes"]
    assert dead["status"] == "failed" and "no upcoming run" in dead["detail"]
    assert "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED" in dead["detail"]
    assert verdicts[f"probe-{tag}/paused"]["status"] == "warning"
    import time

    # logs reach the API in batches, in no particular order: wait for the flow's own last line
    # (its Failed state) AND the check's line, not for the first "Finished in state" (a task's)
    deadline, text = time.monotonic() + 30, ""
    while (
        not ("no upcoming run" in text and "Finished in state Failed" in text) and time.monotonic() < deadline
    ):
        time.sleep(0.5)
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
            )
        text = "\n".join(entry.message for entry in logs)
    assert "no upcoming run" in text
    assert "Traceback" not in text, text
    assert paused is not None


@pytest.mark.flows
def test_check_leaves_on_demand_deployments_out() -> None:
    """A deployment without a schedule (restore/on-demand, pin-backup/on-demand, a server's flow
    with schedule "") runs on demand: the scheduler check has nothing to say about it, so it is
    no row at all (not a "skipped" schedule check); a tag with only such deployments is one
    skipped row for the tag."""
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    from flows.check import schedule_checks

    tag = f"ondemand-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(f"probe-{tag}")
        client.create_deployment(
            flow_id=flow_id, name="on-demand", entrypoint="flows/smoke.py:smoke", tags=[tag]
        )
        assert [(r.location, r.status) for r in schedule_checks(client, tag)] == [("", checks.Status.SKIPPED)]
        nightly = DeploymentScheduleCreate(schedule=CronSchedule(cron="0 1 * * *"), active=True)
        client.create_deployment(
            flow_id, "paused", entrypoint="flows/smoke.py:smoke", tags=[tag], schedules=[nightly], paused=True
        )
        results = schedule_checks(client, tag)
    assert [(r.location, r.status) for r in results] == [(f"probe-{tag}/paused", checks.Status.WARNING)]


@pytest.mark.flows
def test_setup_deletes_only_its_own_environments_stale_deployments_on_every_page() -> None:
    """Two environment files set up on one Prefect server: the second never deletes the
    first's deployments (each setup's tag names its environment), and a setup that drops
    servers deletes all its stale deployments however many pages they fill."""
    import asyncio

    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from deployments import servers as sd

    uid = uuid.uuid4().hex[:6]

    def settings(environment: str, names: list[str]) -> sd.DeploymentSettings:
        out = sd.DeploymentSettings(environment=environment)
        out.servers = [
            sd.ServerDeployments(n, n, ["check"], {"check": ""}, {}, ["local"], None, sd.DEFAULT_POLICY)
            for n in names
        ]
        return out

    class Log:
        def __init__(self) -> None:
            self.rows: list[tuple[str, str, str]] = []

        def add(self, action: str, kind: str, name: str) -> None:
            self.rows.append((action, kind, name))

    pool = f"pool-{uid}"
    prod = [f"p{i}-{uid}" for i in range(5)]
    staging = [f"s0-{uid}"]

    async def scenario() -> tuple[set[str], set[str], Log]:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            for env, names in ((f"prod-{uid}", prod), (f"staging-{uid}", staging)):
                want = sd.wanted(settings(env, names), pool, lambda n: f"server-{n}")
                await sd.apply(client, want, Log(), tag=sd.setup_tag(env), page=2)
            after_staging = {d.name for d in await sd.read_all_deployments(client, sd.MANAGED_TAG, page=2)}
            log = Log()  # prod drops four of its five servers
            want = sd.wanted(settings(f"prod-{uid}", prod[:1]), pool, lambda n: f"server-{n}")
            await sd.apply(client, want, log, tag=sd.setup_tag(f"prod-{uid}"), page=2)
            after_prod = {d.name for d in await sd.read_all_deployments(client, sd.MANAGED_TAG, page=2)}
            return after_staging, after_prod, log

    after_staging, after_prod, log = asyncio.run(scenario())
    assert set(prod) | set(staging) <= after_staging  # staging's setup left prod's alone
    assert {n for n in after_prod if n.endswith(uid)} == {prod[0], *staging}
    assert sorted(name for action, _, name in log.rows if action == "deleted") == sorted(
        f"check/{n} (no longer in the file)" for n in prod[1:]
    )


@pytest.mark.flows
def test_setup_saves_the_retention_policy_block_the_report_names() -> None:
    import asyncio

    from blocks import RetentionPolicyBlock
    from deployments import setup
    from mysqlops.retention import RetentionPolicy

    policy = {"keep_daily": 9, "keep_weekly": 3, "min_redundancy": 1}
    env = setup.parse(
        {
            "servers": {"db1": {"host": "h"}},
            "locations": {"local": {"url": "file:///x"}},
            "deployments": {"retention_policy": policy},
        }
    )
    lines: list[str] = []
    asyncio.run(setup.apply_retention_block(env, setup.SetupLog(lines.append)))
    asyncio.run(setup.apply_retention_block(env, setup.SetupLog(lines.append)))
    saved = RetentionPolicyBlock.load(setup.RETENTION_BLOCK)
    assert saved.to_policy() == RetentionPolicy.from_mapping(policy)
    assert [line.split()[0] for line in lines] == ["created", "unchanged"] or lines[-1].startswith(
        "unchanged"
    )
