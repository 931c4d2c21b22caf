"""The rename rewriter on real mariadb-dump output (captured from a 10.11 sandbox).

The captured database ``src`` was created latin1, got routines, a trigger and an event, then
``ALTER DATABASE src CHARACTER SET utf8mb4``: the dump wraps those objects in
``ALTER DATABASE `src` CHARACTER SET ...`` lines. It also holds objects whose bodies qualify
names with ``src`` (a trigger, an event, a procedure, two views) and clean ones whose bodies
mention ``src`` only as a string, a comment, a column or a parameter.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mysqlops.restore.rename import RenameRefused, RenameRewriter

DUMP = (Path(__file__).parent / "data" / "rename_src.sql").read_bytes()
QUALIFIED = [
    "trigger `tr2` names `src` explicitly (`src`.`m`)",
    "event `ev2` names `src` explicitly (`src`.`t`)",
    "procedure `p_q` names `src` explicitly (`src`.`t`)",
    "view `v_alias` names `src` explicitly (`src`.`id`)",
    "view `v_cross` names `src` explicitly (`src`.`t`.`id`)",
]


def rewrite(
    data: bytes, mapping: dict[str, str], step: int = 1 << 20, check_only: bool = True
) -> tuple[bytes, list[str]]:
    rw = RenameRewriter(mapping, check_only=check_only)
    out = b"".join(rw.feed(data[i : i + step]) for i in range(0, len(data), step)) + rw.finish()
    return out, rw.refusals


def without(data: bytes, names: list[str]) -> bytes:
    """The dump without the statements that define ``names`` (what a clean source dumps)."""
    text = data
    for name in names:
        text = re.sub(
            rb"\n[^\n]*(?:TRIGGER|EVENT|PROCEDURE|VIEW) `?"
            + name.encode()
            + rb"`?[^\n]*\n(?:[^\n]*\n)*?[^\n]*;;?\n",
            b"\n",
            text,
        )
    return text


def test_every_statement_naming_the_database_is_rewritten() -> None:
    out, refusals = rewrite(DUMP, {"src": "copy"})
    assert refusals == QUALIFIED
    changed = [(a, b) for a, b in zip(DUMP.split(b"\n"), out.split(b"\n"), strict=True) if a != b]
    assert changed, "nothing was rewritten"
    for before, after in changed:
        assert before.replace(b"`src`", b"`copy`", 1) == after
        assert before.startswith((b"CREATE DATABASE ", b"USE `src`;", b"ALTER DATABASE `src` CHARACTER SET"))
    kinds = sorted({b.split(b"`")[0] + (b";;" if b.endswith(b";;") else b"") for b, _ in changed})
    assert kinds == [
        b"ALTER DATABASE ",
        b"ALTER DATABASE ;;",
        b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ ",
        b"USE ",
    ]
    # the four objects created under latin1 (trigger, event, function, procedure): set + reset
    assert (
        len([c for c in changed if c[0].startswith(b"ALTER DATABASE")])
        == 8
        == DUMP.count(b"\nALTER DATABASE")
    )
    # rows that look like statements are data, never rewritten
    for row in (b"(2,'src'),", b"(4,'use `src`;'),", b"(5,'src.t'),", b"(6,'a\\nALTER DATABASE `src` x;');"):
        assert row in out


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=4096))
def test_output_does_not_depend_on_chunking(step: int) -> None:
    assert rewrite(DUMP, {"src": "copy"}, step) == rewrite(DUMP, {"src": "copy"})


def test_clean_objects_are_not_refused() -> None:
    """Mentions of ``src`` in strings, comments, a column, a parameter, ``NEW.src`` and a table
    comment are not references to the database."""
    clean = without(DUMP, ["tr2", "ev2", "p_q", "v_alias", "v_cross"])
    assert b"p_clean" in clean and b"tr3" in clean and b"NEW.src" in clean and b"tr2" not in clean
    out, refusals = rewrite(clean, {"src": "copy"})
    assert refusals == []
    assert b"USE `copy`;" in out and b"USE `src`;" not in out


def test_streaming_load_stops_at_the_first_qualified_reference() -> None:
    rw = RenameRewriter({"src": "copy"})
    with pytest.raises(
        RenameRefused, match=r"restoring `src` as `copy`: trigger `tr2` names `src` explicitly"
    ):
        rw.feed(DUMP)


@pytest.mark.parametrize(
    "statement",
    [
        b"USE `other`;\n",
        b"ALTER DATABASE `other` CHARACTER SET latin1 ;\n",
        b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `other`;\n",
        b"DROP DATABASE IF EXISTS other;\n",
    ],
)
def test_a_statement_about_another_database_is_refused(statement: bytes) -> None:
    _, refusals = rewrite(b"USE `src`;\n" + statement, {"src": "copy"})
    assert refusals == [
        f"a {statement.split(b' ')[0].decode()}{' DATABASE' if b'DATABASE' in statement else ''} "
        "statement names another database, `other`"
    ]


def test_names_are_compared_as_identifiers() -> None:
    dump = (
        b"USE `a``b`;\n"
        b"DELIMITER ;;\n"
        b"CREATE PROCEDURE `p`() SELECT * FROM `A``B`.t ;;\n"
        b"DELIMITER ;\n"
        b"CREATE VIEW v AS SELECT 1 AS `a``b`.x;\n"
    )
    out, refusals = rewrite(dump, {"a`b": "n e w"})
    assert out.startswith(b"USE `n e w`;\n")
    assert refusals == [
        "procedure `p` names `a``b` explicitly (`A``B`.`t`)",
        "view `v` names `a``b` explicitly (`a``b`.`x`)",
    ]


def test_data_is_passed_through_whatever_it_holds() -> None:
    rows = b"".join(b"(%d,'USE `src`;\\n`src`.`t` ALTER DATABASE `src`;'),\n" % i for i in range(20000))
    dump = (
        b"USE `src`;\nINSERT INTO `t` VALUES\n"
        + rows
        + b"(0,'');\nINSERT INTO `t` VALUES (1,'src.t;');\nUSE `src`;\n"
    )
    out, refusals = rewrite(dump, {"src": "copy"}, step=4093)
    assert refusals == []
    assert out == b"USE `copy`;" + dump[len(b"USE `src`;") : -len(b"USE `src`;\n")] + b"USE `copy`;\n"


def test_no_rename_is_a_passthrough() -> None:
    assert rewrite(DUMP, {})[0] == DUMP
    assert rewrite(DUMP, {"src": "src"})[0] == DUMP


def test_trigger_header_names_are_rewritten_its_body_is_not() -> None:
    """SHOW CREATE TRIGGER keeps the statement as it was written: ``TRIGGER src.tr ... ON src.t``
    names the database by grammar (rewritten), a qualified body is refused."""
    head = b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`h`*/ /*!50003 TRIGGER src.tr AFTER INSERT ON `src` . t FOR EACH ROW "
    dump = b"USE `src`;\nDELIMITER ;;\n" + head + b"INSERT INTO log VALUES (NEW.src) */;;\nDELIMITER ;\n"
    out, refusals = rewrite(dump, {"src": "copy"})
    assert refusals == []
    assert (
        b"TRIGGER `copy`.tr AFTER INSERT ON `copy` . t FOR EACH ROW INSERT INTO log VALUES (NEW.src) */;;"
        in out
    )
    _, refusals = rewrite(dump.replace(b"INTO log", b"INTO src.log"), {"src": "copy"})
    assert refusals == ["trigger `tr` names `src` explicitly (`src`.`log`)"]
    _, refusals = rewrite(dump.replace(b"ON `src` . t", b"ON other.t"), {"src": "copy"})
    assert refusals == ["trigger `tr` is defined on another database, `other`"]
