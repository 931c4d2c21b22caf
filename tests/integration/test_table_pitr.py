"""Point-in-time restore of one table: base backup's database on a scratch server, that
database's binlog events replayed there, only the table moved into a live target."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import binlog as binlog
from mysqlops import restore
from mysqlops.adapters import mysql as db
from mysqlops.adapters import reaper, sandbox
from mysqlops.errors import RestoreError
from mysqlops.model import Location, RecoveryTarget
from mysqlops.restore import table_pitr
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec
from tests.jobs import job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRATCH_GLOB = "/tmp/mysqlops-tpitr-*"  # where table_pitr's scratch servers live


def _state(conn: Any, database: str, table: str) -> tuple[Any, ...]:
    """CHECKSUM TABLE, every row, the columns and the indexes of ``database.table`` (from
    information_schema: SHOW CREATE of a table loaded on MySQL 9.7 spells a column's collation
    with its CHARACTER SET, the same column)."""
    checksum = db.query(conn, f"CHECKSUM TABLE `{database}`.`{table}`")[0]["Checksum"]
    rows = db.query(conn, f"SELECT * FROM `{database}`.`{table}` ORDER BY id")
    columns = db.query(
        conn,
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
        [database, table],
    )
    indexes = db.query(
        conn,
        "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        [database, table],
    )
    return checksum, rows, columns, indexes


def _snapshot(conn: Any, database: str) -> dict[str, Any]:
    tables = [
        r["t"]
        for r in db.query(
            conn,
            "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s ORDER BY 1",
            [database],
        )
    ]
    return {t: _state(conn, database, t) for t in tables}


@pytest.mark.flavors
def test_single_table_point_in_time_restore(flavor: str, sandbox_root: str, tmp_path: Any) -> None:
    source = sandbox.start_server(sandbox_root, f"tpsrc-{flavor}", server_id=861, build=flavor)
    target = sandbox.start_server(sandbox_root, f"tpdst-{flavor}", server_id=862, build=flavor)
    location = Location("local", f"file://{tmp_path}/b")
    scratch_before = set(glob.glob(SCRATCH_GLOB))
    try:
        spec = source.spec()
        with db.session(spec) as conn:
            for sql in (
                "CREATE DATABASE shop",
                "CREATE DATABASE crm",
                "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40), qty INT, KEY (qty))",
                "CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT, what VARCHAR(20))",
                "CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(40))",
                "CREATE TABLE crm.contacts (id INT PRIMARY KEY, name VARCHAR(40))",
                "CREATE VIEW shop.big_orders AS SELECT id, qty FROM shop.orders WHERE qty > 5",
                # a trigger changing the row itself: fired again on replay, the notes would differ
                "CREATE TRIGGER shop.orders_bi BEFORE INSERT ON shop.orders FOR EACH ROW "
                "SET NEW.note = CONCAT(NEW.note, '+')",
                "CREATE TRIGGER shop.orders_au AFTER UPDATE ON shop.orders FOR EACH ROW "
                "INSERT INTO shop.audit (order_id, what) VALUES (NEW.id, 'update')",
                "INSERT INTO shop.orders VALUES (1, 'base', 1), (2, 'base', 2), (3, 'base', 9)",
                "INSERT INTO shop.customers VALUES (1, 'ann')",
                "INSERT INTO crm.contacts VALUES (1, 'bob')",
            ):
                db.execute(conn, sql)
        bk.run_backup(*job(spec, [location], codec("zstd")))
        with db.session(spec) as conn, db.session(spec) as crm, db.session(spec) as bare:
            db.execute(conn, "USE shop")
            db.execute(crm, "USE crm")
            for session, sql in (
                (conn, "INSERT INTO orders VALUES (4, 'after backup', 4)"),
                (conn, "DELETE FROM orders WHERE id = 1"),
                (conn, "INSERT INTO customers VALUES (2, 'cy')"),  # rows of another table
                (crm, "ALTER TABLE contacts ADD COLUMN phone VARCHAR(20)"),  # DDL in another database
                (crm, "INSERT INTO contacts VALUES (2, 'dee', '555')"),
                (conn, "ALTER TABLE orders ADD COLUMN flag INT NOT NULL DEFAULT 7"),  # DDL on the table
                (conn, "INSERT INTO orders VALUES (5, 'after alter', 5, 8)"),
            ):
                db.execute(session, sql)
            time.sleep(1.1)
            at_0 = datetime.now(UTC).replace(microsecond=0)
            expected_0 = _state(conn, "shop", "orders")
            time.sleep(1.1)
            db.execute(conn, "ALTER TABLE customers ADD COLUMN email VARCHAR(60)")  # DDL on another table
            db.execute(conn, "UPDATE orders SET qty = qty + 10 WHERE id = 2")  # its trigger writes to audit
            db.execute(conn, "UPDATE orders SET note = 'changed' WHERE id = 4")
            time.sleep(1.1)
            at_1 = datetime.now(UTC).replace(microsecond=0)
            expected_1 = _state(conn, "shop", "orders")
            time.sleep(1.1)
            # DDL of the table from a session with no default database: --database=shop drops it
            db.execute(bare, "ALTER TABLE shop.orders ADD COLUMN extra VARCHAR(10) NOT NULL DEFAULT 'x'")
            db.execute(conn, "INSERT INTO orders VALUES (6, 'after bare alter', 6, 9, 'y')")
            db.execute(conn, "UPDATE orders SET qty = 0 WHERE id = 3")
            time.sleep(1.1)
            at_2 = datetime.now(UTC).replace(microsecond=0)
            expected_2 = _state(conn, "shop", "orders")
            time.sleep(1.1)
            for session, sql in (
                (conn, "INSERT INTO orders VALUES (7, 'too late', 6, 0, 'z')"),
                (conn, "UPDATE orders SET note = 'too late'"),
                (conn, "DROP TABLE customers"),
                (crm, "DELETE FROM contacts"),
            ):
                db.execute(session, sql)
        binlog.archive_binlogs(
            spec, [location], codec("zstd"), RunContext(staging_dir=str(tmp_path)), datetime.now(UTC)
        )
        with db.session(target.spec()) as conn:
            for sql in (
                "CREATE DATABASE shop",
                "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(40))",
                "INSERT INTO shop.orders VALUES (1, 'live')",
                "CREATE TABLE shop.payments (id INT PRIMARY KEY, amount INT)",
                "INSERT INTO shop.payments VALUES (1, 100)",
            ):
                db.execute(conn, sql)
            live = _snapshot(conn, "shop")
        ctx = RunContext(staging_dir=str(tmp_path / "staging"))

        def request(at: datetime, **kw: Any) -> restore.RestoreRequest:
            return restore.RestoreRequest(
                target=target.spec(),
                locations=(location,),
                server=spec.name,
                until=RecoveryTarget(time=at),
                tables=("shop.orders",),
                **kw,
            )

        # refused before any scratch work: the target table exists and overwrite is not given
        with pytest.raises(RestoreError, match=r"already exist.*overwrite=True"):
            restore.run(request(at_1), ctx)
        # a point outside the archived window: refused before any scratch work, nothing changed
        with pytest.raises(RestoreError, match="the archive ends at"):
            restore.run(request(datetime.now(UTC) + timedelta(hours=1), overwrite=True), ctx)
        with pytest.raises(RestoreError, match="before the recovery target"):
            restore.run(request(datetime(2000, 1, 1, tzinfo=UTC), overwrite=True), ctx)
        assert set(glob.glob(SCRATCH_GLOB)) == scratch_before
        with db.session(target.spec()) as conn:
            assert _snapshot(conn, "shop") == live

        # up to at_0 no statement run from shop names another of its tables: on MariaDB only the
        # table is restored on the scratch server and only its row events replayed (--table);
        # mysqlbinlog has no table filter, so on MySQL its database is (--database)
        done = restore.run(request(at_0, rename={"shop.orders": "orders_at0"}), ctx)
        assert (
            done.summary()["databases"] == {"shop.orders": "shop.orders_at0"}
            and done.summary()["binlogs_replayed"]
        )
        assert isinstance(done.pitr, table_pitr.TablePitrResult)
        assert done.pitr.scope == ("table" if flavor.startswith("mariadb") else "database"), (
            done.pitr.scope_reason
        )
        assert done.pitr.row_format.startswith("ROW")
        # up to at_1 a statement run from shop altered shop.customers: its database is replayed
        then = table_pitr.table_point_in_time_restore(
            [location],
            spec.name,
            target.spec(),
            RecoveryTarget(time=at_1),
            ["shop.orders"],
            rename={"shop.orders": "orders_at1"},
            ctx=ctx,
        )
        assert then.scope == "database", then.scope_reason
        with db.session(target.spec()) as conn:
            for name, expected in (("orders_at0", expected_0), ("orders_at1", expected_1)):
                got = _state(conn, "shop", name)
                assert got[1:] == expected[1:]
                assert got == expected
            notes = [r["note"] for r in _state(conn, "shop", "orders_at0")[1]]
            assert notes == ["base+", "base+", "after backup+", "after alter+"]  # triggers not fired again
            for name, state in live.items():  # the live tables untouched
                assert _state(conn, "shop", name) == state
            renamed_triggers = "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='shop'"
            assert db.scalar(conn, renamed_triggers) == 0  # restored under another name: none
            assert (
                db.scalar(conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='crm'")
                == 0
            )

        # a DDL of the table without a default database in the window: every database is
        # replayed instead; restored under its own name over the live table, with its triggers
        result = table_pitr.table_point_in_time_restore(
            [location],
            spec.name,
            target.spec(),
            RecoveryTarget(time=at_2),
            ["shop.orders"],
            overwrite=True,
            ctx=ctx,
        )
        assert result.scope == "server" and "no default database names 'shop'" in result.scope_reason
        assert result.row_format.startswith("ROW")
        with db.session(target.spec()) as conn:
            got = _state(conn, "shop", "orders")
            assert got[1:] == expected_2[1:]
            assert got == expected_2
            assert _state(conn, "shop", "payments") == live["payments"]
            triggers = db.query(
                conn,
                "SELECT TRIGGER_NAME AS t FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_TABLE='orders' ORDER BY 1",
            )
            assert [r["t"] for r in triggers] == ["orders_au", "orders_bi"]
        assert set(glob.glob(SCRATCH_GLOB)) == scratch_before, "a scratch server was left behind"
    finally:
        sandbox.stop_server(source)
        sandbox.stop_server(target)


CHILD = """
import json, sys
from datetime import datetime
from mysqlops.model import Location, RecoveryTarget, ServerSpec
from mysqlops.restore import table_pitr
from mysqlops.runs import RunContext

