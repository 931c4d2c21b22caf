"""End to end: a real Prefect server (scheduler on), ``deployments.setup`` (twice), ``prefect
deploy --all``, the shipped process worker, the backup deployment run twice at once (never
overlapping), manifests and artifacts, every deployment of prefect.yaml registered with its schedule, the restore test
deployment (when its flow exists) and the proactive "no backup" alert delivered to a webhook.

If a flow file that prefect.yaml references does not exist yet, the module deploys a copy of
prefect.yaml without those deployments and says so in a warning.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mysqlops import catalog
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from tests.e2e.conftest import ROOT, Child, PrefectServer, WebhookReceiver, prefect_cli, start_child

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ABSENCE_SECONDS = 20


def deployable_prefect_yaml(workdir: Path) -> tuple[Path, list[dict[str, Any]], list[str]]:
    """prefect.yaml, or a copy without the deployments whose flow file does not exist yet."""
    source = ROOT / "prefect.yaml"
    doc = yaml.safe_load(source.read_text())
    present: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for deployment in doc["deployments"]:
        path = deployment["entrypoint"].split(":", 1)[0]
        (present if (ROOT / path).exists() else missing).append(deployment)
    if not missing:
        return source, present, []
    doc["deployments"] = present
    copy = workdir / "prefect.yaml"
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy, present, [d["entrypoint"] for d in missing]


def run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )


def config_text(
    primary: sandbox.SandboxServer,
    replica: sandbox.SandboxServer,
    local_dir: Path,
    bucket: str,
    moto: str,
    hook: str,
) -> str:
    return f"""
[work_pool]
name = "mysqlops"
type = "process"

[concurrency]
per_server = 1

[deployments]
timezone = "Europe/Berlin"

[servers.prod-primary]
host = "127.0.0.1"
port = {primary.port}
user = "root"
password_env = "E2E_PRIMARY_PASSWORD"

[servers.prod-replica]
host = "127.0.0.1"
port = {replica.port}
user = "root"
password_env = "E2E_REPLICA_PASSWORD"
flows = ["replica-health"]
replica_of = "prod-primary"

[locations.local]
url = "file://{local_dir}"

[locations.s3]
url = "s3://{bucket}/mysql"
key_env = "E2E_S3_KEY"
secret_env = "E2E_S3_SECRET"
endpoint_url = "{moto}"
offsite = true

[notifications]
block = "e2e-alerts"
url = "{hook}/{{{{hook_path}}}}"
json_data = {{ text = "{{{{subject}}}} || {{{{body}}}}" }}
secrets_env = {{ hook_path = "E2E_HOOK_PATH" }}

