"""Quoting identifiers, strings and accounts."""

from __future__ import annotations

from mysqlops.errors import ConfigError

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

# --------------------------------------------------------------------------------------------
# quoting


def _check_text(kind: str, value: str) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{kind} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ConfigError(
            f"{kind} {value!r} contains a NUL character, which MySQL/MariaDB cannot store safely"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{kind} {value!r} is not valid Unicode (lone surrogate)") from exc


def quote_identifier(name: str) -> str:
    """A backtick-quoted identifier: embedded backticks are doubled.

    Refuses the empty name, NUL and characters outside the Basic Multilingual Plane, which MySQL
    and MariaDB do not allow in identifiers (manual: "Schema Object Names").
    """
    _check_text("identifier", name)
    if name == "":
        raise ConfigError("an identifier must not be empty")
    if any(ord(c) > 0xFFFF for c in name):
        raise ConfigError(
            f"identifier {name!r} has a character outside the Basic Multilingual Plane (e.g. an emoji); "
            "MySQL and MariaDB identifiers cannot hold them"
        )
    return "`" + name.replace("`", "``") + "`"


_ESCAPES = {"\\": "\\\\", "'": "''", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"}
_ESCAPES_NBE = {"'": "''"}


def quote_string(value: str, *, no_backslash_escapes: bool = False) -> str:
    """A single-quoted SQL string literal.

    ``'`` is doubled (valid in every SQL mode); ``\\``, newline, CR and Ctrl-Z are
    backslash-escaped for the default SQL mode, so a statement stays on one line. With
    ``no_backslash_escapes=True`` (a session with ``NO_BACKSLASH_ESCAPES``) only quotes are
    doubled and everything else is written as is. NUL and lone surrogates are refused.
    """
    _check_text("string", value)
    table = _ESCAPES_NBE if no_backslash_escapes else _ESCAPES
    return "'" + "".join(table.get(c, c) for c in value) + "'"


def account(user: str, host: str = "%") -> str:
    """``'user'@'host'``, each part a string literal. The anonymous user ('') is refused."""
    _check_text("user name", user)
    _check_text("host", host)
    if user == "":
        raise ConfigError("user name must not be empty (that is the anonymous user)")
    if host == "":
        raise ConfigError("host must not be empty; use '%' for any host")
    return f"{quote_string(user)}@{quote_string(host)}"


def _db_grant_name(database: str) -> str:
    """A database name for ``GRANT ... ON <db>.*``: ``_`` ``%`` ``\\`` escaped, so it is not a pattern."""
    escaped = database.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return quote_identifier(escaped)
