"""The dump scanner on real mariadb-dump output (captured from a 10.11 sandbox)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mysqlops.streams.dumpscan import FOOTER, DumpScanner, parse_marker

DATA = Path(__file__).parent / "data"
MULTI = (DATA / "multi_a_bx.sql").read_bytes()


def scan(data: bytes, step: int) -> tuple[DumpScanner, dict[str | None, bytes]]:
    parts: dict[str | None, bytearray] = {}
    scanner = DumpScanner(lambda db, chunk: parts.setdefault(db, bytearray()).extend(chunk))
    for i in range(0, len(data), step):
        scanner.feed(data[i : i + step])
    scanner.finish()
    return scanner, {k: bytes(v) for k, v in parts.items()}


def test_counts_routing_and_trailer() -> None:
    scanner, parts = scan(MULTI, 1 << 20)
    assert scanner.completed
    assert scanner.order == ["a", "b x"]
    assert scanner.counts("a").as_dict() == {
        "tables": 1,
        "views": 1,
        "routines": 2,
        "triggers": 1,
        "events": 1,
    }
    assert scanner.counts("b x").as_dict() == {
        "tables": 1,
        "views": 0,
        "routines": 0,
        "triggers": 0,
        "events": 0,
    }
    assert b"".join(parts[k] for k in (None, "a", "b x")) != b""
    assert sum(len(v) for v in parts.values()) == len(MULTI)  # every byte routed exactly once
    assert "CHANGE MASTER TO MASTER_LOG_FILE=" in scanner.header_text
    assert "gtid_slave_pos" in scanner.coordinates_text


@settings(max_examples=30, deadline=None)
@given(step=st.integers(1, 4096))
def test_any_chunking_gives_the_same_result(step: int) -> None:
    ref, ref_parts = scan(MULTI, 1 << 20)
    got, got_parts = scan(MULTI, step)
    assert got_parts == ref_parts
    for name in ("a", "b x"):
        assert got.sections[name].content_sha256 == ref.sections[name].content_sha256
        assert got.counts(name) == ref.counts(name)


@pytest.mark.parametrize(("name", "single"), [("a", "single_a.sql"), ("b x", "single_bx.sql")])
def test_content_hash_of_a_multi_database_dump_equals_a_single_database_redump(
    name: str, single: str
) -> None:
    multi, _ = scan(MULTI, 997)
    alone, _ = scan((DATA / single).read_bytes(), 1 << 20)
    assert multi.sections[name].content_sha256 == alone.sections[name].content_sha256


def test_a_changed_row_changes_the_content_hash() -> None:
    base, _ = scan(MULTI, 1 << 20)
    changed, _ = scan(MULTI.replace(b"(2,NULL,'')", b"(2,NULL,'z')"), 1 << 20)
    assert changed.sections["a"].content_sha256 != base.sections["a"].content_sha256
    assert changed.sections["b x"].content_sha256 == base.sections["b x"].content_sha256


def test_cut_short_dump_is_not_completed() -> None:
    scanner, _ = scan(MULTI[: len(MULTI) - 200], 4096)
    assert not scanner.completed


def test_marker_parsing() -> None:
    assert parse_marker(b"-- Current Database: `a``b`") == "a`b"
    assert parse_marker(b"-- Current Database: `\xc3\xbc x`") == "ü x"
    assert parse_marker(b"-- Table structure for table `t`") is None


def test_a_sequence_counts_as_a_table() -> None:
    """information_schema lists a MariaDB SEQUENCE as a table (TABLE_TYPE 'SEQUENCE'); the dump
    prints it under its own comment. Counted differently, every backup of a database with a
    sequence failed as 'missing objects'."""
    dump = (
        b"-- Current Database: `d`\n--\n\nUSE `d`;\n\n--\n-- Sequence structure for `s`\n--\n\n"
        b"CREATE SEQUENCE `s` start with 1 minvalue 1 maxvalue 9223372036854775806 increment by 1 cache 1000"
        b" nocycle ENGINE=InnoDB;\n\n--\n-- Table structure for table `t`\n--\n\nCREATE TABLE `t` (`id` int);\n"
    )
    scanner, _ = scan(dump, 7)
    assert scanner.counts("d").tables == 2


# --------------------------------------------------------------------------- round trips per flavor
# a real MySQL 9.7 backup of the awkward sample database and the re-dump of a second 9.7 server
# that loaded it (same mysqldump): MySQL prints `CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`
# on the reloaded columns where the original said `COLLATE utf8mb4_unicode_ci`
MYSQL_BACKUP = (DATA / "mysql97_shop_backup.sql").read_bytes()
MYSQL_REDUMP = (DATA / "mysql97_shop_redump.sql").read_bytes()


def content_hash(data: bytes, flavor: str | None, step: int = 1 << 20) -> str:
    scanner = DumpScanner(flavor=flavor)
    for i in range(0, len(data), step):
        scanner.feed(data[i : i + step])
    scanner.finish()
    return scanner.sections["shop"].content_sha256


@pytest.mark.parametrize("step", [1 << 20, 4096, 97])
def test_mysql_round_trip_hash_is_stable(step: int) -> None:
    assert b"CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" in MYSQL_REDUMP
    assert b"varchar(100) CHARACTER SET" not in MYSQL_BACKUP
    assert content_hash(MYSQL_BACKUP, "mysql", step) == content_hash(MYSQL_REDUMP, "mysql", step)
    # without the MySQL normalisation the round trip differs (what restore-test saw before)
    assert content_hash(MYSQL_BACKUP, None, step) != content_hash(MYSQL_REDUMP, None, step)


def test_session_binlog_line_is_not_content() -> None:
    """mysqldump's closing `SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN;` is session
    state: a re-dump of a server without GTIDs (no such line) hashes the same."""
    line = b"SET @@SESSION.SQL_LOG_BIN = @MYSQLDUMP_TEMP_LOG_BIN;\n"
    assert line in MYSQL_REDUMP
    assert content_hash(MYSQL_REDUMP.replace(line, b""), "mysql") == content_hash(MYSQL_REDUMP, "mysql")


@pytest.mark.parametrize(
    "old,new",
    [
        # one changed byte in one row
        ("'Zoë 😀 Ünïcode'".encode(), "'Zoe 😀 Ünïcode'".encode()),
        # one column of another collation (a real change, not the redundant character set)
        (
            b"`name` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL",
            b"`name` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
        ),
        # another character set with the collation of it
        (
            b"`name` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL",
            b"`name` varchar(100) CHARACTER SET latin1 COLLATE latin1_swedish_ci NOT NULL",
        ),
        # one object missing: the function's body changed
        (b"RETURN x * 2", b"RETURN x * 3"),
    ],
)
def test_mysql_round_trip_still_fails_on_a_change(old: bytes, new: bytes) -> None:
    assert MYSQL_REDUMP.count(old) == 1
    changed = MYSQL_REDUMP.replace(old, new)
    assert content_hash(changed, "mysql") != content_hash(MYSQL_BACKUP, "mysql")


def test_mysql_round_trip_fails_on_a_missing_trigger() -> None:
    start = MYSQL_REDUMP.index(b"/*!50003 CREATE*/ /*!50017 DEFINER")
    end = MYSQL_REDUMP.index(b"\n", start) + 1
    without = MYSQL_REDUMP[:start] + MYSQL_REDUMP[end:]
    assert content_hash(without, "mysql") != content_hash(MYSQL_BACKUP, "mysql")


def test_mariadb_hash_unchanged_by_the_mysql_rules() -> None:
    """MariaDB dumps are hashed as before (existing backups keep verifying): the scanner for
    MariaDB and the flavor-less one agree, and neither touches a column's CHARACTER SET."""
    assert content_hash(MULTI.replace(b"`a`", b"`shop`"), "mariadb") == content_hash(
        MULTI.replace(b"`a`", b"`shop`"), None
    )
    line = b"  `c` varchar(5) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL,\n"
    other = b"  `c` varchar(5) COLLATE utf8mb4_bin DEFAULT NULL,\n"
    body = b"-- Current Database: `shop`\n\nCREATE TABLE `t` (\n"
    assert content_hash(body + line, "mariadb") != content_hash(body + other, "mariadb")
    assert content_hash(body + line, "mysql") == content_hash(body + other, "mysql")


