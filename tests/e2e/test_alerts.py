"""End to end: the failure alerts of ``deployments.setup`` against a real Prefect server and a
webhook receiver. A deployment that keeps failing alerts once per re-alert window (here 20 s,
``realert_seconds``), each deployment has its own window, and a failed restore test is ONE
alert (the restore-test alert), not also "a flow run failed".

The failures are real state transitions of real flow runs of real deployments (proposed
through the API, as a worker would), so Prefect's event pipeline and automation triggers do
the counting."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, PrefectServer, WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

REALERT = 20


def config_text(hook: str) -> str:
    return f"""
[deployments]
flows = []   # no per-server deployments: the test makes its own

[servers.prod-primary]
host = "127.0.0.1"
port = 3306
user = "mysqlops_backup"
password_env = "E2E_ALERT_PASSWORD"

[notifications]
block = "e2e-alerts"
url = "{hook}/alerts"
json_data = {{ text = "{{{{subject}}}} || {{{{body}}}}" }}

[automations]
backup_absence_hours = 24
realert_seconds = {REALERT}
"""


def fail_run(server: PrefectServer, deployment_id: str) -> str:
    """A run of the deployment that starts and fails, as a worker would report it. Its name."""
    run = server.api("POST", f"/deployments/{deployment_id}/create_flow_run", {})
    for state in ({"type": "PENDING"}, {"type": "RUNNING"}, {"type": "FAILED", "message": "boom"}):
        result = server.api("POST", f"/flow_runs/{run['id']}/set_state", {"state": state, "force": True})
        assert result["status"] == "ACCEPT", result
    return str(run["name"])


def alerts_for(receiver: WebhookReceiver, run_name: str) -> list[str]:
    return [r["body"] for r in list(receiver.requests) if f"run {run_name}" in r["body"]]


def wait_alerts(receiver: WebhookReceiver, run_name: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not alerts_for(receiver, run_name):
        time.sleep(0.5)
    time.sleep(3)  # a second alert for the same run would come right after the first
    return alerts_for(receiver, run_name)


def test_failure_alerts_have_a_realert_window_and_a_restore_test_alerts_once(
    prefect_server: PrefectServer, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    config = tmp_path / "environment.toml"
    config.write_text(config_text(webhook_receiver.url))
    setup = subprocess.run(
        [sys.executable, "-m", "deployments.setup", "--config", str(config), "--no-input"],
        cwd=ROOT,
        env=prefect_server.env(E2E_ALERT_PASSWORD="not-used-here"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "per deployment" in "".join(
        a["description"]
        for a in prefect_server.api("POST", "/automations/filter", {"limit": 50, "offset": 0})
        if a["name"] == "mysqlops: flow run failed"
    )

    def deployment(flow: str, name: str) -> str:
        flow_id = prefect_server.api("POST", "/flows/", {"name": flow})["id"]
        created: dict[str, Any] = prefect_server.api(
            "POST",
            "/deployments/",
            {
                "name": name,
                "flow_id": flow_id,
                "entrypoint": "flows/x.py:x",
                "tags": ["mysqlops", f"e2e-{uuid.uuid4().hex[:6]}"],
            },
        )
        return str(created["id"])

    binlogs = deployment("archive-binlogs", "prod-primary")
    health = deployment("replica-health", "prod-replica")
    restore = deployment("restore-test", "prod-primary")
    time.sleep(3)  # automations are loaded by the triggers service

    first = fail_run(prefect_server, binlogs)
    started = time.monotonic()
    assert len(wait_alerts(webhook_receiver, first)) == 1, webhook_receiver.requests
    # the same deployment fails again inside the window: no page
    again = fail_run(prefect_server, binlogs)
    # another deployment has a window of its own
    other = fail_run(prefect_server, health)
    assert len(wait_alerts(webhook_receiver, other)) == 1
    assert alerts_for(webhook_receiver, again) == []

    # a failed restore test: one alert, the restore-test one
    tested = fail_run(prefect_server, restore)
    restore_alerts = wait_alerts(webhook_receiver, tested)
    assert len(restore_alerts) == 1, restore_alerts
    assert "RESTORE TEST FAILED" in restore_alerts[0]

    # after the window, the deployment that is still failing alerts again
    time.sleep(max(0.0, REALERT + 2 - (time.monotonic() - started)))
    later = fail_run(prefect_server, binlogs)
    assert len(wait_alerts(webhook_receiver, later)) == 1
    assert alerts_for(webhook_receiver, again) == []