c = json.load(sys.stdin)  # the target's password by pipe, never argv
table_pitr.table_point_in_time_restore(
    [Location("local", c["location"])], c["server"], ServerSpec("dst", "127.0.0.1", c["port"], "root", c["password"]),
    RecoveryTarget(time=datetime.fromisoformat(c["at"])), ["shop.big"], rename={"shop.big": "big_then"},
    ctx=RunContext(staging_dir=c["staging"]),
)
"""


def test_kill9_table_pitr_leaves_nothing_after_the_next_reap(sandbox_root: str, tmp_path: Any) -> None:
    """kill -9 while the scratch server is being rebuilt: the target is untouched, and what is
    left (the running scratch server, its directory, the staged binlogs and copy) carries the
    owner marker, so the next run's reaper stops the server and removes everything."""
    source = sandbox.start_server(sandbox_root, "tpksrc", server_id=863)
    target = sandbox.start_server(sandbox_root, "tpkdst", server_id=864)
    location = Location("local", f"file://{tmp_path}/b")
    staging = tmp_path / "staging"
    child = None
    try:
        spec = source.spec()
        with db.session(spec) as conn:
            db.execute(conn, "CREATE DATABASE shop")
            db.execute(conn, "CREATE TABLE shop.big (id INT PRIMARY KEY, pad VARCHAR(200))")
            db.execute(conn, "INSERT INTO shop.big SELECT seq, REPEAT('p', 180) FROM shop.seq_1_to_300000")
        bk.run_backup(*job(spec, [location], codec("zstd")))
        with db.session(spec) as conn:
            db.execute(conn, "UPDATE shop.big SET pad = 'x' WHERE id % 3 = 0")
        time.sleep(1.1)
        at = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)
        binlog.archive_binlogs(
            spec, [location], codec("zstd"), RunContext(staging_dir=str(tmp_path)), datetime.now(UTC)
        )
        before = set(glob.glob(SCRATCH_GLOB))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])},
        )
        assert child.stdin is not None
        child.stdin.write(
            json.dumps(
                {
                    "location": location.url,
                    "server": spec.name,
                    "port": target.port,
                    "password": target.root_password,
                    "at": at.isoformat(),
                    "staging": str(staging),
                }
            ).encode()
        )
        child.stdin.close()
        deadline = time.monotonic() + 120
        scratch = None
        while time.monotonic() < deadline and child.poll() is None:  # until the scratch server runs
            new = set(glob.glob(SCRATCH_GLOB)) - before
            if new and glob.glob(f"{next(iter(new))}/*/mysqld.pid"):
                scratch = next(iter(new))
                break
            time.sleep(0.05)
        assert scratch is not None, f"no scratch server seen (child exit {child.poll()})"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        (pid_file,) = glob.glob(f"{scratch}/*/mysqld.pid")
        server_pid = int(pathlib.Path(pid_file).read_text())
        assert server_pid in [p.pid for p in reaper.servers_on(scratch)]  # the orphan the reaper exists for
        assert list(staging.iterdir())
        report = reaper.reap([str(staging)], prefect=False)  # what the next run does first
        assert any(r.path == scratch and server_pid in r.servers_killed for r in report.removed), (
            report.lines()
        )
        assert reaper.process_start(server_pid) is None
        assert not os.path.exists(scratch) and list(staging.iterdir()) == []
        with db.session(target.spec()) as conn:
            assert (
                db.scalar(conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='shop'")
                == 0
            )
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        sandbox.stop_server(source)
        sandbox.stop_server(target)
