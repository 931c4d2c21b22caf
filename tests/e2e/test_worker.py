"""End to end: the worker we ship (``python -m deployments.worker``, used by ``make worker`` and
the guide's systemd unit) stops within seconds of SIGTERM, and the flow run it was running is
cancelled: marked Cancelled in Prefect, its process and the child process it ran (a
``mariadb-dump`` in real life) gone.

``prefect worker start`` (prefect 3.9.1) exits on SIGTERM too, but leaves the run *Running*
forever and its child process orphaned (measured: worker gone in ~1 s, run still Running,
``sleep`` still alive)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ROOT, PrefectServer, prefect_cli, start_child

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

WORKER = [sys.executable, "-m", "deployments.worker"]


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    out[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(root: int) -> dict[int, str]:
    """pid -> cmdline of every process below ``root``."""
    parents = _parents()
    found = {}
    for pid in parents:
        p = pid
        while p in parents and p > 1:
            p = parents[p]
            if p == root:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        found[pid] = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    pass
                break
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def test_shipped_worker_command_is_the_one_tested() -> None:
    makefile = (ROOT / "Makefile").read_text()
    guide = (ROOT / "deployments" / "README.md").read_text()
    assert "python -m deployments.worker --pool mysqlops" in makefile
    assert "ExecStart=/opt/mysqlops/.venv/bin/python -m deployments.worker --pool mysqlops" in guide


def test_worker_stops_on_sigterm(prefect_server: PrefectServer, tmp_path: Path) -> None:
    env = prefect_server.env()
    pool = "sigterm-pool"
    created = run(prefect_cli("work-pool", "create", pool, "--type", "process"), env)
    assert created.returncode == 0, created.stdout + created.stderr
    spec = {
        "name": "mysqlops-e2e",
        "deployments": [
            {
                "name": "sigterm",
                "entrypoint": "tests/e2e/slow_flow.py:slow",
                "parameters": {"seconds": 300},
                "work_pool": {"name": pool},
            }
        ],
    }
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(spec))
    deploy = run(
        prefect_cli("--no-prompt", "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml")), env
    )
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
    [deployment] = [
        d
        for d in prefect_server.api("POST", "/deployments/filter", {"limit": 200, "offset": 0})
        if d["name"] == "sigterm"
    ]

    worker = start_child(
        "worker-sigterm",
        [*WORKER, "--pool", pool, "--name", "sigterm-worker"],
        prefect_server.env(PREFECT_WORKER_QUERY_SECONDS="1"),
        prefect_server.logdir,
    )
    prefect_server.children.append(worker)
    flow_run = prefect_server.api("POST", f"/deployments/{deployment['id']}/create_flow_run", {})
    deadline = time.monotonic() + 120
    below: dict[int, str] = {}
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = prefect_server.api("GET", f"/flow_runs/{flow_run['id']}")
        below = descendants(worker.proc.pid)
        if state["state_type"] == "RUNNING" and any(c == "sleep 300" for c in below.values()):
            break
        assert worker.proc.poll() is None, worker.tail()
        time.sleep(0.5)
    else:
        raise AssertionError(
            f"the run never ran its child: {state.get('state_name')}, {below}\n{worker.tail()}"
        )

    started = time.monotonic()
    os.kill(worker.proc.pid, signal.SIGTERM)  # systemd (KillMode=mixed) signals the main process only
    try:
        returncode = worker.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker ignored SIGTERM for 60 s:\n{worker.tail()}") from None
    took = time.monotonic() - started
    assert returncode == 0, worker.tail()
    assert took < 15, f"the worker took {took:.1f}s to stop"

    final = prefect_server.api("GET", f"/flow_runs/{flow_run['id']}")
    assert final["state_type"] == "CANCELLED", (final["state_name"], worker.tail())
    history = prefect_server.api("GET", f"/flow_run_states/?flow_run_id={flow_run['id']}")
    reasons = [h.get("message") or "" for h in history if h["type"] == "CANCELLING"]
    assert any("sigterm-worker" in r and "SIGTERM" in r for r in reasons), reasons
    left = {pid: cmd for pid, cmd in below.items() if alive(pid)}
    assert left == {}, f"processes outlived the worker: {left}"
