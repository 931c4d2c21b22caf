"""End to end: servers as data. ``deployments.setup`` makes the per-server deployments from the
environment file (a new server = one TOML table + one setup run; a server removed from the file
loses the deployments setup made, nothing else), and two workers share the runs of three
servers while the per-server limit holds (never two runs of one server at once)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from mysqlops.adapters import sandbox
from tests.e2e.conftest import ROOT, PrefectServer, start_child

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(420)]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
NAMES = ["sd1", "sd2", "sd3"]


def config_text(servers: list[sandbox.SandboxServer], local_dir: Path) -> str:
    text = f"""
[work_pool]
name = "mysqlops"
type = "process"

[concurrency]
per_server = 1

[deployments]
timezone = "UTC"
flows = ["backup", "restore-test"]
schedules = {{ backup = "", restore-test = "" }}   # on demand only: the test triggers the runs

[locations.local]
url = "file://{local_dir}"
"""
    for s in servers:
        text += f"""
[servers.{s.name}]
host = "127.0.0.1"
port = {s.port}
user = "root"
password_env = "E2E_PW_{s.name.upper()}"
"""
    return text


def setup(server: PrefectServer, config: Path, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "deployments.setup", "--config", str(config), "--no-input"],
        cwd=ROOT,
        env=server.env(**passwords),
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def changes(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [
        " ".join(line.split())
        for line in out.stdout.splitlines()
        if line.startswith(("created", "updated", "deleted"))
    ]


@pytest.fixture(scope="module")
def three_servers(sandbox_root: str) -> Iterator[list[sandbox.SandboxServer]]:
    started: list[sandbox.SandboxServer] = []
    try:
        for i, name in enumerate(NAMES):
            started.append(sandbox.start_server(sandbox_root, name, server_id=761 + i))
        yield started
    finally:
        for s in started:
            sandbox.stop_server(s)


def test_servers_as_data_three_servers_two_workers(
    prefect_server: PrefectServer, three_servers: list[sandbox.SandboxServer], tmp_path: Path
) -> None:
    server = prefect_server
    passwords = {f"E2E_PW_{s.name.upper()}": s.root_password for s in three_servers}
    config = tmp_path / "environment.toml"
    local_dir = tmp_path / "backups"

    # two servers, then a third: one table and one setup run, nothing else changes
    config.write_text(config_text(three_servers[:2], local_dir))
    first = setup(server, config, passwords)
    assert "created deployment backup/sd1" in changes(first), first.stdout
    assert "created deployment restore-test/sd2" in changes(first), first.stdout
    # a deployment setup did not make is never touched
    flow_id = server.api("POST", "/flows/", {"name": "backup"})["id"]
    server.api(
        "POST",
        "/deployments/",
        {"name": "hand-made", "flow_id": flow_id, "entrypoint": "flows/backup.py:backup"},
    )
    config.write_text(config_text(three_servers, local_dir))
    second = setup(server, config, passwords)
    assert [c for c in changes(second) if "deployment" in c] == [
        "created deployment backup/sd3",
        "created deployment restore-test/sd3",
    ], second.stdout
    assert "created block mysql-server sd3" in changes(second)
    assert changes(setup(server, config, passwords)) == []  # idempotent

    deployments = {
        (d["entrypoint"], d["name"]): d
        for d in server.api("POST", "/deployments/filter", {"limit": 200, "offset": 0})
    }
    for name in NAMES:
        d = deployments[("flows/backup.py:backup", name)]
        assert d["work_queue_name"] == f"server-{name}" and d["work_pool_name"] == "mysqlops"
        # the environment's own setup tag (environment.toml: "environment"): only its setup deletes it
        assert set(d["tags"]) == {
            "mysqlops",
            f"server:{name}",
            "mysqlops-setup",
            "mysqlops-setup:environment",
        }
        assert d["schedules"] == [] and d["parameters"] == {"server": name, "locations": ["local"]}
        assert d["parameter_openapi_schema"]["properties"]["server"]["type"] == "string"
        r = deployments[("flows/restore.py:restore_test", name)]
        assert r["work_queue_name"] == "default" and r["parameters"]["servers"] == [name]
        assert r["parameter_openapi_schema"]["properties"]["servers"]["description"]  # the form's help
    assert ("flows/backup.py:backup", "hand-made") in deployments

    workers = [
        start_child(
            f"worker-{w}",
            [sys.executable, "-m", "deployments.worker", "--pool", "mysqlops", "--name", w, "--limit", "1"],
            server.env(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5"),
            server.logdir,
        )
        for w in ("w1", "w2")
    ]
    server.children.extend(workers)
    try:
        started = time.monotonic()
        run_ids: dict[str, str] = {}
        for _ in range(2):
            for name in NAMES:
                d = deployments[("flows/backup.py:backup", name)]
                run_ids[server.api("POST", f"/deployments/{d['id']}/create_flow_run", {})["id"]] = name
        deadline = time.monotonic() + 300
        while True:
            runs = {i: server.api("GET", f"/flow_runs/{i}") for i in run_ids}
            if all(r["state_type"] in TERMINAL for r in runs.values()):
                break
            assert time.monotonic() < deadline, {i: r["state_name"] for i, r in runs.items()}
            time.sleep(1)
        elapsed = time.monotonic() - started
        bad = {
            i: (r["state_name"], (r.get("state") or {}).get("message"))
            for i, r in runs.items()
            if r["state_type"] != "COMPLETED"
        }
        assert not bad, f"{bad}\n{workers[0].tail()}\n{workers[1].tail()}"
        # the per-server limit: never two runs of one server at once
        for name in NAMES:
            spans = sorted(
                (datetime.fromisoformat(r["start_time"]), datetime.fromisoformat(r["end_time"]))
                for i, r in runs.items()
                if run_ids[i] == name
            )
            assert len(spans) == 2 and spans[0][1] <= spans[1][0], (
                f"two backups of {name} overlapped: {spans}"
            )
            assert all(
                r["work_queue_name"] == f"server-{name}" for i, r in runs.items() if run_ids[i] == name
            )
        # spread over both workers (each takes one run at a time)
        ran_by = {w.name: {i for i in run_ids if i in w.log.read_text(errors="replace")} for w in workers}
        assert ran_by["worker-w1"] and ran_by["worker-w2"], ran_by
        assert ran_by["worker-w1"] | ran_by["worker-w2"] == set(run_ids)
        print(
            f"6 backups of 3 servers on 2 workers: {elapsed:.1f}s; w1 ran {len(ran_by['worker-w1'])}, w2 {len(ran_by['worker-w2'])}"
        )
    finally:
        for w in workers:
            w.stop()

    # a server removed from the file: its setup-made deployments go, the hand-made one stays
    config.write_text(config_text(three_servers[:2], local_dir))
    removed = setup(server, config, passwords)
    assert sorted(c for c in changes(removed) if "deployment" in c) == [
        "deleted deployment backup/sd3 (no longer in the file)",
        "deleted deployment restore-test/sd3 (no longer in the file)",
    ], removed.stdout
    left = {
        (d["entrypoint"], d["name"])
        for d in server.api("POST", "/deployments/filter", {"limit": 200, "offset": 0})
    }
    assert ("flows/backup.py:backup", "hand-made") in left and ("flows/backup.py:backup", "sd3") not in left