def test_footer_is_the_dump_tools_own() -> None:
    """The files of the databases before the last one end with the footer the dump tool
    wrote: mariadb-dump 11.8 restores NOTE_VERBOSITY, and 11.8 refuses the older tools'
    `SET SQL_NOTES=@OLD_SQL_NOTES` (ERROR 1231) when its header never set @OLD_SQL_NOTES."""
    tail = (
        b"/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n"
        b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
        b"/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;\n\n"
        b"-- Current Database: `a`\n\nSET @OLD_AUTOCOMMIT=@@AUTOCOMMIT, @@AUTOCOMMIT=0;\n"
        b"INSERT INTO `t` VALUES (1);\nCOMMIT;\nSET AUTOCOMMIT=@OLD_AUTOCOMMIT;\n\n"
        b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
        b"/*M!100616 SET NOTE_VERBOSITY=@OLD_NOTE_VERBOSITY */;\n\n-- Dump completed on 2026-11-30\n"
    )
    scanner = DumpScanner()
    scanner.feed(tail)
    scanner.finish()
    assert scanner.footer == (
        b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
        b"/*M!100616 SET NOTE_VERBOSITY=@OLD_NOTE_VERBOSITY */;\n"
    )
    assert b"INSERT" not in scanner.footer
    # a table's data restores its own @OLD_AUTOCOMMIT (mariadb-dump 11.8): not the footer's, or a
    # session that never ran that table's data (the parallel loader's) gets ERROR 1231
    assert b"AUTOCOMMIT" not in scanner.footer
    cut = DumpScanner()
    cut.feed(b"-- Current Database: `a`\n\nINSERT INTO `t` VALUES (1);\n")
    assert cut.footer == FOOTER
    # and the footer is never content: the last database of a stream (which carries it) hashes
    # like the same database dumped before another one
    with_footer = DumpScanner()
    with_footer.feed(tail)
    with_footer.finish()
    without = DumpScanner()
    without.feed(tail.replace(b"/*M!100616 SET NOTE_VERBOSITY=@OLD_NOTE_VERBOSITY */;\n", b""))
    without.finish()
    assert with_footer.sections["a"].content_sha256 == without.sections["a"].content_sha256


