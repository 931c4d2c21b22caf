"""Point-in-time restore of tables, the pure parts: which statements a binlog window holds,
whether a replay filtered to one database is exact, the replay's --database argv, the request."""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import Any

import pytest

from mysqlops.binlog.statements import (
    Statement,
    Transaction,
    database_filter_problem,
    read_statements,
    table_filter_problem,
)
from mysqlops.errors import ConfigError
from mysqlops.model import BinlogCoordinates, Location, RecoveryTarget, ServerSpec
from mysqlops.restore.request import RestoreRequest
from mysqlops.tools.binlog import replay_argv
from tests.unit.test_binlog_unit import T0, _event, _fde


def _query(database: str, text: str, status: bytes = b"\x00\x01\x00\x00\x00") -> bytes:
    db = database.encode()
    return struct.pack("<IIBHH", 7, 0, len(db), 0, len(status)) + status + db + b"\0" + text.encode()


def _binlog(tmp_path: Any, events: list[tuple[int, int, bytes]]) -> tuple[str, list[int]]:
    out = bytearray(b"\xfebin")
    t = int(T0.timestamp())
    out += _fde(t, 7, True)
    positions = []
    for offset, etype, body in events:
        positions.append(len(out))
        out += _event(t + offset, etype, 7, body, len(out))
    path = tmp_path / "mysql-bin.000001"
    path.write_bytes(bytes(out))
    return str(path), positions


def test_read_statements_window_and_default_database(tmp_path: Any) -> None:
    path, pos = _binlog(
        tmp_path,
        [
            (0, 2, _query("shop", "BEGIN")),
            (0, 2, _query("", "ALTER TABLE shop.orders ADD COLUMN x INT")),
            (1, 30, b"rows"),  # a row event: not a statement
            (2, 2, _query("crm", "ALTER TABLE contacts ADD COLUMN y INT")),
            (3, 165, b"zipped"),
        ],
    )
    got = list(read_statements(path))
    assert [(s.database, s.text) for s in got[:3]] == [
        ("shop", "BEGIN"),
        ("", "ALTER TABLE shop.orders ADD COLUMN x INT"),
        ("crm", "ALTER TABLE contacts ADD COLUMN y INT"),
    ]
    assert got[3].text is None and "compressed" in got[3].unreadable and got[1].position == pos[1]
    assert [s.text for s in read_statements(path, start=pos[1], stop_position=pos[3])] == [
        "ALTER TABLE shop.orders ADD COLUMN x INT"
    ]
    # a time target stops before the first event of its second, as --stop-datetime does
    assert len(list(read_statements(path, stop_time=T0 + timedelta(seconds=2)))) == 2


def _table_map(database: str, table: str) -> bytes:
    return (
        bytes(8)
        + bytes([len(database)])
        + database.encode()
        + b"\0"
        + bytes([len(table)])
        + table.encode()
        + b"\0"
    )


def test_read_statements_reports_the_tables_each_transaction_changed(tmp_path: Any) -> None:
    gtid = bytes(13)
    path, pos = _binlog(
        tmp_path,
        [
            (0, 162, gtid),
            (0, 19, _table_map("shop", "orders")),
            (0, 19, _table_map("shop", "audit")),
            (0, 162, gtid),
            (0, 2, _query("shop", "ALTER TABLE orders ADD COLUMN x INT")),
            (0, 162, gtid),
            (0, 19, _table_map("shop", "orders")),
        ],
    )
    got = list(read_statements(path))
    assert got == [
        Transaction("mysql-bin.000001", pos[0], frozenset({"shop.orders", "shop.audit"})),
        Statement("mysql-bin.000001", pos[4], "shop", "ALTER TABLE orders ADD COLUMN x INT"),
        Transaction("mysql-bin.000001", pos[5], frozenset({"shop.orders"})),
    ]
    problem = table_filter_problem(got, "shop", "orders", ["orders", "audit"])
    assert problem is not None and "changed shop.orders and shop.audit together" in problem
    assert table_filter_problem(got[1:], "shop", "orders", ["orders", "audit"]) is None


def test_table_filter_refuses_statements_naming_other_tables_and_statement_logged_rows() -> None:
    assert (
        table_filter_problem([_s("shop", "ALTER TABLE orders ADD x INT")], "shop", "orders", ["audit"])
        is None
    )
    assert "names the table shop.audit" in (
        table_filter_problem([_s("shop", "DROP TABLE `audit`")], "shop", "orders", ["orders", "audit"]) or ""
    )
    assert "logged as a statement" in (
        table_filter_problem([_s("shop", "UPDATE orders SET x = 1")], "shop", "orders", ["audit"]) or ""
    )


def _s(database: str, text: str | None, why: str = "") -> Statement:
    return Statement("mysql-bin.000001", 100, database, text, why)


def test_database_filter_is_exact_only_when_every_statement_stays_in_its_database() -> None:
    fine = [
        _s("shop", "BEGIN"),
        _s("shop", "ALTER TABLE orders ADD COLUMN x INT"),
        _s("crm", "ALTER TABLE contacts ADD COLUMN `shopper` INT"),  # 'shopper' is not 'shop'
        _s("", "CREATE DATABASE other"),
    ]
    assert database_filter_problem(fine, "shop", ["shop", "crm"]) is None
    dropped = [*fine, _s("", "ALTER TABLE `SHOP`.orders ADD COLUMN y INT")]
    assert "no default database names 'shop'" in (database_filter_problem(dropped, "shop", ["crm"]) or "")
    elsewhere = [_s("crm", "USE x"), _s("shop", "INSERT INTO crm.contacts SELECT * FROM orders")]
    assert "names the database 'crm'" in (database_filter_problem(elsewhere, "shop", []) or "")
    unreadable = [_s("", None, "a compressed query event")]
    assert "cannot be checked" in (database_filter_problem(unreadable, "shop", []) or "")


def test_replay_argv_filters_by_database_and_table() -> None:
    argv = replay_argv("mariadb-binlog", ["f"], BinlogCoordinates("mysql-bin.000001", 4), database="shop")
    assert argv == ("mariadb-binlog", "--no-defaults", "--disable-log-bin", "--database=shop", "f")
    argv = replay_argv(
        "mariadb-binlog", ["f"], BinlogCoordinates("m.000001", 4), database="shop", table="orders"
    )
    assert argv[-3:] == ("--database=shop", "--table=orders", "f")
    with pytest.raises(ConfigError):
        replay_argv("mariadb-binlog", ["f"], BinlogCoordinates("m.000001", 4), table="orders")
    with pytest.raises(ConfigError):
        replay_argv("mariadb-binlog", ["f"], BinlogCoordinates("mysql-bin.000001", 4), database="")


def test_request_takes_tables_with_a_point_in_time() -> None:
    base: dict[str, Any] = {
        "target": ServerSpec("t", "127.0.0.1", 3306, "u", "p"),
        "locations": (Location("l", "file:///x"),),
        "server": "src",
        "until": RecoveryTarget(time=T0),
    }
    RestoreRequest(**base, tables=("shop.orders",), rename={"shop.orders": "orders_then"}).check()
    with pytest.raises(ConfigError, match="drop rename"):
        RestoreRequest(**base, rename={"shop": "shop2"}).check()
