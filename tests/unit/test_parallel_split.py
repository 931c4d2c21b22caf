"""Pure parts of the parallel restore: splitting a dump per table, deferring keys exactly."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mysqlops.model import ServerSpec
from mysqlops.restore.parallel import ParallelLoader
from mysqlops.sql.ddl import NOTHING_TO_DEFER, add_clauses_sql, defer_indexes
from mysqlops.sql.script import session_prefix, statements
from mysqlops.streams.tablesplit import TableSplitter

DATA = os.path.join(os.path.dirname(__file__), "data")

ORDERS = """CREATE TABLE `orders` (
  `id` bigint(20) NOT NULL,
  `customer_id` int(11) NOT NULL,
  `sku` varchar(20) NOT NULL COMMENT 'a, b',
  `total` decimal(12,2) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_sku` (`sku`,`id`),
  KEY `ix_customer` (`customer_id`),
  KEY `ix_total` (`total`) COMMENT 'x,',
  CONSTRAINT `fk_c` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE,
  CONSTRAINT `chk` CHECK (`total` >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;"""


def test_defer_indexes_takes_out_keys_and_fks_in_order() -> None:
    split = defer_indexes(ORDERS)
    assert split.keys == (
        "UNIQUE KEY `uq_sku` (`sku`,`id`)",
        "KEY `ix_customer` (`customer_id`)",
        "KEY `ix_total` (`total`) COMMENT 'x,'",
    )
    assert split.foreign_keys == (
        "CONSTRAINT `fk_c` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE",
    )
    assert split.create == (
        "CREATE TABLE `orders` (\n  `id` bigint(20) NOT NULL,\n  `customer_id` int(11) NOT NULL,\n"
        "  `sku` varchar(20) NOT NULL COMMENT 'a, b',\n  `total` decimal(12,2) NOT NULL,\n  PRIMARY KEY (`id`),\n"
        "  CONSTRAINT `chk` CHECK (`total` >= 0)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;"
    )
    assert add_clauses_sql("`orders`", split.keys) == (
        "ALTER TABLE `orders` ADD UNIQUE KEY `uq_sku` (`sku`,`id`), ADD KEY `ix_customer` (`customer_id`), "
        "ADD KEY `ix_total` (`total`) COMMENT 'x,'"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda s: s.replace(";", "\n/*!50100 PARTITION BY HASH (`id`)\nPARTITIONS 4 */;"),
            "partitioned table",
        ),
        (
            lambda s: s.replace("  KEY `ix_total`", "  FULLTEXT KEY `ft` (`sku`),\n  KEY `ix_total`"),
            "FULLTEXT",
        ),
        (lambda s: s.replace("ENGINE=InnoDB", "ENGINE=MyISAM"), "engine MyISAM"),
        (
            lambda s: s.replace(" DEFAULT CHARSET", " WITH SYSTEM VERSIONING DEFAULT CHARSET"),
            "system-versioned",
        ),
        (lambda s: s.replace("CREATE TABLE `orders` (", "CREATE TABLE `orders`("), "SHOW CREATE TABLE form"),
    ],
)
def test_defer_indexes_leaves_what_cannot_be_exact(change: object, reason: str) -> None:
    changed = change(ORDERS)  # type: ignore[operator]
    split = defer_indexes(changed)
    assert not split.deferred and split.create == changed and reason in split.kept_reason


def test_auto_increment_column_keeps_its_only_key_and_the_keys_before_it() -> None:
    create = (
        "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`a`),\n"
        "  KEY `k1` (`a`),\n  KEY `k_id` (`id`),\n  KEY `k3` (`a`,`id`)\n) ENGINE=InnoDB;"
    )
    split = defer_indexes(create)
    assert split.keys == ("KEY `k3` (`a`,`id`)",)
    assert "KEY `k1`" in split.create and "KEY `k_id`" in split.create and "k3" not in split.create
    plain = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;"
    assert defer_indexes(plain).kept_reason == NOTHING_TO_DEFER


def test_unique_keys_stay_without_a_primary_key_and_long_uniques_stay() -> None:
    no_pk = (
        "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  `b` int DEFAULT NULL,\n  UNIQUE KEY `ua` (`a`),\n"
        "  KEY `kb` (`b`)\n) ENGINE=InnoDB;"
    )
    split = defer_indexes(no_pk)  # InnoDB clusters on `ua`: adding it later would rebuild the table
    assert split.keys == ("KEY `kb` (`b`)",) and "UNIQUE KEY `ua`" in split.create
    long_unique = (
        "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `t` text DEFAULT NULL,\n  `u` int DEFAULT NULL,\n"
        "  PRIMARY KEY (`id`),\n  UNIQUE KEY `ut` (`t`) USING HASH,\n  UNIQUE KEY `uu` (`u`),\n  KEY `ku` (`u`)\n"
        ") ENGINE=InnoDB;"
    )
    split = defer_indexes(long_unique)
    assert split.keys == ("UNIQUE KEY `uu` (`u`)", "KEY `ku` (`u`)") and "USING HASH" in split.create


def _split(data: bytes, size: int) -> dict[str, object]:
    out: dict[str, object] = {"serial": bytearray(), "post": bytearray(), "data": {}, "order": bytearray()}
    current: list[str] = []

    def on(route: str):  # type: ignore[no-untyped-def]
        def take(b: memoryview) -> None:
            if route == "data":
                out["data"].setdefault(current[-1], bytearray()).extend(b)  # type: ignore[union-attr]
            else:
                out[route].extend(b)  # type: ignore[union-attr]
            out["order"].extend(b)  # type: ignore[union-attr]

        return take

    sp = TableSplitter(
        on_serial=on("serial"), on_post=on("post"), on_data=on("data"), on_data_start=current.append
    )
    for i in range(0, len(data), size):
        sp.feed(data[i : i + size])
    sp.finish()
    out["header"] = bytes(sp.header)
    out["tables"] = list(sp.tables)
    return out


@pytest.mark.parametrize("name", ["single_a.sql", "multi_a_bx.sql", "rename_src.sql"])
def test_splitter_routes_every_byte_whatever_the_chunking(name: str) -> None:
    with open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    whole = _split(data, len(data))
    assert whole["order"] == data  # nothing lost, nothing reordered
    for size in (1, 7, 64, 4096):
        assert _split(data, size) == whole, size
    if name == "single_a.sql":
        assert whole["tables"] == ["t"]
        rows = bytes(whole["data"]["t"])  # type: ignore[index]
        assert rows.startswith(b"-- Dumping data for table `t`") and rows.rstrip().endswith(b"UNLOCK TABLES;")
        post = bytes(whole["post"])  # type: ignore[arg-type]
        assert b"TRIGGER a.tr" in post and b"Dumping routines" in post and b"Final view structure" in post
        serial = bytes(whole["serial"])  # type: ignore[arg-type]
        assert b"CREATE TABLE `t`" in serial and b"Temporary table structure for view `v`" in serial
        assert b"TRIGGER" not in serial and b"INSERT" not in serial
        prefix = session_prefix(whole["header"])  # type: ignore[arg-type]
        assert b"FOREIGN_KEY_CHECKS=0" in prefix and b"UNIQUE_CHECKS=0" in prefix and b"GLOBAL" not in prefix


def test_statements_of_the_serial_part() -> None:
    text = (
        b"/*M!999999\\- enable the sandbox mode */ \n-- comment\n\n/*!40101 SET NAMES utf8mb4 */;\n"
        b"CREATE TABLE `t` (\n  `a` int\n) ENGINE=InnoDB;\n"
    )
    assert list(statements(text)) == [
        b"/*!40101 SET NAMES utf8mb4 */",
        b"CREATE TABLE `t` (\n  `a` int\n) ENGINE=InnoDB",
    ]


def test_spool_of_an_encrypted_backup_is_sealed(tmp_path: Any) -> None:
    """The rows of an encrypted backup wait for a connection sealed with a key that only the
    loading process holds; unsealed they are the bytes spooled (no server involved here)."""
    rows = b"-- Dumping data for table `t`\nINSERT INTO `t` VALUES (1,'CANARY-ROW-VALUE');\n"
    for seal in (True, False):
        spool = tmp_path / f"spool-{seal}"
        spool.mkdir()
        loader = ParallelLoader(
            ServerSpec(name="none", host="127.0.0.1", port=1), "mariadb", str(spool), seal_spool=seal
        )
        loader._data_starts("t")
        loader._data_bytes(memoryview(rows))
        loader._data_ends("t")
        (path,) = spool.iterdir()
        stored = path.read_bytes()
        assert (b"CANARY-ROW-VALUE" in stored) is not seal  # positive control: unsealed, it is there
        assert b"".join(loader._unit_chunks(str(path))) == rows
