"""The CLONE physical backup of MySQL through the flows: backup(method="physical") of a real
mysql-9.7 sandbox, encrypted, then restore-test comparing with the quiet source (a scratch
server of the backup's build, mysql-9.7, started on the unpacked copy)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from mysqlops.streams import crypto

pytestmark = [pytest.mark.flows, pytest.mark.integration]


@pytest.fixture(scope="module")
def clone_env(sandbox_root: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from prefect.blocks.system import Secret

    from blocks import BackupLocation, MySQLServer

    server = sandbox.start_server(sandbox_root, "fclone", server_id=731, build="mysql-9.7")
    try:
        key = crypto.generate_key()
        MySQLServer(
            port=server.port, user="root", password=SecretStr(server.root_password), server_name="fclone"
        ).save("fc-server", overwrite=True)
        path = f"{tmp_path_factory.mktemp('fc')}/b"
        BackupLocation(url=f"file://{path}").save("fc-local", overwrite=True)
        Secret(value=crypto.format_key(key)).save("fc-key", overwrite=True)
        yield server, key, path
    finally:
        sandbox.stop_server(server)


def test_clone_backup_and_restore_test_flows(clone_env: Any) -> None:
    from flows.backup import backup
    from flows.restore import restore_test

    server, key, path = clone_env
    with db.session(server.spec()) as conn:
        db.execute(conn, "CREATE DATABASE app")
        db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB")
        db.execute(conn, "INSERT INTO app.t VALUES (1, %s), (2, %s)", [secrets.token_hex(8), "b"])
    # the plugin is missing: the flow fails naming the statement, nothing is stored
    state = backup(server="fc-server", locations=["fc-local"], method="physical", return_state=True)
    assert state.is_failed() and "INSTALL PLUGIN clone SONAME 'mysql_clone.so'" in str(
        state.result(raise_on_failure=False)
    )
    with db.session(server.spec()) as conn:
        db.execute(conn, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
    done = backup(server="fc-server", locations=["fc-local"], method="physical", encryption_key="fc-key")
    assert done["locations"] == {"fc-local": "verified"}
    manifests = {
        m.backup_id: m for m in catalog.scan_location(Location("fc-local", f"file://{path}")).backups
    }
    made = manifests[done["backup_id"]]
    assert made.extra["physical_tool"] == "clone" and made.encryption_key_id == crypto.key_id(key)
    assert list(manifests) == [done["backup_id"]]
    rows = restore_test(
        locations=["fc-local"], servers=["fclone"], compare_with="fc-server", encryption_keys=["fc-key"]
    )
    assert [r["passed"] for r in rows] == [True], rows
