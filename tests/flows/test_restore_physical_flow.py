"""The restore-physical flow on mariadb-10.11: backup(method="physical") full + incremental,
encrypted, then the chain restored by the flow into a stopped server's empty datadir (keys
loaded inside its task by block name), refused on a datadir that is not empty; a server
started on the restored datadir holds the source's data."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import restore
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.streams import crypto
from mysqlops.tablesum import table_checksums

pytestmark = [pytest.mark.flows, pytest.mark.integration]


def test_restore_physical_flow_restores_the_chain_into_an_empty_datadir(
    sandbox_root: str, tmp_path: os.PathLike[str]
) -> None:
    from prefect.blocks.system import Secret

    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup
    from flows.restore import restore_physical

    work = os.fspath(tmp_path)
    server = sandbox.start_server(sandbox_root, "frphys", server_id=741)
    try:
        MySQLServer(
            port=server.port, user="root", password=SecretStr(server.root_password), server_name="frphys"
        ).save("rp-server", overwrite=True)
        BackupLocation(url=f"file://{work}/backups").save("rp-local", overwrite=True)
        Secret(value=crypto.format_key(crypto.generate_key())).save("rp-key", overwrite=True)
        with db.session(server.spec()) as conn:
            db.execute(conn, "CREATE DATABASE app")
            db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB")
            db.execute(conn, "INSERT INTO app.t VALUES (1, %s), (2, 'b')", [secrets.token_hex(8)])
        params: dict[str, Any] = {"server": "rp-server", "locations": ["rp-local"], "method": "physical"}
        full = backup(**params, encryption_key="rp-key")
        with db.session(server.spec()) as conn:
            db.execute(conn, "INSERT INTO app.t VALUES (3, 'after the full')")
            db.execute(conn, "UPDATE app.t SET v = 'changed' WHERE id = 2")
        inc = backup(**params, incremental=True, encryption_key="rp-key")
        with db.session(server.spec()) as conn:
            expected = table_checksums(conn, "app")
    finally:
        sandbox.stop_server(server)

    busy = os.path.join(work, "busy")
    os.makedirs(os.path.join(busy, "mysql"))
    state = restore_physical(
        datadir=busy,
        locations=["rp-local"],
        server="rp-server",
        encryption_keys=["rp-key"],
        return_state=True,
    )
    assert state.is_failed() and "is not empty" in str(state.result(raise_on_failure=False))
    datadir = os.path.join(work, "host", "data")
    os.makedirs(os.path.dirname(datadir))
    out = restore_physical(
        datadir=datadir, locations=["rp-local"], server="rp-server", encryption_keys=["rp-key"]
    )
    assert out["chain"] == [full["backup_id"], inc["backup_id"]] and out["datadir"] == datadir
    assert os.listdir(os.path.dirname(datadir)) == ["data"]
    started = sandbox.start_server_on_datadir(work, "restored", datadir, server_id=742, build="mariadb-10.11")
    try:
        with db.session(started.spec()) as conn:
            assert table_checksums(conn, "app") == expected
    finally:
        sandbox.stop_server(started)
    assert restore.target_problems(os.path.join(work, "host", "data")) == []  # moved away by the start