# --------------------------------------------------------------------------- pieces (issue 18)
def pieces(data: bytes, step: int, flavor: str | None = None) -> tuple[str, dict[tuple[str, str, str], str]]:
    s = DumpScanner(flavor=flavor, piece_hashes=True)
    for i in range(0, len(data), step):
        s.feed(data[i : i + step])
    s.finish()
    return s.sections["a"].content_sha256, s.piece_sha256()


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_piece_hashes_split_the_content_hash_per_table(step: int) -> None:
    """The pieces are of the same bytes as the content hash (unchanged by ``piece_hashes``),
    one per table section and one for the database's other statements, whatever the chunking;
    a changed row changes that table's rows piece and no other."""
    whole, got = pieces(MULTI, step)
    assert whole == scan(MULTI, 1 << 20)[0].sections["a"].content_sha256
    assert pieces(MULTI, 1 << 20)[1] == got
    kinds = {k for k in got if k[0] == "a"}
    assert ("a", "other", "") in kinds and {k[1] for k in kinds} >= {"structure", "data", "other"}
    changed = MULTI.replace(b"(1,1.5,'x\\ny')", b"(1,1.5,'x\\nY')", 1)
    assert changed != MULTI
    _, after = pieces(changed, step)
    assert [k for k in got if got[k] != after.get(k)] == [("a", "data", "t")]
