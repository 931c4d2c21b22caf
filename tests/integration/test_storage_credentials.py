"""Separate storage credentials: a writer key without delete permission backs up; retention
with it reports "kept: locked" instead of crashing; the pruning key deletes. Real S3 endpoint
with IAM enforced (a moto server process of its own with INITIAL_NO_AUTH_ACTION_COUNT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import catalog, restore
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.model import Location
from mysqlops.retention import RetentionPolicy, deletes
from mysqlops.streams.compression import codec
from tests.conftest import _free_port
from tests.jobs import job

pytestmark = pytest.mark.integration
DENY_DELETE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjects"], "Resource": "*"},
    ],
}
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[dict[str, Any]]:
    import boto3

    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "7"}  # the setup below, then IAM is enforced
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        keys = {}
        for user, policy in (("writer", DENY_DELETE), ("pruner", ALLOW_ALL)):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
            keys[user] = {
                "key": key["AccessKeyId"],
                "secret": key["SecretAccessKey"],
                "client_kwargs": {"endpoint_url": url},
            }
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=keys["pruner"]["key"],
            aws_secret_access_key=keys["pruner"]["secret"],
        ).create_bucket(Bucket="creds")
        yield {
            "writer": Location("s3", "s3://creds/m", keys["writer"], offsite=True),
            "pruner": Location("s3", "s3://creds/m", keys["pruner"], offsite=True),
        }
    finally:
        proc.kill()
        proc.wait()


def test_writer_backs_up_retention_with_it_is_graceful_pruner_deletes(
    iam_s3: dict[str, Any], sandbox_root: str
) -> None:
    server = sandbox.start_server(sandbox_root, "creds", server_id=831)
    try:
        with db.session(server.spec()) as conn:
            db.execute(conn, "CREATE DATABASE c")
            db.execute(conn, "CREATE TABLE c.t (id INT PRIMARY KEY)")
        writer, pruner = iam_s3["writer"], iam_s3["pruner"]
        first = bk.run_backup(*job(server.spec(), [writer], codec("zstd")))
        second = bk.run_backup(*job(server.spec(), [writer], codec("zstd")))
        assert first.ok and second.ok
        assert any("may write but not delete" in w for w in first.warnings)
        # the nightly restore test proves the newest one (retention counts proven backups only)
        assert restore.restore_test_copy(
            writer, second.manifest, sandbox_dir=os.path.join(sandbox_root, "rt")
        ).passed
        policy = RetentionPolicy(keep_last=1)
        now = datetime.now(UTC)
        scan = catalog.scan_location(writer)
        plan = deletes.plan_for_scan(scan, policy, now)
        assert [d.record.backup_id for d in plan.delete] == [first.manifest.backup_id]
        result = deletes.apply_plan(Store(writer), scan, plan)
        assert result.locked == [first.manifest.backup_id] and result.deleted == []
        assert len(catalog.scan_location(writer).backups) == 2  # nothing half-deleted
        scan = catalog.scan_location(pruner)
        result = deletes.apply_plan(Store(pruner), scan, deletes.plan_for_scan(scan, policy, now))
        assert result.deleted == [first.manifest.backup_id]
        assert [b.backup_id for b in catalog.scan_location(pruner).backups] == [second.manifest.backup_id]
    finally:
        sandbox.stop_server(server)
