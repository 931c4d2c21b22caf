"""Parsing SHOW GRANTS lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from mysqlops.errors import ConfigError
from mysqlops.sql.quoting import account, quote_string

# --------------------------------------------------------------------------------------------
# SHOW GRANTS parsing


@dataclass(frozen=True)
class _Grant:
    revoke: bool
    privileges: frozenset[str]
    level: str  # "global" | "db" | "table" | "routine"
    db: str | None
    table: str | None
    grantee: str


def _read_identifier(text: str, i: int) -> tuple[str, int]:
    """Read an identifier (backticked, quoted or bare) or ``*`` starting at ``i``."""
    if i >= len(text):
        raise ValueError("identifier expected")
    quote = text[i]
    if quote in "`'\"":
        out = []
        j = i + 1
        while j < len(text):
            if text[j] == quote:
                if j + 1 < len(text) and text[j + 1] == quote:
                    out.append(quote)
                    j += 2
                    continue
                return "".join(out), j + 1
            out.append(text[j])
            j += 1
        raise ValueError("unterminated quoted identifier")
    m = re.compile(r"[^\s.@]+").match(text, i)
    if not m:
        raise ValueError("identifier expected")
    return m.group(0), m.end()


def _top_level(text: str) -> Iterator[int]:
    """Indexes of the characters of ``text`` outside quotes and parentheses (a quote or
    parenthesis itself is not yielded): the one scanner of a GRANT line's structure."""
    depth, quote = 0, ""
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c in "`'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0:
            yield i


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at each ``sep`` outside quotes and parentheses."""
    parts, start = [], 0
    for i in _top_level(text):
        if text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _find_keyword(text: str, keyword: str) -> int:
    """Index of `` KEYWORD `` outside quotes and parentheses, or -1."""
    n = len(keyword)
    for i in _top_level(text):
        if (
            text[i].isspace()
            and text[i + 1 : i + 1 + n].upper() == keyword
            and i + 1 + n < len(text)
            and text[i + 1 + n].isspace()
        ):
            return i
    return -1


_GRANT_HEAD = re.compile(r"^\s*(GRANT|REVOKE)\s+", re.IGNORECASE)
_OBJECT_TYPE = re.compile(r"(TABLE|PROCEDURE|FUNCTION|PACKAGE\s+BODY|PACKAGE)\s+", re.IGNORECASE)


def _parse_grant_line(line: str) -> _Grant | None:
    """One line of SHOW GRANTS; None for role grants, PROXY and anything unparsable."""
    m = _GRANT_HEAD.match(line)
    if not m:
        return None
    revoke = m.group(1).upper() == "REVOKE"
    rest = line[m.end() :]
    on = _find_keyword(" " + rest, "ON")
    if on < 0:
        return None  # GRANT `role` TO user: privileges of roles are not expanded here
    privs_text = (" " + rest)[:on]
    obj_text = (" " + rest)[on + 4 :].lstrip()
    level = "table"
    tm = _OBJECT_TYPE.match(obj_text)
    if tm:
        kind = tm.group(1).upper()
        obj_text = obj_text[tm.end() :]
        if kind != "TABLE":
            level = "routine"
    try:
        first, i = _read_identifier(obj_text, 0)
        second: str | None = None
        if i < len(obj_text) and obj_text[i] == ".":
            second, i = _read_identifier(obj_text, i + 1)
        tail = obj_text[i:]
    except ValueError:
        return None
    tail_m = re.match(r"\s+(TO|FROM)\s+(.*)$", tail, re.IGNORECASE | re.DOTALL)
    if not tail_m:
        return None
    grantee = _grantee(tail_m.group(2))
    if second is None:
        return None  # "ON *" / "ON tbl": relative to a current database, not in SHOW GRANTS output
    db: str | None = first
    table: str | None = second
    if db == "*" and table == "*":
        level, db, table = "global", None, None
    elif table == "*" and level != "routine":
        level, table = "db", None
    privileges = set()
    for raw in _split_top(privs_text):
        priv = " ".join(raw.split()).upper()
        if not priv or "(" in priv:
            continue  # column-level grants never satisfy a table/db-level need
        if priv == "PROXY":
            return None
        privileges.add(priv)
    return _Grant(revoke, frozenset(privileges), level, db, table, grantee)


def _grantee(text: str) -> str:
    """The account a grant line is for, re-quoted as ``'user'@'host'`` (or a role)."""
    try:
        user, i = _read_identifier(text.strip(), 0)
        rest = text.strip()[i:]
        if rest.startswith("@"):
            host, _ = _read_identifier(rest, 1)
            return account(user, host)
        return quote_string(user)
    except (ValueError, ConfigError):
        return ""


def _like_match(pattern: str, name: str) -> bool:
    """MySQL grant-table matching of a database name: ``_`` ``%`` wildcards, ``\\`` escapes."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append("." if c == "_" else ".*" if c == "%" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), name, re.DOTALL) is not None


@dataclass(frozen=True)
class _Need:
    """One privilege a role needs. ``scope``: global, db (each database) or table (db.table)."""

    privilege: str
    scope: str
    why: str
    table: tuple[str, str] | None = None
    # other (privilege, scope, table) that satisfy the same need
    alternatives: tuple[tuple[str, str, tuple[str, str] | None], ...] = ()

    @property
    def label(self) -> str:
        if self.scope == "table" and self.table:
            return f"{self.privilege} ON {self.table[0]}.{self.table[1]}"
        if self.scope == "global" and self.privilege == "SELECT":
            return "SELECT ON *.*"
        return self.privilege
