"""Metrics reach a real Pushgateway (Debian's prometheus-pushgateway, on loopback) and the
textfile directory, from the real flows: backup, binlog archive, restore test, retention, report."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.sampledata import create_awkward_database

pytestmark = [pytest.mark.flows, pytest.mark.integration]

PUSHGATEWAY = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pushgateway(tmp_path: Any) -> Iterator[str]:
    """A real Pushgateway on loopback, stopped (and waited for) after the test."""
    if not os.path.exists(PUSHGATEWAY):
        pytest.fail("prometheus-pushgateway is not installed: run scripts/ensure-system-packages.sh as root")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            PUSHGATEWAY,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every mysqlops_* sample the Pushgateway serves, by (name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("mysqlops_"):
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, [k for k in samples if k[0] == name])
    return found[0]


@pytest.fixture
def env(sandbox_root: str, moto_server: str, tmp_path: Any) -> Iterator[sandbox.SandboxServer]:
    import boto3

    from blocks import BackupLocation, MySQLServer

    server = sandbox.start_server(sandbox_root, "msrc", server_id=731)
    with db.session(server.spec()) as conn:
        create_awkward_database(conn, "shop")
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket="metrics-bucket")
    MySQLServer(
        port=server.port, user="root", password=SecretStr(server.root_password), server_name="msrc"
    ).save("mt-server", overwrite=True)
    BackupLocation(url=f"file://{tmp_path}/b", location_name="local").save("mt-local", overwrite=True)
    BackupLocation(
        url="s3://metrics-bucket/m",
        key=SecretStr("testing"),
        secret=SecretStr("testing"),
        endpoint_url=moto_server,
        offsite=True,
        location_name="s3",
    ).save("mt-s3", overwrite=True)
    try:
        yield server
    finally:
        sandbox.stop_server(server)


def test_metrics_reach_pushgateway(env: sandbox.SandboxServer, pushgateway: str, tmp_path: Any) -> None:
    from blocks import RetentionPolicyBlock
    from blocks.metrics import METRICS_BLOCK, MetricsBlock
    from flows.backup import backup
    from flows.binlogs import archive_binlogs
    from flows.report import backup_report
    from flows.restore import restore_test
    from flows.retention import apply_retention

    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    MetricsBlock(pushgateway_url=pushgateway, textfile_dir=str(textfiles)).save(METRICS_BLOCK, overwrite=True)
    try:
        started = time.time()
        summary = backup(server="mt-server", locations=["mt-local", "mt-s3"], progress_interval=0)
        assert summary["locations"] == {"local": "verified", "s3": "verified"}
        archive_binlogs(server="mt-server", locations=["mt-local", "mt-s3"])
        tests = restore_test(locations=["mt-local", "mt-s3"])
        assert [t["passed"] for t in tests] == [True, True]
        apply_retention(locations=["mt-local", "mt-s3"], policy={"keep_last": 3})
        RetentionPolicyBlock(keep_last=2, keep_within="1d").save("mt-policy", overwrite=True)
        frames = backup_report(
            locations=["mt-local", "mt-s3"], policy={"mt-local": {"keep_last": 3}, "mt-s3": "mt-policy"}
        )
    finally:
        MetricsBlock(pushgateway_url="", textfile_dir="").save(METRICS_BLOCK, overwrite=True)

    # the report's storage forecast used the policies apply-retention takes (block names included)
    policies = dict(zip(frames["storage"]["location"], frames["storage"]["policy"], strict=True))
    assert policies == {
        "local": "keep last 3; min_redundancy 1",
        "s3": "keep last 2, within 1d; min_redundancy 1",
    }
    got = scrape(pushgateway)
    for location in ("local", "s3"):
        at = {"server": "msrc", "location": location}
        last = value(
            got, "mysqlops_backup_last_success_timestamp_seconds", **at, kind="full", method="logical"
        )
        assert started - 1 <= last <= time.time()
        assert value(got, "mysqlops_backup_stored_bytes", **at) == summary["stored_bytes"]
        assert value(got, "mysqlops_backup_raw_bytes", **at) == summary["raw_bytes"]
        assert value(got, "mysqlops_backup_duration_seconds", **at) > 0
        assert value(got, "mysqlops_backup_last_ok", **at) == 1
        # later pushes of other events did not remove the backup's series, nor the reverse
        assert value(got, "mysqlops_restore_test_passed", **at) == 1
        assert value(got, "mysqlops_restore_test_duration_seconds", **at) > 0
        assert value(got, "mysqlops_binlog_last_archive_timestamp_seconds", **at) >= started - 1
        assert value(got, "mysqlops_retention_kept_backups", location=location) >= 1
        assert value(got, "mysqlops_retention_refused", location=location) == 0
    oldest = value(got, "mysqlops_recovery_window_oldest_timestamp_seconds", server="msrc")
    newest = value(got, "mysqlops_recovery_window_newest_timestamp_seconds", server="msrc")
    assert started - 1 <= oldest <= newest <= time.time()
    assert value(got, "mysqlops_recovery_window_seconds", server="msrc") == pytest.approx(newest - oldest)
    # the same values as node_exporter textfile-collector files, one per event, server and location
    files = sorted(p.name for p in textfiles.iterdir())
    assert "mysqlops-backup-msrc-local.prom" in files and "mysqlops-restore-test-msrc-s3.prom" in files
    text = (textfiles / "mysqlops-backup-msrc-s3.prom").read_text()
    assert 'mysqlops_backup_stored_bytes{kind="full",location="s3",method="logical",server="msrc"} ' in text
    assert not [p for p in files if not p.endswith(".prom")]  # no temporary files left
