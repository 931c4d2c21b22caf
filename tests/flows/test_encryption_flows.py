"""Encryption wired through the flows: Secret block names in, key ids in the manifests,
restore-test with the PITR proof and point-in-time restore reading encrypted binlogs, a
missing key failing the flow by naming its key id, and encrypted physical backups."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.binlog.archive import list_archived
from mysqlops.model import BackupMethod, Location
from mysqlops.streams import crypto

pytestmark = [pytest.mark.flows, pytest.mark.integration]


@pytest.fixture(scope="module")
def enc(sandbox_root: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from prefect.blocks.system import Secret

    from blocks import BackupLocation, MySQLServer

    server = sandbox.start_server(sandbox_root, "fenc", server_id=711)
    target = sandbox.start_server(sandbox_root, "fenct", server_id=712)
    key = crypto.generate_key()
    MySQLServer(
        port=server.port, user="root", password=SecretStr(server.root_password), server_name="fenc"
    ).save("fe-server", overwrite=True)
    MySQLServer(
        port=target.port, user="root", password=SecretStr(target.root_password), server_name="fenct"
    ).save("fe-target", overwrite=True)
    path = f"{tmp_path_factory.mktemp('fe')}/b"
    BackupLocation(url=f"file://{path}").save("fe-local", overwrite=True)
    Secret(value=crypto.format_key(key)).save("fe-key", overwrite=True)
    yield server, target, key, path
    sandbox.stop_server(target)
    sandbox.stop_server(server)


def test_encrypted_flows_end_to_end(enc: Any) -> None:
    from flows.backup import backup
    from flows.binlogs import archive_binlogs
    from flows.restore import restore, restore_test

    server, target, key, path = enc
    kid = crypto.key_id(key)
    with db.session(server.spec()) as conn:
        db.execute(conn, "CREATE DATABASE app")
        db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")
        db.execute(conn, "INSERT INTO app.t (v) VALUES ('a'), ('b')")
    backup(server="fe-server", locations=["fe-local"], encryption_key="fe-key", progress_interval=0)
    with db.session(server.spec()) as conn:
        db.execute(conn, "INSERT INTO app.t (v) VALUES ('c')")
    backup(server="fe-server", locations=["fe-local"], encryption_key="fe-key", progress_interval=0)
    with db.session(server.spec()) as conn:
        db.execute(conn, "INSERT INTO app.t (v) VALUES ('d')")
        status = db.query(conn, "SHOW MASTER STATUS")[0]
    summary = archive_binlogs(server="fe-server", locations=["fe-local"], encryption_key="fe-key")
    assert summary["archived"] and summary["encryption_key_ids"] == [kid]

    # restore test of the latest copy + PITR proof over the encrypted binlogs
    rows = restore_test(locations=["fe-local"], servers=["fenc"], prove_pitr=True, encryption_keys=["fe-key"])
    assert [r["passed"] for r in rows] == [True, True], rows

    # point-in-time restore: without the key the flow fails naming the key id, nothing applied
    until = f"{status['File']}:{status['Position']}"
    state = restore(
        target="fe-target", locations=["fe-local"], server="fenc", until_position=until, return_state=True
    )
    assert state.is_failed() and kid in str(state.result(raise_on_failure=False))
    with db.session(target.spec()) as conn:
        assert "app" not in db.user_databases(conn)
    done = restore(
        target="fe-target",
        locations=["fe-local"],
        server="fenc",
        until_position=until,
        encryption_keys=["fe-key"],
    )
    assert done["binlogs_replayed"]
    with db.session(target.spec()) as conn:
        assert [r["v"] for r in db.query(conn, "SELECT v FROM app.t ORDER BY id")] == ["a", "b", "c", "d"]

    # physical backups take the same key (the flow used to refuse it)
    phys = backup(server="fe-server", locations=["fe-local"], method="physical", encryption_key="fe-key")
    assert phys["locations"] == {"fe-local": "verified"}
    loc = Location("fe-local", f"file://{path}")
    manifests = {m.backup_id: m for m in catalog.scan_location(loc).backups}
    assert manifests[phys["backup_id"]].method is BackupMethod.PHYSICAL
    assert {m.encryption_key_id for m in manifests.values()} == {kid}
    assert {m.encryption_key_id for m in list_archived(Store(loc), "fenc")} == {kid}
