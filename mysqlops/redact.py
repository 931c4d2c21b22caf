"""Row data never reaches a log or an exception: error text of the client tools, value-free.

When a load fails on a statement, ``mariadb``/``mysql`` prints the statement it was running
(between ``--------------`` lines: an extended INSERT holds up to a megabyte of rows) and an
``ERROR`` line whose message may quote a value (``Duplicate entry 'secret' for key ...``,
``Incorrect date value: '...'``, ``... near '<statement text>'``). A replica's
``Last_SQL_Error`` quotes values the same way. Everything here is pure text processing:

- :func:`client_stderr` keeps the ``ERROR <code> (<state>) at line N:`` head and the message
  with every quoted value replaced, drops echoed statements, and keeps other lines (program
  warnings) only with their quoted parts replaced too;
- :func:`error_message` makes one server error message value-free: known messages keep the
  identifiers they name (column, key, table), any other quoted part is replaced;
- :func:`statement_head` is the first words of a statement, literals replaced.
"""

from __future__ import annotations

import re

VALUE = "<value>"
_MAX_LINES = 12
_MAX_LINE = 300

_ERROR_HEAD = re.compile(r"^(?P<head>ERROR \d+ \([0-9A-Z]{5}\)(?: at line \d+)?): ?", re.M)
_SEPARATOR_LINE = re.compile(r"^-{14}$", re.M)
_PROGRAM = re.compile(r"^(?P<program>[\w.-]{1,40}): (?P<rest>.*)$", re.S)
_COLUMN = r"((?:`(?:[^`]|``)*`\.?)+|'[^']*')"
# messages that quote a value: (pattern, replacement keeping the identifiers it names)
_VALUE_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^Duplicate entry '.*' for key ('[^']*'|`[^`]*`)$", re.S),
        r"Duplicate entry '<value>' for key \1",
    ),
    (
        re.compile(
            r"^(Incorrect|Truncated incorrect) ([\w ]{1,40}) value: '.*' for column "
            + _COLUMN
            + r"( at row \d+)?$",
            re.S,
        ),
        r"\1 \2 value: '<value>' for column \3\4",
    ),
    (
        re.compile(r"^(Incorrect|Truncated incorrect) ([\w ]{1,40}) value: '.*'$", re.S),
        r"\1 \2 value: '<value>'",
    ),
    (re.compile(r"^([^']*?) near '.*' at line (\d+)$", re.S), r"\1 near '<statement text>' at line \2"),
)
# messages that quote identifiers only: kept as they are when they match completely
_NAME_MESSAGES = tuple(
    re.compile(p)
    for p in (
        r"^Table '[^']*' doesn't exist$",
        r"^Table '[^']*' already exists$",
        r"^Unknown table '[^']*'.*$",
        r"^Unknown database '[^']*'$",
        r"^Can't create database '[^']*'; database exists$",
        r"^Unknown column '[^']*' in '[^']*'$",
        r"^Column '[^']*' cannot be null$",
        r"^Field '[^']*' doesn't have a default value$",
        r"^Data too long for column '[^']*' at row \d+$",
        r"^Data truncated for column '[^']*' at row \d+$",
        r"^Out of range value for column '[^']*' at row \d+$",
        r"^Column count doesn't match value count at row \d+$",
        r"^Got error -?\d+ ['\"][^'\"]*['\"] (?:during COMMIT|during ROLLBACK|from storage engine [\w ]+)$",
        r"^Trigger '[^']*' already exists$",
        r"^(?:PROCEDURE|FUNCTION|EVENT) [^ ']* already exists$",
        r"^Access denied for user '[^']*'@'[^']*'(?: \(using password: (?:YES|NO)\))?$",
        r"^Access denied for user '[^']*'@'[^']*' to database '[^']*'$",
        r"^\w+ command denied to user '[^']*'@'[^']*' for table [`'][^`']*[`']$",
    )
)


def quoted_values(text: str) -> str:
    """Everything from the first ``'`` or ``"`` to the last one replaced by ``'<value>'`` (to
    the end when there is only one). The server quotes values without escaping the quotes
    they hold, so nothing between two quotes can be trusted to be outside a value."""
    first = min((i for i in (text.find("'"), text.find('"')) if i >= 0), default=-1)
    if first < 0:
        return text
    last = max(text.rfind("'"), text.rfind('"'))
    rest = text[last + 1 :] if last > first else ""
    return f"{text[:first]}'{VALUE}'{rest}"


