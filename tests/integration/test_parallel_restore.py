"""Parallel restore with deferred indexes: the restored schema and data equal the source."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import restore as core
from mysqlops.adapters import builds, process, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.model import Flavor, Location
from mysqlops.restore import load as restore_load
from mysqlops.restore import parallel
from mysqlops.restore.parallel import load_file_parallel
from mysqlops.runs import Reporter, RunContext
from mysqlops.sampledata import create_indexed_database
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.streams.compression import codec
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv
from tests.jobs import job

pytestmark = pytest.mark.integration


def schema_and_data(conn: db.Connection, database: str) -> dict[str, Any]:
    """SHOW CREATE of every object and CHECKSUM TABLE of every table of ``database``."""
    d = q(database)
    out: dict[str, Any] = {}
    for row in db.query(
        conn,
        "SELECT TABLE_NAME AS t, TABLE_TYPE AS k FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s ORDER BY 1",
        [database],
    ):
        t = str(row["t"])
        if row["k"] == "VIEW":
            out[f"view {t}"] = db.query(conn, f"SHOW CREATE VIEW {d}.{q(t)}")[0]["Create View"]
            continue
        out[f"table {t}"] = db.query(conn, f"SHOW CREATE TABLE {d}.{q(t)}")[0]["Create Table"]
        out[f"checksum {t}"] = db.query(conn, f"CHECKSUM TABLE {d}.{q(t)}")[0]["Checksum"]
        out[f"rows {t}"] = db.scalar(conn, f"SELECT COUNT(*) FROM {d}.{q(t)}")
    for row in db.query(conn, "SHOW TRIGGERS FROM " + d):
        trig = db.query(conn, f"SHOW CREATE TRIGGER {d}.{q(str(row['Trigger']))}")[0]
        out[f"trigger {row['Trigger']}"] = (trig["SQL Original Statement"], trig["sql_mode"])
    for kind in ("PROCEDURE", "FUNCTION"):
        for row in db.query(
            conn,
            "SELECT ROUTINE_NAME AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s AND ROUTINE_TYPE=%s",
            [database, kind],
        ):
            got = db.query(conn, f"SHOW CREATE {kind} {d}.{q(str(row['n']))}")[0]
            out[f"{kind.lower()} {row['n']}"] = got[f"Create {kind.title()}"]
    for row in db.query(
        conn, "SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s", [database]
    ):
        out[f"event {row['n']}"] = db.query(conn, f"SHOW CREATE EVENT {d}.{q(str(row['n']))}")[0][
            "Create Event"
        ]
    return out


@pytest.fixture
def two_servers(sandbox_root: str, server_build: builds.ServerBuild) -> Iterator[list[sandbox.SandboxServer]]:
    servers = []
    try:
        for i, name in enumerate(("prsrc", "prdst")):
            servers.append(
                sandbox.start_server(
                    sandbox_root, f"{name}-{server_build.name}", server_id=4700 + i, build=server_build
                )
            )
        yield servers
    finally:
        for s in servers:
            sandbox.stop_server(s)


@pytest.mark.flavors
def test_parallel_restore_equals_source(
    flavor: str, server_build: builds.ServerBuild, two_servers: list[sandbox.SandboxServer], tmp_path: Any
) -> None:
    """Tables with secondary indexes and FKs (also self-referencing), a JSON/text table, a FULLTEXT
    and a partitioned table, views on views, routines, triggers and an event: restored over two
    connections with keys deferred, every table's CHECKSUM TABLE and every object's SHOW CREATE
    equal the source's. Negative control: one dropped index makes the comparison differ."""
    source, target = two_servers
    with db.session(source.spec()) as conn:
        create_indexed_database(conn, "ix", rows=3000)
        before = schema_and_data(conn, "ix")
    lines: list[str] = []
    loaded: list[tuple[str, str]] = []

    def on_table(database: str, table: str) -> None:
        loaded.append((database, table))

    def slow_check(database: str, table: str) -> None:  # a per-table verification that takes a while
        time.sleep(0.8)
        on_table(database, table)

    if server_build.flavor is Flavor.MARIADB:
        local = Location("local", f"file://{tmp_path}/b")
        result = bk.run_backup(*job(source.spec(), [local], codec("zstd"), databases=["ix"]))
        assert result.ok, result

        def load(workers: int, on_table: Callable[[str, str], None] = on_table) -> None:
            restored = core.restore_backup(
                [(local, result.manifest)],
                target.spec(),
                RunContext(reporter=Reporter.from_log(lines.append)),
                load=core.LoadOptions(workers=workers),
                on_table=on_table,
            )
            assert restored.databases == {"ix": "ix"}
    else:
        # the core's logical backup picks the system (MariaDB) clients, which cannot dump a MySQL
        # 9.7 server: dump with the build's own mysqldump and load the file the same way
        dumped = tmp_path / "ix.sql"
        with (
            open(dumped, "wb") as out,
            process.Pipeline(
                [
                    dump_argv(
                        server_build.client_argv("dump"),
                        "ix",
                        DumpOptions(position_options=("--source-data=2", "--set-gtid-purged=COMMENTED")),
                    )
                ],
                credentials=client_option_file(source.spec()),
                stdout=out,
                name="dump of ix",
            ) as pipe,
        ):
            pipe.wait()
        spool = tmp_path / "spool"
        spool.mkdir()

        def load(workers: int, on_table: Callable[[str, str], None] = on_table) -> None:
            stats = load_file_parallel(
                str(dumped),
                "none",
                target.spec(),
                server_build.client_argv("mysql"),
                {},
                str(spool),
                workers=workers,
                log=lines.append,
                on_table=on_table,
            )
            assert stats.deferred_tables == 4 and set(stats.kept) == {"notes", "events_log"}, stats
            lines.append(f"over {workers} connection(s), keys deferred on {stats.deferred_tables}")
            assert not list(spool.iterdir())  # spooled units removed

    # small parts: a table's rows load over both connections at once, its keys after the last part
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "SPLIT_BYTES", 64 * 1024)
        load(2)
    if server_build.name != "mariadb-11.8":  # its dump writes these tables as one INSERT each: one part
        assert any("table `ix`.`orders`:" in ln and " parts)" in ln for ln in lines), lines
    summary = next(ln for ln in lines if "keys deferred on" in ln)
    assert "over 2 connection(s), keys deferred on 4" in summary, summary
    if server_build.flavor is Flavor.MARIADB:
        assert "notes (FULLTEXT" in summary and "events_log (partitioned table)" in summary
    with db.session(target.spec()) as conn:
        after = schema_and_data(conn, "ix")
    assert set(after) == set(before)
    assert [k for k in before if before[k] != after[k]] == []
    assert any("table `ix`.`orders`:" in ln and "deferred key(s) added" in ln for ln in lines)
    tables = ("audit", "customers", "docs", "events_log", "items", "notes", "orders")
    assert sorted(loaded) == sorted(("ix", t) for t in tables)
    assert not any("Name 1" in ln or "example.org" in ln for ln in lines)  # no row data in progress lines
    # one connection and a slow per-table check: units still wait in the queue when the stream
    # ends; every one is loaded all the same
    with db.session(target.spec()) as conn:
        db.execute(conn, "DROP DATABASE ix")
    loaded.clear()
    load(1, slow_check)
    assert sorted(loaded) == sorted(("ix", t) for t in tables)
    with db.session(target.spec()) as conn:
        again = schema_and_data(conn, "ix")
    assert [k for k in before if before[k] != again[k]] == []
    # negative control: the comparison sees a missing index
    with db.session(target.spec()) as conn:
        db.execute(conn, "ALTER TABLE ix.orders DROP KEY ix_total")
        dropped = schema_and_data(conn, "ix")
    assert [k for k in before if before[k] != dropped[k]] == ["table orders"]


