"""Table sections of a dump stream (pure): boundaries, chunking independence, the renamer."""

from __future__ import annotations

import pytest

from mysqlops.restore.rename import TableRenamer
from mysqlops.streams import crypto
from mysqlops.streams.dumpscan import FOOTER, DumpScanner

HEADER = b"-- MariaDB dump 10.19\n--\n-- Host: x\n-- ----\n/*!40101 SET NAMES utf8mb4 */;\n\n"


def _table(name: str, rows: int, trigger: bool = False) -> tuple[bytes, bytes, bytes]:
    structure = (
        b"--\n-- Table structure for table `" + name.encode() + b"`\n--\n\n"
        b"DROP TABLE IF EXISTS `" + name.encode() + b"`;\n"
        b"CREATE TABLE `" + name.encode() + b"` (\n  `id` int(11) NOT NULL,\n"
        b"  CONSTRAINT `fk_"
        + name.encode()
        + b"` FOREIGN KEY (`id`) REFERENCES `p` (`id`)\n) ENGINE=InnoDB;\n\n"
    )
    values = b",".join(b"(%d,'--\\n-- Table structure for table `x`')" % i for i in range(rows))
    data = (
        b"--\n-- Dumping data for table `" + name.encode() + b"`\n--\n\n"
        b"LOCK TABLES `" + name.encode() + b"` WRITE;\n"
        b"INSERT INTO `" + name.encode() + b"` VALUES " + values + b";\nUNLOCK TABLES;\n"
    )
    triggers = b""
    if trigger:
        triggers = (
            b"/*!50003 SET @saved_cs_client      = @@character_set_client */ ;\n"
            b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER t_ai AFTER INSERT ON `"
            + name.encode()
            + b"` FOR EACH ROW SET @x = 1 */;;\nDELIMITER ;\n"
            b"/*!50003 SET character_set_client  = @saved_cs_client */ ;\n\n"
        )
    return structure, data, triggers


def _dump() -> tuple[bytes, dict[tuple[str, str], bytes]]:
    parts: dict[tuple[str, str], bytes] = {}
    body = HEADER + b"--\n-- Current Database: `shop`\n--\n\nCREATE DATABASE `shop`;\n\nUSE `shop`;\n\n"
    for name, rows, trig in (("a", 3, False), ("b`q", 2000, True), ("c", 0, False)):
        s, d, t = _table(name, rows, trig)
        parts[(name, "structure")], parts[(name, "data")] = s, d
        if t:
            parts[(name, "triggers")] = t
        body += s + d + t
    body += b"--\n-- Dumping routines for database 'shop'\n--\n\n" + FOOTER + b"\n-- Dump completed on x\n"
    return body, parts


def _scan(data: bytes, chunk: int) -> list[tuple[str, str | None, bytes]]:
    out: list[bytes] = []
    marks: list[tuple[str, str | None, int]] = []

    def on_data(_db: str | None, piece: bytes | memoryview) -> None:
        out.append(bytes(piece))

    def on_section(kind: str, table: str | None) -> None:
        marks.append((kind, table, sum(map(len, out))))

    scanner = DumpScanner(on_data, on_section)
    for i in range(0, len(data), chunk):
        scanner.feed(data[i : i + chunk])
    scanner.finish()
    joined = b"".join(out)
    assert joined == data and scanner.completed
    bounds = [m[2] for m in marks] + [len(data)]
    return [(k, t, joined[bounds[i] : bounds[i + 1]]) for i, (k, t, _o) in enumerate(marks)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000, 1 << 20])
def test_sections_are_exact_whatever_the_chunking(chunk: int) -> None:
    data, parts = _dump()
    sections = _scan(data, chunk)
    found = {(t, k): text for k, t, text in sections if t is not None}
    assert found == parts  # each table part exactly, the "--" line that opens it included
    kinds = [(k, t) for k, t, _ in sections]
    assert kinds[-1] == ("other", None)  # routines and footer: not part of the last table
    assert kinds[:7] == [
        ("structure", "a"),
        ("data", "a"),
        ("structure", "b`q"),
        ("data", "b`q"),
        ("triggers", "b`q"),
        ("structure", "c"),
        ("data", "c"),
    ]


def test_scanner_without_sections_is_unchanged() -> None:
    data, _parts = _dump()
    plain, with_sections = DumpScanner(), DumpScanner(on_section=lambda _k, _t: None)
    for scanner in (plain, with_sections):
        for i in range(0, len(data), 5):
            scanner.feed(data[i : i + 5])
        scanner.finish()
    assert plain.sections["shop"].content_sha256 == with_sections.sections["shop"].content_sha256
    assert plain.sections["shop"].raw_bytes == with_sections.sections["shop"].raw_bytes
    assert plain.counts("shop") == with_sections.counts("shop")