def statement_head(sql: str, words: int = 6) -> str:
    """The first ``words`` words of a statement, literals replaced: what it was, never what
    it held (``INSERT INTO `t` VALUES``)."""
    head = quoted_values(" ".join(sql.split()))
    if head.upper().startswith(("INSERT", "REPLACE")):
        head = head.split("(", 1)[0].strip()
    parts = head.split(" ")
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def error_message(message: str) -> str:
    """One error message without the values it may quote. Known messages keep the names
    they quote (column, key, table); any other quoted part is replaced."""
    msg = message.strip()
    if any(p.match(msg) for p in _NAME_MESSAGES):
        return msg[:_MAX_LINE]
    m = re.match(r"^Couldn't execute '(.*)': (.*)$", msg, re.S)
    if m:  # mysqldump: the query it ran, and the server's answer
        return f"Couldn't execute '{statement_head(m.group(1))}': {error_message(m.group(2))}"[:_MAX_LINE]
    m = re.match(r'^Got error: (\d+): "(.*)" (when [\w ]*)(.*)$', msg, re.S)
    if m:
        return (
            f'Got error: {m.group(1)}: "{error_message(m.group(2))}" {m.group(3)}{quoted_values(m.group(4))}'[
                :_MAX_LINE
            ]
        )
    m = re.match(
        r"^(Could not execute \w+ event on table [\w$.`]+; )(.*)(, Error_code: \d+(?:; handler error \w+)?(?:; the event's master log [\w./-]+, end_log_pos \d+)?)$",
        msg,
        re.S,
    )
    if m:  # a replica's Last_SQL_Error: the row event's error, then where it is in the binlog
        return f"{m.group(1)}{error_message(m.group(2))}{m.group(3)}"[:_MAX_LINE]
    for pattern, replacement in _VALUE_MESSAGES:
        if pattern.match(msg):
            return pattern.sub(replacement, msg)[:_MAX_LINE]
    m = _PROGRAM.match(msg)
    if m and not m.group("program").isdigit():
        return f"{m.group('program')}: {error_message(m.group('rest'))}"[:_MAX_LINE]
    return quoted_values(msg)[:_MAX_LINE]


def client_stderr(text: str) -> str:
    """A client's stderr, value-free: the ``ERROR <code> (<state>) at line N`` head and its
    message without values; an echoed statement dropped; lines before the error (client
    warnings) with their quoted parts replaced. At most a dozen lines.

    The client stops at its first error and prints it last: everything from the first
    ``ERROR`` head to the end is one message, since a value it quotes may hold newlines, even
    text that looks like another error or a separator. Before it, MariaDB's client may echo
    the failed statement between two ``--------------`` lines (mysql_argv turns that off;
    older clients still do it), and the captured stderr is only a tail that may begin inside
    the echo: when a separator comes before the error, nothing before the error is kept. The
    echo cannot hold a line that starts like an error: dump data never holds a raw newline."""
    head = _ERROR_HEAD.search(text)
    before, message = (text[: head.start()], text[head.end() :]) if head else (text, "")
    echoed = bool(_SEPARATOR_LINE.search(before))
    out = [] if echoed else [error_message(line) for line in before.splitlines() if line.strip()]
    out = out[-_MAX_LINES:]
    if head:
        out.append(f"{head.group('head')}: {error_message(message)}")
    if echoed:
        out.append("(the statement text is not shown: it may hold row data)")
    return "\n".join(out)


_PASSWORD_CLAUSE = re.compile(
    r"(IDENTIFIED\s+(?:BY\s+PASSWORD|BY|WITH\s+\S+\s+(?:AS|BY)|VIA\s+\S+\s+(?:USING|AS)))\s+'(?:[^'\\]|\\.|'')*'",
    re.I,
)


def password_clauses(text: str) -> str:
    """``IDENTIFIED BY PASSWORD '*hash'`` (and the other ``IDENTIFIED ... '...'`` forms) with
    the hash or password replaced: mariabackup prints SHOW GRANTS, hash included, when a
    privilege is missing."""
    return _PASSWORD_CLAUSE.sub(r"\1 '<secret>'", text)
