"""A flow called from Python (Prefect's ephemeral mode) and killed with SIGKILL leaves its
flow run RUNNING and its ephemeral Prefect API server running; the next run of a mysqlops flow
(here ``check``) marks the run CRASHED and stops that server."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from mysqlops.adapters import reaper

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = pathlib.Path(__file__).resolve().parents[2]

VICTIM = """
import os, sys, time
import flows  # labels this process: its ephemeral Prefect server inherits the label
from prefect import flow
from flows.common import reap_leftovers

@flow(name="victim")
def victim(signal_path: str) -> None:
    reap_leftovers()  # what every long mysqlops flow does first: labels its run
    open(signal_path, "w").close()
    time.sleep(600)

victim(sys.argv[1])
"""

NEXT_RUN = """
import json
from flows.check import check
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

rows = check(servers=[], locations=[])
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["victim"])))
print(json.dumps({"rows": rows, "victims": [[r.state.type.value, r.state.message] for r in runs]}))
"""


def _env(home: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST", reaper.OWNER_ENV))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PYTHONPATH=str(ROOT),
        TMPDIR=str(home.parent / "tmp"),
    )
    return env


def _ephemeral_servers_of(pid: int) -> list[reaper.Proc]:
    return [p for p in reaper.processes() if p.ppid == pid and reaper.PREFECT_EPHEMERAL_APP in p.argv]


def test_kill9_flow_run_is_marked_crashed_and_its_ephemeral_server_stopped(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "prefect"
    home.mkdir(mode=0o700)
    (tmp_path / "tmp").mkdir(mode=0o700)
    script = tmp_path / "victim.py"
    script.write_text(VICTIM)
    signal_file = tmp_path / "running"
    victim = subprocess.Popen(
        [sys.executable, str(script), str(signal_file)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    servers: list[reaper.Proc] = []
    try:
        deadline = time.monotonic() + 240
        while not signal_file.exists():
            assert victim.poll() is None, (
                victim.stdout.read().decode(errors="replace") if victim.stdout else ""
            )
            assert time.monotonic() < deadline, "the victim flow never started"
            time.sleep(0.1)
        servers = _ephemeral_servers_of(victim.pid)
        assert len(servers) == 1  # Prefect started an ephemeral API server for it
        os.kill(victim.pid, signal.SIGKILL)  # the process only, as the OOM killer would
        assert victim.wait(timeout=30) == -signal.SIGKILL
        (server,) = servers
        assert reaper.process_start(server.pid) == server.start  # it outlives the killed run

        nxt = tmp_path / "next.py"
        nxt.write_text(NEXT_RUN)
        done = subprocess.run(
            [sys.executable, str(nxt)], env=_env(home), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["victims"] and out["victims"][0][0] == "CRASHED", [r["detail"] for r in out["rows"]]
        assert f"process {victim.pid}" in out["victims"][0][1]
        details = [r["detail"] for r in out["rows"] if r["check"] == "leftovers of killed runs"]
        assert any("stuck RUNNING" in d for d in details)
        assert any(f"Prefect API server pid {server.pid}" in d for d in details), details
        assert reaper.process_start(server.pid) != server.start  # stopped
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        for proc in servers:
            reaper.kill(proc, group=False)
