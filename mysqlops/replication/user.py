"""The replication account."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mysqlops.adapters import mysql as db
from mysqlops.errors import (
    ConnectionProblem,
)
from mysqlops.model import ServerSpec, TLSOptions
from mysqlops.sql.dialect import dialect_for

if TYPE_CHECKING:
    pass
from mysqlops.replication.plan import ReplicationSettings, _execute_secret
from mysqlops.sql.replica import BINLOG, NO_BINLOG

# --------------------------------------------------------------------------------------------
# 2. the replication account


_GLOBAL_GRANT = re.compile(r"^\s*GRANT\s+(?P<privs>.+?)\s+ON\s+\*\.\*\s+TO\s", re.IGNORECASE)


def grants_replication(show_grants_lines: Sequence[str]) -> bool:
    """Whether SHOW GRANTS lines give REPLICATION SLAVE (or ALL) on ``*.*``."""
    for line in show_grants_lines:
        m = _GLOBAL_GRANT.match(line)
        if not m:
            continue
        privs = {" ".join(p.split()).upper() for p in m.group("privs").split(",")}
        if privs & {"REPLICATION SLAVE", "REPLICATION REPLICA", "ALL PRIVILEGES", "ALL"}:
            return True
    return False


def _login_works(primary: ServerSpec, settings: ReplicationSettings) -> bool:
    host, port = settings.source_address(primary)
    tls = primary.tls or (TLSOptions(verify_cert=False) if settings.tls else None)
    spec = ServerSpec(
        name=primary.name, host=host, port=port, user=settings.user, password=settings.password, tls=tls
    )
    try:
        db.connect(spec, connect_timeout=5).close()
    except ConnectionProblem as exc:
        # only a refused login says the password (or TLS requirement) is wrong; a network problem
        # from this machine says nothing about it
        return "access denied" not in str(exc).lower()
    return True


def ensure_replication_user(primary: ServerSpec, settings: ReplicationSettings) -> str:
    """Create or converge the replication account; ``created``, ``updated`` or ``unchanged``.

    Nothing is run when the account exists with REPLICATION SLAVE, the wanted REQUIRE setting and
    a password that logs in. The statements run with ``sql_log_bin=0`` (see the module doc).
    """
    with db.session(primary) as conn:
        dialect = dialect_for(db.server_version(conn))
        statements = dialect.accounts.replication_user_grants(
            settings.user, settings.account_host, settings.password, settings.tls
        )
        rows = db.query(
            conn,
            dialect.accounts.SSL_TYPE,
            [settings.user, settings.account_host],
        )
        exists = bool(rows)
        if exists:
            ssl_type = str(rows[0]["t"] or "").upper()
            grants = [
                str(next(iter(r.values())))
                for r in db.query(
                    conn, dialect.accounts.show_grants_for(settings.user, settings.account_host)
                )
            ]
            wanted = "ANY" if settings.tls else ""
            if ssl_type == wanted and grants_replication(grants) and _login_works(primary, settings):
                return "unchanged"
        db.execute(conn, NO_BINLOG)
        try:
            for sql in statements:
                _execute_secret(
                    conn, sql, settings.password, f"setting up replication user {settings.user!r}"
                )
        finally:
            db.execute(conn, BINLOG)
    return "updated" if exists else "created"
