"""The restore-test flow's upgrade rehearsal: ``scratch_series`` reaches the core, a bad one
fails the flow before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.sampledata import create_awkward_database

pytestmark = [pytest.mark.flows, pytest.mark.integration]


def test_restore_test_flow_rehearses_an_upgrade(fresh_server: sandbox.SandboxServer, tmp_path: Any) -> None:
    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup
    from flows.restore import restore_test

    MySQLServer(
        port=fresh_server.port, user="root", password=SecretStr(fresh_server.root_password), server_name="upg"
    ).save("upg-server", overwrite=True)
    BackupLocation(url=f"file://{tmp_path}/b").save("upg-local", overwrite=True)
    with db.session(fresh_server.spec()) as conn:
        create_awkward_database(conn, "shop")
    backup(server="upg-server", locations=["upg-local"])

    rows = restore_test(locations=["upg-local"], scratch_series="mariadb-11.8")
    assert [r["passed"] for r in rows] == [True], rows

    for bad, expected in (
        ("mariadb11", "is not a build name"),
        ("mysql-9.7", "cannot take backup"),
        ("mariadb-10.6", "series 10.11 or newer"),
    ):
        state = restore_test(locations=["upg-local"], scratch_series=bad, return_state=True)
        message = str(state.result(raise_on_failure=False))
        assert state.is_failed() and expected in message, (bad, message)
