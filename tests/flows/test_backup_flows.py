"""The flows wired through Prefect (test harness): blocks by name, artifacts, outcomes.

The core is tested directly elsewhere; these tests prove the recipes run for real against a
sandbox server and a real S3 endpoint, and that failures end the flow Failed with a clear text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.sampledata import create_awkward_database

pytestmark = [pytest.mark.flows, pytest.mark.integration]


@pytest.fixture(scope="module")
def env(sandbox_root: str, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import boto3

    from blocks import BackupLocation, MySQLServer

    server = sandbox.start_server(sandbox_root, "fsrc", server_id=701)
    with db.session(server.spec()) as conn:
        create_awkward_database(conn, "shop")
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket="flows-bucket")
    MySQLServer(
        port=server.port, user="root", password=SecretStr(server.root_password), server_name="fsrc"
    ).save("ft-server", overwrite=True)
    MySQLServer(
        port=server.port, user="root", password=SecretStr("wrong-canary-pass"), server_name="fsrc"
    ).save("ft-badpass", overwrite=True)
    BackupLocation(url=f"file://{tmp_path_factory.mktemp('fl')}/b").save("ft-local", overwrite=True)
    BackupLocation(
        url="s3://flows-bucket/m",
        key=SecretStr("testing"),
        secret=SecretStr("testing"),
        endpoint_url=moto_server,
        offsite=True,
    ).save("ft-s3", overwrite=True)
    yield server
    sandbox.stop_server(server)


def test_backup_list_restore_test_report_retention(env: Any) -> None:
    from prefect.client.orchestration import get_client

    from flows.backup import backup, list_backups
    from flows.report import backup_report
    from flows.restore import restore_test
    from flows.retention import apply_retention

    summary = backup(server="ft-server", locations=["ft-local", "ft-s3"], tags=["test"], progress_interval=0)
    assert summary["locations"] == {"ft-local": "verified", "ft-s3": "verified"}
    assert summary["coordinates"]["file"].startswith("mysql-bin.")
    rows = list_backups(locations=["ft-local", "ft-s3"])
    assert {r["location"] for r in rows} == {"ft-local", "ft-s3"}
    tests = restore_test(locations=["ft-local", "ft-s3"])
    assert [t["passed"] for t in tests] == [True, True]
    # each copy's re-dump hash was compared table by table, the rows re-dumped as tables loaded
    from blocks import BackupLocation
    from mysqlops import catalog

    scans = catalog.scan([BackupLocation.load(n).to_location(n) for n in ("ft-local", "ft-s3")])
    redumps = [c.detail for s in scans for cert in s.certificates for c in cert.checks if "re-dump" in c.name]
    assert len(redumps) == 2 and all("piece by piece" in d for d in redumps), redumps
    frames = backup_report(locations=["ft-local", "ft-s3"], output_location="ft-local")
    assert len(frames["backups"]) == 2 and len(frames["restores"]) == 2
    plan = apply_retention(locations=["ft-local", "ft-s3"], policy={"keep_last": 1})
    assert plan["ft-local"]["keep"] == 1 and plan["ft-local"]["delete"] == 0
    wanted = {"backup-fsrc", "backup-fsrc-summary", "restore-tests", "backup-report", "retention-plan"}

    async def artifact_keys() -> set[str]:
        # the raw endpoint with explicit filters (prefect 3.8.8's typed filters dropped artifacts)
        async with get_client() as client:
            response = await client._client.post(
                "/artifacts/filter", json={"artifacts": {"key": {"any_": sorted(wanted)}}}
            )
            return {a["key"] for a in response.json()}

    keys = asyncio.run(artifact_keys())
    assert keys == wanted


def test_flow_fails_clearly_without_leaking_the_password(env: Any) -> None:
    from flows.backup import backup

    state = backup(server="ft-badpass", locations=["ft-local"], return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "wrong user or password" in message and "wrong-canary-pass" not in message
    state = backup(server="no-such-block", locations=["ft-local"], return_state=True)
    assert state.is_failed() and "no MySQLServer block named 'no-such-block'" in str(
        state.result(raise_on_failure=False)
    )


def test_no_flow_log_or_artifact_contains_the_password(env: Any) -> None:
    """Canary: after the flows above ran (and failed on purpose), search every log line and
    every artifact the Prefect API holds for the server's password."""
    from prefect.client.orchestration import get_client

    from flows.backup import backup

    backup(server="ft-server", locations=["ft-local"], databases=["shop"], progress_interval=0)

    async def everything() -> tuple[list[Any], list[Any]]:
        async with get_client() as client:
            logs, artifacts, offset = [], [], 0
            while True:
                page = (
                    await client._client.post("/logs/filter", json={"limit": 200, "offset": offset})
                ).json()
                logs += page
                offset += 200
                if len(page) < 200:
                    break
            offset = 0
            while True:
                page = (
                    await client._client.post("/artifacts/filter", json={"limit": 200, "offset": offset})
                ).json()
                artifacts += page
                offset += 200
                if len(page) < 200:
                    break
            return logs, artifacts

    logs, artifacts = asyncio.run(everything())
    assert logs and artifacts
    secrets = [env.root_password, "wrong-canary-pass"]
    for secret in secrets:
        assert not [entry["message"] for entry in logs if secret in entry["message"]]
        assert not [a["key"] for a in artifacts if secret in str(a.get("data")) + str(a.get("description"))]
