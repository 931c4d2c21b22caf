"""The restore flow's ``tables`` parameter reaches the core: one table restored under another
name into a live database, nothing else touched; with a point in time it is refused early; the
load's ``workers`` and ``load_timeout_s`` are flow parameters, judged before anything is read."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox

pytestmark = [pytest.mark.flows, pytest.mark.integration]


def test_restore_flow_tables(sandbox_root: str, tmp_path: Any) -> None:
    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup
    from flows.restore import restore

    server = sandbox.start_server(sandbox_root, "ftab", server_id=721)
    target = sandbox.start_server(sandbox_root, "ftabt", server_id=722)
    try:
        for name, s in (("ft-server", server), ("ft-target", target)):
            MySQLServer(
                port=s.port, user="root", password=SecretStr(s.root_password), server_name=s.name
            ).save(name, overwrite=True)
        BackupLocation(url=f"file://{tmp_path}/b").save("ft-local", overwrite=True)
        with db.session(server.spec()) as conn:
            db.execute(conn, "CREATE DATABASE app")
            db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
            db.execute(conn, "CREATE TABLE app.u (id INT PRIMARY KEY)")
            db.execute(conn, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')")
            db.execute(conn, "INSERT INTO app.u VALUES (1)")
        with db.session(target.spec()) as conn:
            db.execute(conn, "CREATE DATABASE app")
            db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
            db.execute(conn, "INSERT INTO app.t VALUES (9, 'live')")
        backup(server="ft-server", locations=["ft-local"], progress_interval=0)
        done = restore(
            target="ft-target",
            locations=["ft-local"],
            server="ftab",
            tables=["app.t"],
            rename={"app.t": "t_restored"},
            workers=1,
            load_timeout_s=600,
        )
        assert done["databases"] == {"app.t": "app.t_restored"} and done["locations_used"] == {
            "app.t": "ft-local"
        }
        with db.session(target.spec()) as conn:
            assert [r["v"] for r in db.query(conn, "SELECT v FROM app.t_restored ORDER BY id")] == ["a", "b"]
            assert [r["v"] for r in db.query(conn, "SELECT v FROM app.t")] == ["live"]
            assert db.scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME='u'") == 0
        # the load's options are judged before anything is read
        for bad, message in (
            ({"workers": -1}, "workers must be 0"),
            ({"load_timeout_s": 0}, "load_timeout_s must be"),
        ):
            state = restore(
                target="ft-target",
                locations=["ft-local"],
                server="ftab",
                tables=["app.u"],
                return_state=True,
                **bad,
            )
            assert state.is_failed() and message in str(state.result(raise_on_failure=False))
        state = restore(
            target="ft-target",
            locations=["ft-local"],
            server="ftab",
            tables=["app.u"],
            until_position="mysql-bin.000001:4",
            return_state=True,
        )
        # tables to a point in time are taken now (restore/table_pitr); this one is before the backup
        assert state.is_failed() and "before the recovery target" in str(state.result(raise_on_failure=False))
    finally:
        sandbox.stop_server(target)
        sandbox.stop_server(server)