[automations]
backup_absence_seconds = {ABSENCE_SECONDS}
"""


def wait_for_runs(server: PrefectServer, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    runs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        runs = {i: server.api("GET", f"/flow_runs/{i}") for i in ids}
        if all(r["state_type"] in TERMINAL for r in runs.values()):
            return runs
        time.sleep(1)
    raise AssertionError(
        f"flow runs not finished after {timeout}s: { {i: r['state_name'] for i, r in runs.items()} }"
    )


@dataclass
class Deployed:
    server: PrefectServer
    primary: sandbox.SandboxServer
    replica: sandbox.SandboxServer
    setup_outputs: list[subprocess.CompletedProcess[str]]
    expected: list[dict[str, Any]]
    missing: list[str]
    registered: dict[tuple[str, str], dict[str, Any]]
    worker: Child
    local: Location
    s3: Location
    hook_path: str
    setup_done_at: float


@pytest.fixture(scope="module")
def deployed(
    prefect_server: PrefectServer,
    cluster: list[sandbox.SandboxServer],
    moto_server: str,
    webhook_receiver: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    """setup (twice) + prefect deploy --all + a worker on the pool."""
    import boto3

    primary, replica = cluster
    work = tmp_path_factory.mktemp("e2e-env")
    bucket = "e2e-" + uuid.uuid4().hex[:10]
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=bucket)
    local_dir = work / "backups"
    config = work / "environment.toml"
    hook_path = "hook-" + uuid.uuid4().hex[:8]
    config.write_text(config_text(primary, replica, local_dir, bucket, moto_server, webhook_receiver.url))
    secrets = {
        "E2E_PRIMARY_PASSWORD": primary.root_password,
        "E2E_REPLICA_PASSWORD": replica.root_password,
        "E2E_S3_KEY": "testing",
        "E2E_S3_SECRET": "testing",
        "E2E_HOOK_PATH": hook_path,
    }
    setup_argv = [sys.executable, "-m", "deployments.setup", "--config", str(config), "--no-input"]
    outputs = [run(setup_argv, prefect_server.env(**secrets)) for _ in range(2)]
    setup_done_at = time.monotonic()
    for out in outputs:
        assert out.returncode == 0, out.stdout + out.stderr

    prefect_file, expected, missing = deployable_prefect_yaml(work)
    if missing:
        warnings.warn(
            f"e2e deployed a copy of prefect.yaml WITHOUT {missing}: those flow files do not exist yet",
            stacklevel=1,
        )
    deploy = run(
        prefect_cli("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)),
        prefect_server.env(),
        timeout=180,
    )
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    registered = prefect_server.api(
        "POST", "/deployments/filter", {"limit": 200, "offset": 0, "sort": "NAME_ASC"}
    )

    worker = start_child(  # the worker we ship (make worker, the guide's systemd unit)
        "worker",
        [sys.executable, "-m", "deployments.worker", "--pool", "mysqlops", "--name", "e2e-worker"],
        prefect_server.env(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5"),
        prefect_server.logdir,
    )
    prefect_server.children.append(worker)
    yield Deployed(
        server=prefect_server,
        primary=primary,
        replica=replica,
        setup_outputs=outputs,
        expected=expected,
        missing=missing,
        registered={(d["entrypoint"], d["name"]): d for d in registered},
        worker=worker,
        local=Location("local", f"file://{local_dir}"),
        s3=Location(
            "s3",
            f"s3://{bucket}/mysql",
            storage_options={
                "key": "testing",
                "secret": "testing",
                "client_kwargs": {"endpoint_url": moto_server},
            },
        ),
        hook_path=hook_path,
        setup_done_at=setup_done_at,
    )
    worker.stop()


def test_setup_is_idempotent_and_prints_no_secret(deployed: Deployed) -> None:
    first, second = deployed.setup_outputs
    assert (
        f"created    automation                   mysqlops: no backup of prod-replica in {ABSENCE_SECONDS}s"
        in first.stdout
    )
    assert "created    tag concurrency limit        tag:server:prod-primary = 1" in first.stdout
    assert "created    work queue (limit)           mysqlops/server-prod-primary = 1" in first.stdout
    assert "created    deployment                   backup/prod-primary" in first.stdout
    assert "created    deployment                   replica-health/prod-replica" in first.stdout
    assert "backup/prod-replica" not in first.stdout
    changed = [
        line for line in second.stdout.splitlines() if line.startswith(("created", "updated", "deleted"))
    ]
    assert changed == [], second.stdout
    for out in deployed.setup_outputs:
        text = out.stdout + out.stderr
        assert deployed.primary.root_password not in text and deployed.hook_path not in text


def setup_made_deployments() -> list[dict[str, Any]]:
    """The per-server deployments setup made from the e2e config, as prefect.yaml-like specs."""
    from deployments import servers as server_deployments

    settings = server_deployments.DeploymentSettings(environment="environment", timezone="Europe/Berlin")
    out = []
    for server, flows, replica_of in (
        ("prod-primary", server_deployments.DEFAULT_FLOWS, None),
        ("prod-replica", ["replica-health"], "prod-primary"),
    ):
        settings.servers.append(
            server_deployments.ServerDeployments(
                server,
                server,
                list(flows),
                {},
                {},
                ["local", "s3"],
                replica_of,
                server_deployments.DEFAULT_POLICY,
            )
        )
    for w in server_deployments.wanted(settings, "mysqlops", lambda name: f"server-{name}"):
        spec = w.spec
        out.append(
            {
                "name": w.name,
                "entrypoint": spec["entrypoint"],
                "parameters": spec["parameters"],
                "schedules": spec["schedules"],
                "work_pool": {"work_queue_name": spec["work_queue"]},
                "tags": spec["tags"],
                "concurrency_limit": {"limit": 1, "collision_strategy": spec["collision"]},
            }
        )
    return out


def test_every_deployment_is_registered_with_its_schedule(deployed: Deployed) -> None:
    made = setup_made_deployments()
    assert {(d["entrypoint"], d["name"]) for d in made} >= {
        ("flows/backup.py:backup", "prod-primary"),
        ("flows/restore.py:restore_test", "prod-primary"),
        ("flows/replication.py:replica_health", "prod-replica"),
    }
    for spec in [*deployed.expected, *made]:
        found = deployed.registered.get((spec["entrypoint"], spec["name"]))
        assert found is not None, (
            f"{spec['entrypoint']} {spec['name']} not registered: {sorted(deployed.registered)}"
        )
        schedules = [
            (s["schedule"].get("cron"), s["schedule"].get("timezone"), s["active"])
            for s in found["schedules"]
        ]
        wanted = [(s["cron"], s["timezone"], True) for s in spec.get("schedules", [])]
        assert schedules == wanted, spec["entrypoint"]
        assert found["work_pool_name"] == "mysqlops"
        assert found["work_queue_name"] == spec["work_pool"]["work_queue_name"]
        assert set(found["tags"]) == set(spec["tags"])
        limit = spec.get("concurrency_limit") or {}
        assert (found["global_concurrency_limit"] or {}).get("limit") == limit.get("limit")
        strategy = (found["concurrency_options"] or {}).get("collision_strategy")
        assert strategy == limit.get("collision_strategy"), spec["entrypoint"]
        assert found["parameters"] == spec.get("parameters", {})
        if not spec.get("schedules"):  # on demand: the Run form describes every parameter
            props = found["parameter_openapi_schema"]["properties"]
            assert props and all(p.get("description") for p in props.values()), spec["entrypoint"]
    if deployed.missing:
        pytest.skip(
            f"checked {len(deployed.expected)} deployments; not yet deployable (flow file missing): {deployed.missing}"
        )


def test_backup_deployment_runs_one_at_a_time_with_manifests_and_artifacts(deployed: Deployed) -> None:
    server = deployed.server
    backup = deployed.registered[("flows/backup.py:backup", "prod-primary")]
    run_ids = [server.api("POST", f"/deployments/{backup['id']}/create_flow_run", {})["id"] for _ in range(2)]
    runs = wait_for_runs(server, run_ids, timeout=150)
    states = {i: (r["state_name"], (r.get("state") or {}).get("message")) for i, r in runs.items()}
    assert all(r["state_type"] == "COMPLETED" for r in runs.values()), (
        f"{states}\nworker:\n{deployed.worker.tail()}"
    )
    spans = sorted(
        (datetime.fromisoformat(r["start_time"]), datetime.fromisoformat(r["end_time"]))
        for r in runs.values()
    )
    assert spans[0][1] <= spans[1][0], f"two backups of prod-primary overlapped: {spans}"
    assert {r["work_queue_name"] for r in runs.values()} == {"server-prod-primary"}
    assert all("server:prod-primary" in r["tags"] for r in runs.values())

    for scan in catalog.scan([deployed.local, deployed.s3]):
        assert scan.errors == []
        # one backup per run, inside the run (the scheduler is on: a nightly run may add one)
        for start, end in spans:
            inside = [m for m in scan.backups if m.server == "prod-primary" and start <= m.finished_at <= end]
            assert len(inside) == 1, (scan.location.name, start, end, [m.finished_at for m in scan.backups])
    artifacts = server.api(
        "POST",
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": run_ids}}, "sort": "CREATED_DESC", "limit": 50, "offset": 0},
    )
    keys = {(a["flow_run_id"], a["key"]) for a in artifacts}
    for run_id in run_ids:
        assert (run_id, "backup-prod-primary") in keys, keys
        assert (run_id, "backup-prod-primary-summary") in keys, keys
    logs = server.api(
        "POST",
        "/logs/filter",
        {"logs": {"flow_run_id": {"any_": run_ids}}, "sort": "TIMESTAMP_ASC", "limit": 200, "offset": 0},
    )
    assert logs, "the backup runs wrote no logs"
    assert all(deployed.primary.root_password not in entry["message"] for entry in logs)


def test_restore_test_deployment(deployed: Deployed) -> None:
    restore = deployed.registered.get(("flows/restore.py:restore_test", "prod-primary"))
    if restore is None:
        pytest.skip("flows/restore.py does not exist yet: restore_test cannot be deployed or triggered")
    if not any(m.server == "prod-primary" for m in catalog.scan_location(deployed.local).backups):
        pytest.skip("no backup of prod-primary to restore (the backup e2e test did not run)")
    server = deployed.server
    run_id = server.api("POST", f"/deployments/{restore['id']}/create_flow_run", {})["id"]
    finished = wait_for_runs(server, [run_id], timeout=150)[run_id]
    assert finished["state_type"] == "COMPLETED", (finished["state_name"], deployed.worker.tail())


def test_absence_alert_reaches_the_webhook(deployed: Deployed, webhook_receiver: WebhookReceiver) -> None:
    waited = time.monotonic() - deployed.setup_done_at
    alert = webhook_receiver.wait_for(
        "NO BACKUP of prod-replica", timeout=max(15.0, ABSENCE_SECONDS + 40 - waited)
    )
    assert alert is not None, f"no alert received; got {webhook_receiver.requests}"
    assert alert["path"] == f"/{deployed.hook_path}"  # the secret was substituted into the URL
    for password in (deployed.primary.root_password, deployed.replica.root_password):
        assert password not in alert["body"]


def test_notebook_runs_headless_against_the_server(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """notebooks/ad_hoc.ipynb, executed by nbclient in a real kernel against this Prefect server:
    blocks loaded with aload, the catalog and checks as DataFrames, a backup run through its
    deployment (await run_deployment), and the report."""
    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[2]
    for key, value in deployed.server.env().items():
        if key.startswith("PREFECT_"):
            monkeypatch.setenv(key, value)  # the kernel inherits the environment
    nb = nbformat.read(root / "notebooks" / "ad_hoc.ipynb", as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(root)}}
    ).execute()
    outputs = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert "'Completed'" in outputs, outputs[-2000:]  # the backup run through the deployment
    assert "backup_id" in outputs and "stored_bytes" in outputs  # the DataFrames were shown
    assert deployed.primary.root_password not in outputs