@pytest.mark.parametrize("chunk", [1, 5, 100, 1 << 20])
def test_renamer_rewrites_only_the_tables_statement_heads(chunk: int) -> None:
    s, d, _t = _table("orders", 50)
    renamer = TableRenamer("orders", "orders_restored")
    src = s + d
    out = b"".join(renamer.feed(src[i : i + chunk]) for i in range(0, len(src), chunk)) + renamer.finish()
    assert renamer.created == 1
    expected = (
        src.replace(
            b"-- Table structure for table `orders`", b"-- Table structure for table `orders_restored`"
        )
        .replace(b"-- Dumping data for table `orders`", b"-- Dumping data for table `orders_restored`")
        .replace(b"DROP TABLE IF EXISTS `orders`", b"DROP TABLE IF EXISTS `orders_restored`")
        .replace(b"CREATE TABLE `orders`", b"CREATE TABLE `orders_restored`")
        .replace(b"LOCK TABLES `orders`", b"LOCK TABLES `orders_restored`")
        .replace(b"INSERT INTO `orders`", b"INSERT INTO `orders_restored`")
        .replace(b"CONSTRAINT `fk_orders`", b"CONSTRAINT `orders_restored_fk_orders`")
    )
    assert out == expected
    # the section markers name the new table (the parallel loader names a table by them); row
    # data that looks like a statement is never touched (it is not at a line start)
    assert out.count(b"-- Table structure for table `x`") == 50


def test_encrypted_chunk_ranges_decrypt_alone() -> None:
    key = bytes(range(32))
    plain = bytes(range(256)) * 40  # 10240 bytes
    stored = crypto.encrypt_bytes(key, plain, chunk_size=1000)
    header_size, chunk_size = crypto.parse_header(stored[: crypto.HEADER_MAX_SIZE])
    final = crypto.final_chunk_index(header_size, chunk_size, len(stored))
    assert final == 10
    for start, end in ((0, 1), (999, 1001), (2500, 10240), (10000, 10240), (0, 10240)):
        r = crypto.chunk_range(header_size, chunk_size, len(stored), start, end)
        got = crypto.decrypt_chunks(
            crypto.Keyring(key), stored[:header_size], r.first, stored[r.stored_start : r.stored_end], final
        )
        assert got[r.skip : r.skip + end - start] == plain[start:end]
    tampered = bytearray(stored)
    tampered[header_size + 1500] ^= 1
    r = crypto.chunk_range(header_size, chunk_size, len(stored), 1000, 2000)
    with pytest.raises(crypto.EncryptionError, match="chunk 1"):
        crypto.decrypt_chunks(
            crypto.Keyring(key),
            stored[:header_size],
            1,
            bytes(tampered[r.stored_start : r.stored_end]),
            final,
        )


def test_table_index_round_trips_and_is_checked() -> None:
    import dataclasses
    from datetime import UTC, datetime

    from mysqlops.errors import ManifestError
    from mysqlops.manifest import BackupFile, BackupManifest, Section, TableSections
    from mysqlops.model import BackupKind, BackupMethod

    section = Section(offset=10, length=20, raw_offset=100, raw_bytes=50, sha256="ab" * 32)
    f = BackupFile(
        "shop.sql.zst",
        "shop",
        1000,
        "00" * 32,
        100,
        "11" * 32,
        table_index=(TableSections("o`rders", section, section),),
    )
    now = datetime(2026, 11, 30, tzinfo=UTC)
    m = BackupManifest(
        "20261130T000000Z-abcdef",
        "src",
        "local",
        BackupKind.FULL,
        BackupMethod.LOGICAL,
        "mariadb",
        "10.11.6",
        ("shop",),
        (f,),
        now,
        now,
        "zstd-3",
    )
    back = BackupManifest.from_json(m.to_json())
    assert back.files[0].table_index == f.table_index and back.files[0].table_index[0].triggers is None
    for bad in (dataclasses.replace(section, offset=90), dataclasses.replace(section, raw_offset=990)):
        forged = dataclasses.replace(
            m, files=(dataclasses.replace(f, table_index=(TableSections("t", bad),)),)
        )
        with pytest.raises(ManifestError, match="outside the file"):
            BackupManifest.from_json(forged.to_json())
    negative = m.to_json().replace('"offset": 10', '"offset": -10')
    with pytest.raises(ManifestError, match="negative"):
        BackupManifest.from_json(negative)
