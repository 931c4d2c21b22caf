"""The core entry points the flows call, called directly (no Prefect): backup.run,
restore.restore_test, restore.run and retention.apply on a real server and a local location,
with one RunContext/Reporter carrying the staging directory and the messages."""

from __future__ import annotations

from typing import Any

import pytest

import mysqlops.backup
import mysqlops.restore
import mysqlops.retention
from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from mysqlops.restore import RestoreRequest
from mysqlops.runs import Reporter, RunContext

pytestmark = pytest.mark.integration


def test_entry_points_back_up_prove_restore_and_plan(
    fresh_server: sandbox.SandboxServer, local_location: Location, tmp_path: Any
) -> None:
    spec = fresh_server.spec()
    with db.session(spec) as conn:
        db.execute(conn, "CREATE DATABASE app")
        db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
        db.execute(conn, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
    lines: list[str] = []
    bar: list[float] = []
    staging = tmp_path / "staging"
    staging.mkdir(mode=0o700)
    ctx = RunContext(
        staging_dir=str(staging),
        reporter=Reporter(lines.append, lines.append, lines.append, bar.append),
        progress_interval=0,
    )

    request = mysqlops.backup.request_from(spec, [local_location], databases=["app"], tags=["entry"])
    result = mysqlops.backup.run(request, ctx)
    assert result.ok and mysqlops.backup.failure(result) is None
    assert any(line.startswith("pre-flight ok:") for line in lines) and bar[-1] == 100.0
    summary = mysqlops.backup.summary(result)
    assert summary["locations"] == {"local": "verified"} and summary["databases"] == ["app"]
    assert f"`{result.manifest.backup_id}`" in mysqlops.backup.summary_markdown(result)

    rows, certs = mysqlops.restore.restore_test([local_location], ctx, servers=[spec.name])
    assert [r["passed"] for r in rows] == [True] and mysqlops.restore.restore_test_failure(rows) is None
    assert catalog.scan([local_location])[0].certificates[0].backup_id == certs[0].backup_id
    assert "**PASSED**" in mysqlops.restore.certificate_markdown(certs[0])

    restored = mysqlops.restore.run(
        RestoreRequest(
            target=spec,
            locations=(local_location,),
            server=spec.name,
            rename={"app": "app_copy"},
            allow_source_target=True,
        ),
        ctx,
    )
    assert restored.summary()["databases"] == {"app": "app_copy"}
    with db.session(spec) as conn:
        assert [r["v"] for r in db.query(conn, "SELECT v FROM app_copy.t ORDER BY id")] == ["a", "b"]

    outcomes, errors = mysqlops.retention.apply([local_location], {"keep_last": 1}, reporter=ctx.reporter)
    assert errors == [] and mysqlops.retention.failure(outcomes, errors) is None
    assert outcomes[0].counts() == {"keep": 1, "delete": 0, "bytes_freed": 0}
    assert list(staging.iterdir()) == []  # nothing left staged
