"""The accounts mysqlops needs, with exactly the grants of the flavor (least privilege).

Which block uses which account (``python -m mysqlops users --role <role>``):

* ``backup`` (``mysqlops_backup``): the MySQLServer block of every server that is backed up,
  used by backup, archive-binlogs and check: the dump, binlog archiving, and reading the
  replica status (check's replication verdict: SLAVE MONITOR on MariaDB 10.5.9+); on MySQL
  also BACKUP_ADMIN, for physical backups through CLONE (the clone plugin itself is installed
  once by an administrator: ``INSTALL PLUGIN clone SONAME 'mysql_clone.so'``).
* ``monitor`` (``mysqlops_monitor``): the block of a replica watched by replica-health (SLAVE
  MONITOR / REPLICATION CLIENT, BINLOG MONITOR, SELECT).
* ``replication`` (``mysqlops_replication``): REPLICATION SLAVE only, on a primary, the account
  its replicas log in with (provision-replica).
* ``restore``: loads dumps into restore targets (the restore flow's target block): every
  object kind, the dump's definers (MySQL: SYSTEM_USER for definers such as root@localhost),
  and ``log_bin_trust_function_creators=ON`` on the target (stored functions on a server with
  binary logging; persisted on MySQL, add it to ``[mysqld]`` on MariaDB).

Accounts are created with ``sql_log_bin=0``: they are never replicated, so create them on every
server whose block names them. The SQL comes from the dialect; :func:`user_statements` is pure,
:func:`create_users` applies it. Passwords are bound into the statements only when applied;
dry runs show them masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mysqlops.adapters import mysql as db
from mysqlops.errors import ConfigError
from mysqlops.model import Flavor, ServerSpec, ServerVersion
from mysqlops.sql import clone as clone_sql
from mysqlops.sql.dialect import dialect_for
from mysqlops.sql.quoting import quote_string
from mysqlops.sql.replica import NO_BINLOG
from mysqlops.sql.restore_grants import trust_function_creators

ROLES = ("backup", "replication", "restore", "monitor")


@dataclass(frozen=True)
class Account:
    role: str
    user: str
    host: str = "%"
    tls: bool = False
    databases: tuple[str, ...] | None = None


def user_statements(version: ServerVersion, account: Account, password: str) -> list[str]:
    d = dialect_for(version)
    if account.role == "backup":
        statements = d.accounts.backup_user_grants(
            account.user, account.host, password, account.databases, account.tls
        )
        statements += d.accounts.replica_status_grants(account.user, account.host)
        statements += d.accounts.backup_tool_grants(account.user, account.host)
        return statements
    if account.role == "replication":
        return d.accounts.replication_user_grants(account.user, account.host, password, account.tls)
    if account.role == "restore":
        return [
            *d.accounts.restore_user_grants(account.user, account.host, password, tls=account.tls),
            trust_function_creators(version),
        ]
    if account.role == "monitor":
        return d.accounts.monitor_user_grants(
            account.user, account.host, password, databases=account.databases, tls=account.tls
        )
    raise ConfigError(f"unknown account role {account.role!r}: use one of {', '.join(ROLES)}")


def masked(statements: Sequence[str], password: str) -> list[str]:
    """The statements with the password literal replaced (for dry runs and logs)."""
    literal = quote_string(password)
    return [s.replace(literal, "'********'") for s in statements]


def create_users(
    admin: ServerSpec, accounts: Sequence[Account], passwords: Mapping[str, str], *, dry_run: bool = True
) -> list[str]:
    """Create or update ``accounts`` on the server (idempotent). Returns the statements run
    (or that would run), passwords masked."""
    with db.session(admin) as conn:
        version = db.server_version(conn)
        shown: list[str] = []
        for account in accounts:
            password = passwords.get(account.role)
            if not password:
                raise ConfigError(f"no password given for the {account.role} account {account.user!r}")
            statements = user_statements(version, account, password)
            shown += masked(statements, password)
            if not dry_run:
                with conn.cursor() as cur:
                    cur.execute(NO_BINLOG)  # accounts are per server, never replicated
                    for statement in statements:
                        cur.execute(statement)
    return shown


def server_notes(admin: ServerSpec, accounts: Sequence[Account]) -> list[str]:
    """What the accounts' roles need from the server beyond grants, as SQL comments: on MySQL
    the clone plugin for physical backups (the backup role), when it is not active."""
    if not any(a.role == "backup" for a in accounts):
        return []
    with db.session(admin) as conn:
        if db.server_version(conn).flavor is Flavor.MARIADB:
            return []
        status = db.scalar(conn, clone_sql.PLUGIN_STATUS)
    if status == "ACTIVE":
        return []
    return [
        "-- physical backups of MySQL (CLONE) need the clone plugin, not active on this server: "
        + clone_sql.INSTALL_PLUGIN
    ]
