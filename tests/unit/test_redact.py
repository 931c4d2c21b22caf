"""Row data never reaches a log: the client's stderr (echoed statement, quoted values) made
value-free, and the process adapter's filter applied to every error it raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mysqlops import redact
from mysqlops.adapters import process
from mysqlops.errors import ProcessError

# what `mariadb --batch` printed here (10.11) when a dump's INSERT failed on a duplicate key
ECHO = """--------------
INSERT INTO `t` VALUES (1,'alpha-row-value',11),
(2,'CANARY-7f3e',12),
(2,'CANARY-7f3e',12)
--------------

ERROR 1062 (23000) at line 45: Duplicate entry '2' for key 'PRIMARY'"""


def test_echoed_statement_and_quoted_value_are_dropped() -> None:
    out = redact.client_stderr(ECHO)
    assert out == (
        "ERROR 1062 (23000) at line 45: Duplicate entry '<value>' for key 'PRIMARY'\n"
        "(the statement text is not shown: it may hold row data)"
    )


def test_a_tail_that_starts_inside_the_echo_keeps_nothing_of_it() -> None:
    """The adapter keeps only the last 16 KiB of stderr: the opening separator may be gone."""
    tail = ECHO[ECHO.index("(2,'CANARY") :]
    out = redact.client_stderr(tail)
    assert "CANARY" not in out and "12" not in out and out.startswith("ERROR 1062 (23000) at line 45:")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Incorrect date value: 'CANARY' for column `d`.`t`.`c` at row 1",
         "Incorrect date value: '<value>' for column `d`.`t`.`c` at row 1"),
        ("Incorrect integer value: 'CANARY' for column 'n' at row 3",
         "Incorrect integer value: '<value>' for column 'n' at row 3"),
        ("You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version "
         "for the right syntax to use near 'CANARY', 12)' at line 1",
         "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version "
         "for the right syntax to use near '<statement text>' at line 1"),
        ("Table 'shop.t' doesn't exist", "Table 'shop.t' doesn't exist"),
        ("Data too long for column 'note' at row 2", "Data too long for column 'note' at row 2"),
        ("Some new message quoting 'CANARY' and `ident`", "Some new message quoting '<value>' and `ident`"),
        ("mariadb-dump: Couldn't execute 'SELECT * FROM `t` WHERE a = 'CANARY'': Lost connection to server (2013)",
         "mariadb-dump: Couldn't execute 'SELECT * FROM `t` WHERE a ...': Lost connection to server (2013)"),
        ("mariadb-dump: Got error: 1044: \"Access denied for user 'u'@'%' to database 'shop'\" when selecting the database",
         "mariadb-dump: Got error: 1044: \"Access denied for user 'u'@'%' to database 'shop'\" when selecting the database"),
        ("Could not execute Write_rows_v1 event on table shop.t; Duplicate entry 'CANARY' for key 'PRIMARY', "
         "Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's master log mysql-bin.000002, end_log_pos 775",
         "Could not execute Write_rows_v1 event on table shop.t; Duplicate entry '<value>' for key 'PRIMARY', "
         "Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's master log mysql-bin.000002, end_log_pos 775"),
    ],
)  # fmt: skip
def test_messages_keep_names_and_lose_values(message: str, expected: str) -> None:
    assert redact.error_message(message) == expected


# what a hostile value may hold: anything, including text that looks like the client's own
# output (the server quotes values raw, newlines included)
FRAGMENTS = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["'", '"', "\\", "\n", "\n--------------\n\n", "\nERROR 1 (HY000) at line 3: Table '",
                     "' doesn't exist\n", "' for key 'PRIMARY'", "\nmariadb: ", "`", " at line 9"]),
)  # fmt: skip
VALUES = st.lists(FRAGMENTS, max_size=6).map("".join)


@settings(max_examples=500, deadline=None)
@given(VALUES, VALUES, st.sampled_from(["Duplicate entry '{v}' for key 'PRIMARY'",
                                        "Incorrect date value: '{v}' for column `d`.`t`.`c` at row 1",
                                        "Truncated incorrect DOUBLE value: '{v}'",
                                        "right syntax to use near '{v}' at line 1",
                                        "an unknown message '{v}' here",
                                        "Could not execute Write_rows_v1 event on table d.t; Duplicate entry '{v}' "
                                        "for key 'PRIMARY', Error_code: 1062; handler error X"]),
       st.integers(min_value=0, max_value=200))  # fmt: skip
def test_no_value_survives_whatever_it_holds(before: str, after: str, template: str, cut: int) -> None:
    """Values with quotes, backslashes, newlines, separators: the canary never survives, in the
    echo, in the message, or when the captured tail starts anywhere inside the echo (it always
    holds the whole ERROR line: a server message is a few hundred bytes, the tail 16 KiB)."""
    value = before + "QZXCANARY" + after
    echoed = value.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "\\'")  # as mysqldump writes it
    stderr = (
        f"--------------\nINSERT INTO `t` VALUES (1,'{echoed}')\n--------------\n\n"
        f"ERROR 1 (HY000) at line 3: {template.replace('{v}', value)}"
    )
    # the 16 KiB tail begins anywhere before the ERROR line (the echo holds no raw newline)
    inside_echo = cut % stderr.index("\n--------------\n\nERROR 1 (HY000) at line 3: ")
    for text in (
        stderr,
        stderr[inside_echo:],
        "ERROR 1064 (42000) at line 3: " + template.replace("{v}", value),
    ):
        assert "QZXCANARY" not in redact.client_stderr(text)


def test_statement_head_names_the_statement_not_its_values() -> None:
    assert redact.statement_head("INSERT INTO `t` VALUES (1,'CANARY'),(2,'x')") == "INSERT INTO `t` VALUES"
    assert redact.statement_head("UPDATE t SET a = 'CANARY' WHERE id = 1") == "UPDATE t SET a = '<value>' ..."


def test_pipeline_filters_stderr_before_any_error_or_result() -> None:
    script = f"printf '%s\\n' \"{ECHO}\" >&2; exit 1"
    with pytest.raises(ProcessError) as info:
        process.run(["sh", "-c", script], name="load", stderr_filter=redact.client_stderr)
    assert "CANARY" not in str(info.value) and "CANARY" not in info.value.stderr_tail
    assert "ERROR 1062 (23000) at line 45: Duplicate entry '<value>' for key 'PRIMARY'" in str(info.value)
    with pytest.raises(ProcessError) as unfiltered:  # positive control: the same child, no filter
        process.run(["sh", "-c", script], name="load")
    assert "CANARY-7f3e" in str(unfiltered.value) or "CANARY-7f3e" in unfiltered.value.stderr_tail


def test_password_clauses_hide_hashes_and_passwords() -> None:
    from mysqlops.redact import password_clauses

    line = (
        "1.GRANT SELECT, RELOAD ON *.* TO `mysqlops_backup`@`%` IDENTIFIED BY PASSWORD "
        "'*D64E198BF032A0DC4103D5DE0B933DAD845AF72E'"
    )
    out = password_clauses(line)
    assert "D64E198B" not in out and out.endswith("IDENTIFIED BY PASSWORD '<secret>'")
    assert "s3cr" not in password_clauses("CREATE USER x IDENTIFIED BY 's3cr''et'")
    assert "abc" not in password_clauses("IDENTIFIED VIA ed25519 USING 'abc'")
    assert "zz" not in password_clauses("IDENTIFIED WITH caching_sha2_password AS 'zz'")
    assert password_clauses("missing required privilege PROCESS on *.*") == (
        "missing required privilege PROCESS on *.*"
    )
