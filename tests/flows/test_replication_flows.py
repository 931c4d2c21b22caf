"""Wiring of the provision-replica and replica-health flows (real servers; the session harness of
tests/flows/conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from mysqlops.adapters import sandbox
from mysqlops.adapters.mysql import query, session
from mysqlops.sampledata import create_awkward_database

pytestmark = [pytest.mark.flows, pytest.mark.integration]

PASSWORD = "flow-Repl-pass'1"


@pytest.fixture(scope="module")
def pair(sandbox_root: str) -> Iterator[list[sandbox.SandboxServer]]:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from blocks import MySQLServer

    servers = sandbox.start_cluster(os.path.join(sandbox_root, "flows-repl"), replicas=1, first_server_id=51)
    with session(servers[0].spec()) as conn:
        create_awkward_database(conn, "shop")
    MySQLServer.from_spec(servers[0].spec()).save("flow-primary", overwrite=True)
    MySQLServer.from_spec(servers[1].spec()).save("flow-replica", overwrite=True)
    Secret(value=SecretStr(PASSWORD)).save("flow-repl-password", overwrite=True)
    yield servers
    sandbox.stop_servers(servers)


def test_provision_and_health_flows(pair: list[sandbox.SandboxServer]) -> None:
    from flows.replication import provision_replica, replica_health

    rows = provision_replica("flow-primary", ["flow-replica"], replication_password="flow-repl-password")
    assert [r["role"] for r in rows] == ["primary", "replica"]
    assert (
        rows[1]["action"] == "seeded" and "equal" in rows[1]["checks"] and rows[1]["read_only"] == "turned on"
    )

    again = provision_replica("flow-primary", ["flow-replica"], replication_password="flow-repl-password")
    assert again[1]["action"] == "kept" and again[0]["action"] == "replication user unchanged"

    health = replica_health(["flow-replica"], primary="flow-primary", sample_checksum=True)
    assert health[0]["status"] == "ok" and health[0]["io_thread"] == "Yes"

    # break it: the flow run ends Failed with the replica's error in its message
    with session(pair[1].spec()) as conn:
        conn.query("SET SESSION sql_log_bin = 0")
        conn.query("INSERT INTO shop.blobs (id) VALUES (99)")
    with session(pair[0].spec()) as conn:
        conn.query("INSERT INTO shop.blobs (id) VALUES (99)")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with session(pair[1].spec()) as conn:
            if query(conn, "SHOW SLAVE STATUS")[0]["Slave_SQL_Running"] != "Yes":
                break
        time.sleep(0.1)
    state = replica_health(["flow-replica"], return_state=True)
    assert state.is_failed()
    message = (state.message or "") + str(state.result(raise_on_failure=False))
    # the error names the table and the code; the row value (the key 99) never reaches a log
    assert "table shop.blobs; Duplicate entry '<value>' for key 'PRIMARY', Error_code: 1062" in message
    assert "'99'" not in message

    missing = provision_replica(
        "flow-primary", ["flow-replica"], replication_password="no-such-secret", return_state=True
    )
    assert missing.is_failed() and "no Secret block named 'no-such-secret'" in str(
        missing.result(raise_on_failure=False)
    )