def _load_sql(
    dump: Any, server: sandbox.SandboxServer, build: builds.ServerBuild, **options: Any
) -> parallel.ParallelStats:
    """A plain SQL file loaded by the parallel loader (its spool next to it)."""
    spool = dump.parent / "spool"
    spool.mkdir(exist_ok=True)
    return load_file_parallel(
        str(dump), "none", server.spec(), build.client_argv("mysql"), {}, str(spool), **options
    )


def test_hung_statement_fails_the_load(
    fresh_server: sandbox.SandboxServer, server_build: builds.ServerBuild, tmp_path: Any
) -> None:
    """A statement the server does not answer within the load's statement timeout fails the
    load with that reason instead of hanging it (here a 6 s statement against a 1 s limit); a
    generous limit lets the same statement finish."""
    dump = tmp_path / "hang.sql"
    dump.write_bytes(
        b"/*!40101 SET NAMES utf8mb4 */;\n"
        b"--\n-- Current Database: `hang`\n--\n\nCREATE DATABASE `hang`;\n\nUSE `hang`;\n\n"
        b"--\n-- Table structure for table `t`\n--\n\n"
        b"CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `v` int DEFAULT NULL,\n  PRIMARY KEY (`id`),\n"
        b"  KEY `k` (`v`)\n) ENGINE=InnoDB;\nDO SLEEP(6);\n\n"
        b"--\n-- Dumping data for table `t`\n--\n\nINSERT INTO `t` VALUES (1,1),(2,2);\n\n"
        b"-- Dump completed\n"
    )
    t0 = time.monotonic()
    with pytest.raises(Exception, match=r"no answer within the load's statement timeout of 1s"):
        _load_sql(dump, fresh_server, server_build, statement_timeout=1)
    assert time.monotonic() - t0 < 5
    with db.session(fresh_server.spec()) as conn:
        db.execute(conn, "DROP DATABASE hang")
    stats = _load_sql(dump, fresh_server, server_build, statement_timeout=60)
    assert stats.deferred == ["`hang`.`t`"]
    with db.session(fresh_server.spec()) as conn:
        assert db.scalar(conn, "SELECT COUNT(*) FROM hang.t") == 2


