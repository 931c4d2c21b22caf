"""Statements of a dump's header and structure sections (pure): what a second connection needs."""

from __future__ import annotations

from collections.abc import Iterator

from mysqlops.errors import RestoreError

# the SQLSTATE of the statement that just failed on this connection (MariaDB 10.0+, MySQL 5.6+)
LAST_SQLSTATE = ("GET DIAGNOSTICS CONDITION 1 @mysqlops_state = RETURNED_SQLSTATE", "SELECT @mysqlops_state")
_SANDBOX = (b"/*M!999999\\-", b"/*!999999\\-")


def session_prefix(header: bytes) -> bytes:
    """The dump header's session statements for another connection: every ``SET`` (inside
    version comments or not) but none touching GLOBAL state, which the serial part ran once."""
    keep = []
    for line in header.split(b"\n"):
        s = line.strip()
        if not s or s.startswith(b"--") or b"GLOBAL" in s.upper():
            continue
        if s.startswith((b"/*!", b"/*M!", b"SET ")):
            keep.append(s)
    return b"\n".join(keep) + b"\n"


def statements(text: bytes) -> Iterator[bytes]:
    """Statements of the serial part, one per ``;`` at a line end, comments and the sandbox
    line left out. The serial part holds only DDL and SET lines (no ``DELIMITER``)."""
    stmt: list[bytes] = []
    for line in text.split(b"\n"):
        s = line.rstrip(b"\r")
        if not stmt and (not s.strip() or s.startswith(b"--") or s.startswith(_SANDBOX)):
            continue
        if not stmt and s.startswith(b"DELIMITER"):
            raise RestoreError(
                "unexpected DELIMITER before the table data: cannot load this dump in parallel"
            )
        stmt.append(s)
        if s.rstrip().endswith(b";"):
            yield b"\n".join(stmt).rstrip()[:-1]
            stmt = []
    if stmt and b"".join(stmt).strip():
        yield b"\n".join(stmt)