def test_split_table_error_names_its_line(
    fresh_server: sandbox.SandboxServer, server_build: builds.ServerBuild, tmp_path: Any
) -> None:
    """A table's rows loaded in parts over several connections: all rows in, keys after the last
    part; a failing statement in a later part is named by its line in the table's data section,
    as when the table loads whole."""
    rows = b"".join(b"INSERT INTO `t` VALUES (%d,'%s');\n" % (i, b"x" * 200) for i in range(1, 400))
    head = (
        b"/*!40101 SET NAMES utf8mb4 */;\n"
        b"--\n-- Current Database: `dup`\n--\n\nCREATE DATABASE `dup`;\n\nUSE `dup`;\n\n"
        b"--\n-- Table structure for table `t`\n--\n\n"
        b"CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `v` text,\n  PRIMARY KEY (`id`),\n  KEY `k` (`v`(10))\n"
        b") ENGINE=InnoDB;\n\n--\n-- Dumping data for table `t`\n--\n\nLOCK TABLES `t` WRITE;\n"
    )
    tail = b"UNLOCK TABLES;\n\n-- Dump completed\n"

    def load(body: bytes, split: int, log: list[str], workers: int = 2) -> None:
        dump = tmp_path / "d.sql"
        dump.write_bytes(head + body + tail)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(parallel, "SPLIT_BYTES", split)
            mp.setattr(restore_load, "_READ", 4096)  # small reads: several parts of 8 KiB
            _load_sql(dump, fresh_server, server_build, workers=workers, log=log.append)

    log: list[str] = []
    load(rows, 8 * 1024, log)
    parts = [ln for ln in log if "table `dup`.`t`:" in ln and " parts), 1 deferred key(s) added" in ln]
    assert parts and int(parts[0].split("(in ")[1].split(" ")[0]) >= 5, log
    with db.session(fresh_server.spec()) as conn:
        assert db.scalar(conn, "SELECT COUNT(*) FROM dup.t") == 399
        assert "KEY `k`" in db.query(conn, "SHOW CREATE TABLE dup.t")[0]["Create Table"]
        db.execute(conn, "DROP DATABASE dup")
    messages = []
    for split in (1 << 30, 8 * 1024):
        with pytest.raises(Exception, match="1062") as info:
            # one connection: the parts load in order, the duplicate (in the last part) fails
            load(rows + b"INSERT INTO `t` VALUES (7,'again');\n", split, [], workers=1)
        messages.append(str(info.value))
        with db.session(fresh_server.spec()) as conn:
            db.execute(conn, "DROP DATABASE dup")
    line = 4 + 399 + 1  # from the marker line: 3 comment/blank lines, LOCK TABLES, the rows, the duplicate
    assert all(f"failed at line {line} (INSERT INTO: data of table `t`)" in m for m in messages), messages
