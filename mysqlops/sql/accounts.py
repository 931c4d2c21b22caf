"""Least-privilege accounts per flavor: backup, replication, restore and monitor users, and
which privileges a backup account lacks (with the GRANT that adds each)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mysqlops.errors import ConfigError
from mysqlops.sql.grants import _Grant, _like_match, _Need, _parse_grant_line
from mysqlops.sql.quoting import _check_text, _db_grant_name, account, quote_identifier, quote_string
from mysqlops.sql.series import Series

_MARIADB_ALIASES = {
    "REPLICATION CLIENT": "BINLOG MONITOR",
    "REPLICA MONITOR": "SLAVE MONITOR",
    "REPLICATION REPLICA": "REPLICATION SLAVE",
    "REPLICATION REPLICA ADMIN": "REPLICATION SLAVE ADMIN",
    "READ ONLY ADMIN": "READ_ONLY ADMIN",
}


def root_init_file(password: str, *, create_localhost: bool = False) -> str:
    """The ``--init-file`` of a sandbox server: ``root`` over the socket and over TCP from
    127.0.0.1 with ``password`` (``create_localhost``: also create root@localhost, for a
    datadir restored from elsewhere). Never binary-logged."""
    pw = quote_string(password)
    lines = ["SET SESSION sql_log_bin=0;"]  # never write the password into the binary log
    if create_localhost:
        lines.append(f"CREATE USER IF NOT EXISTS 'root'@'localhost' IDENTIFIED BY {pw};")
    lines += [
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};",
        f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY {pw};",
        f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {pw};",
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
    ]
    if create_localhost:
        lines.append("GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost' WITH GRANT OPTION;")
    return "\n".join(lines) + "\n"


def _unique(names: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        _check_text("database name", name)
        if not name:
            raise ConfigError("database name must not be empty")
        if name not in seen:
            seen.append(name)
    return seen


class AccountSql(Series):
    """The accounts mysqlops uses on one server version, and what they may do."""

    SSL_TYPE = "SELECT ssl_type AS t FROM mysql.user WHERE User = %s AND Host = %s"

    @staticmethod
    def show_grants_for(user: str, host: str) -> str:
        return f"SHOW GRANTS FOR {account(user, host)}"

    def replica_status_grants(self, user: str, host: str) -> list[str]:
        """What lets a backup account run SHOW SLAVE STATUS (the check flow tells a replica from
        a primary): MariaDB 10.5.9+ SLAVE MONITOR; MySQL's backup account already holds
        REPLICATION CLIENT, older MariaDB its alias BINLOG MONITOR."""
        if self.is_mariadb and self.version.at_least(10, 5, 9):
            return [f"GRANT SLAVE MONITOR ON *.* TO {account(user, host)}"]
        return []

    def _user_statements(self, user: str, host: str, password: str, tls: bool) -> list[str]:
        """CREATE USER IF NOT EXISTS + ALTER USER: creates, or converges password and TLS."""
        acct = account(user, host)
        require = "REQUIRE SSL" if tls else "REQUIRE NONE"
        pw = quote_string(password)
        return [
            f"CREATE USER IF NOT EXISTS {acct} IDENTIFIED BY {pw} {require}",
            f"ALTER USER {acct} IDENTIFIED BY {pw} {require}",
        ]

    def _backup_needs(self, binlogs: bool = True) -> list[_Need]:
        db = "db"
        needs = [
            _Need("SELECT", db, "read table data"),
            _Need("SHOW VIEW", db, "dump view definitions"),
            _Need("TRIGGER", db, "dump triggers (without it the dump silently leaves them out)"),
            _Need("EVENT", db, "dump scheduled events"),
        ]
        if self.is_mariadb:
            proc = ("mysql", "proc")
            if self.version.at_least(11, 3, 0):
                needs.append(
                    _Need(
                        "SHOW CREATE ROUTINE",
                        db,
                        "dump stored procedures and functions (without it they are silently left out)",
                        alternatives=(("SELECT", "table", proc),),
                    )
                )
            else:
                needs.append(
                    _Need(
                        "SELECT",
                        "table",
                        "dump stored procedures and functions (without it they are silently left out)",
                        table=proc,
                    )
                )
            if binlogs:
                needs += [
                    _Need(
                        "BINLOG MONITOR",
                        "global",
                        "read SHOW MASTER STATUS / SHOW BINARY LOGS (binlog coordinates, archiving)",
                        alternatives=(("SUPER", "global", None),),
                    ),
                    _Need(
                        "REPLICATION SLAVE",
                        "global",
                        "stream binary logs (mariadb-binlog --read-from-remote-server)",
                    ),
                    _Need(
                        "RELOAD",
                        "global",
                        "FLUSH BINARY LOGS to close the current binlog before archiving it",
                    ),
                ]
            return needs
        needs += [
            _Need("RELOAD", "global", "--source-data takes FLUSH TABLES WITH READ LOCK for a moment"),
            _Need(
                "REPLICATION CLIENT",
                "global",
                "read the binlog position (SHOW BINARY LOG STATUS / SHOW MASTER STATUS, SHOW BINARY LOGS)",
                alternatives=(("SUPER", "global", None),),
            ),
            _Need("PROCESS", "global", "mysqldump reads tablespace information (unless --no-tablespaces)"),
        ]
        if self._mysql_at_least(8, 0, 20):
            needs.append(
                _Need(
                    "SHOW_ROUTINE",
                    "global",
                    "dump stored procedures and functions of other definers",
                    alternatives=(("SELECT", "global", None),),
                )
            )
        else:
            needs.append(_Need("SELECT", "global", "dump stored procedures and functions of other definers"))
        if binlogs:
            needs.append(
                _Need(
                    "REPLICATION SLAVE",
                    "global",
                    "stream binary logs (mysqlbinlog --read-from-remote-server)",
                )
            )
        return needs

    def required_backup_privileges(self, *, binlogs: bool = True) -> dict[str, str]:
        """Privilege -> why the backup account needs it (db-level ones apply to each database)."""
        return {need.label: need.why for need in self._backup_needs(binlogs)}

    def backup_user_grants(
        self,
        user: str,
        host: str,
        password: str,
        databases: Sequence[str] | None = None,
        tls: bool = False,
        *,
        binlogs: bool = True,
    ) -> list[str]:
        """Statements for the backup account (idempotent): see :meth:`required_backup_privileges`.

        ``databases=None``: the database-level privileges on ``*.*`` (new databases included).
        ``binlogs``: also what binlog archiving needs. LOCK TABLES is not granted: dumps always
        use --single-transaction.
        """
        acct = account(user, host)
        out = self._user_statements(user, host, password, tls)
        needs = self._backup_needs(binlogs)
        global_privs = [n.privilege for n in needs if n.scope == "global"]
        db_privs = [n.privilege for n in needs if n.scope == "db"]
        if databases is None:
            global_privs = db_privs + [p for p in global_privs if p not in db_privs]
        if global_privs:
            out.append(f"GRANT {', '.join(global_privs)} ON *.* TO {acct}")
        if databases is not None:
            for name in _unique(databases):
                out.append(f"GRANT {', '.join(db_privs)} ON {_db_grant_name(name)}.* TO {acct}")
        for need in needs:
            if (
                need.scope == "table"
                and need.table
                and not (databases is None and need.privilege in global_privs)
            ):
                out.append(
                    f"GRANT {need.privilege} ON {quote_identifier(need.table[0])}.{quote_identifier(need.table[1])} TO {acct}"
                )
        return out

    def replica_backup_grants(self, user: str, host: str) -> list[str]:
        """Extra grants for backups taken from a replica, where we stop and start its SQL thread."""
        acct = account(user, host)
        if self.is_mariadb:
            monitor = "SLAVE MONITOR, " if self.version.at_least(10, 5, 9) else ""
            return [f"GRANT {monitor}REPLICATION SLAVE ADMIN ON *.* TO {acct}"]
        return [f"GRANT REPLICATION CLIENT, REPLICATION_SLAVE_ADMIN ON *.* TO {acct}"]

    def backup_tool_grants(self, user: str, host: str) -> list[str]:
        """What the backup account needs beyond the dump's privileges. MariaDB: EXECUTE
        (mariadb-dump reads the columns of a view over a stored function with SHOW FIELDS,
        refused without it: error 1370) and PROCESS (mariabackup refuses to start without it);
        MySQL: BACKUP_ADMIN (CLONE LOCAL and performance_schema.log_status)."""
        acct = account(user, host)
        if self.is_mariadb:
            return [f"GRANT EXECUTE ON *.* TO {acct}", f"GRANT PROCESS ON *.* TO {acct}"]
        return [f"GRANT BACKUP_ADMIN ON *.* TO {acct}"]

    def replication_user_grants(self, user: str, host: str, password: str, tls: bool) -> list[str]:
        """The account replicas log in with: REPLICATION SLAVE only (+ REQUIRE SSL with TLS)."""
        if not self.is_mariadb and len(password) > 32:
            raise ConfigError(
                "MySQL refuses replication passwords longer than 32 characters (error 3056): "
                "choose a password of at most 32 characters"
            )
        out = self._user_statements(user, host, password, tls)
        out.append(f"GRANT REPLICATION SLAVE ON *.* TO {account(user, host)}")
        return out

    def restore_user_grants(self, user: str, host: str, password: str, *, tls: bool = False) -> list[str]:
        """The account that loads dumps: creates every object kind a dump holds, on ``*.*``.

        Also the right to keep a dump's ``DEFINER=`` (MariaDB SET USER; MySQL SET_USER_ID,
        or SET_ANY_DEFINER + ALLOW_NONEXISTENT_DEFINER from 8.2.0, and SYSTEM_USER from 8.0.16
        for definers that hold it) and, on MySQL 8.0.14+, SESSION_VARIABLES_ADMIN for the
        ``SET @@SESSION.SQL_LOG_BIN= 0`` that GTID dumps contain.
        On a target with binary logging, stored functions also need
        log_bin_trust_function_creators=ON (SUPER is deliberately not granted).
        """
        privs = [
            "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "REFERENCES",
            "CREATE TEMPORARY TABLES", "LOCK TABLES", "CREATE VIEW", "SHOW VIEW", "TRIGGER", "EVENT",
            "CREATE ROUTINE", "ALTER ROUTINE", "EXECUTE",
        ]  # fmt: skip
        if self.is_mariadb:
            privs.append("SET USER")
        else:
            if self._mysql_at_least(8, 2, 0):
                privs += ["SET_ANY_DEFINER", "ALLOW_NONEXISTENT_DEFINER"]
            else:
                privs.append("SET_USER_ID")
            if self._mysql_at_least(8, 0, 14):
                privs.append("SESSION_VARIABLES_ADMIN")
            if self._mysql_at_least(8, 0, 16):
                # a DEFINER holding SYSTEM_USER (root@localhost, the usual definer) can only be
                # named by an account that holds it too (ERROR 1227)
                privs.append("SYSTEM_USER")
        out = self._user_statements(user, host, password, tls)
        out.append(f"GRANT {', '.join(privs)} ON *.* TO {account(user, host)}")
        return out

    def monitor_user_grants(
        self,
        user: str,
        host: str,
        password: str,
        *,
        databases: Sequence[str] | None = None,
        tls: bool = False,
    ) -> list[str]:
        """The health-check account: replica and binlog status, SELECT for CHECKSUM TABLE, and
        the right to pause a replica's SQL thread at one GTID point for the drift check
        (replica-health with sample_checksum: STOP/START ... UNTIL, error 1227 without it)."""
        acct = account(user, host)
        if self.is_mariadb:
            if self.version.at_least(10, 5, 9):
                monitor = "SLAVE MONITOR, REPLICATION SLAVE ADMIN, BINLOG MONITOR"
            else:
                monitor = "REPLICATION SLAVE ADMIN, BINLOG MONITOR"
        else:
            monitor = "REPLICATION CLIENT, REPLICATION_SLAVE_ADMIN"
        out = self._user_statements(user, host, password, tls)
        if databases is None:
            out.append(f"GRANT SELECT, {monitor} ON *.* TO {acct}")
        else:
            out.append(f"GRANT {monitor} ON *.* TO {acct}")
            out += [f"GRANT SELECT ON {_db_grant_name(db)}.* TO {acct}" for db in _unique(databases)]
        return out

    def missing_backup_privileges(
        self, show_grants_lines: Sequence[str], databases: Sequence[str], *, binlogs: bool = True
    ) -> list[str]:
        """Each privilege the backup account lacks, with the exact GRANT that adds it.

        ``show_grants_lines``: the rows of SHOW GRANTS (for the user, plus those of its roles if
        any: role grants themselves are not expanded). Global, database-level (wildcard
        patterns such as ``shop\\_%`` included) and table-level grants count, ``ALL
        PRIVILEGES`` covers its level, MySQL partial revokes (REVOKE lines) are subtracted.
        Database names are matched case-sensitively (lower_case_table_names=0).
        """
        grants = [g for g in (_parse_grant_line(str(line)) for line in show_grants_lines) if g]
        grantee = next((g.grantee for g in grants if g.grantee and not g.revoke), "") or "'backup'@'%'"
        allows = [g for g in grants if not g.revoke]
        revokes = [g for g in grants if g.revoke]
        out: list[str] = []
        for need in self._backup_needs(binlogs):
            if need.scope == "db":
                for db in _unique(databases):
                    if not self._has(allows, revokes, need, db):
                        out.append(
                            f"missing {need.privilege} on database {quote_identifier(db)} ({need.why}): "
                            f"GRANT {need.privilege} ON {_db_grant_name(db)}.* TO {grantee};"
                        )
            elif not self._has(allows, revokes, need, None):
                if need.scope == "table" and need.table:
                    target = f"{quote_identifier(need.table[0])}.{quote_identifier(need.table[1])}"
                else:
                    target = "*.*"
                out.append(
                    f"missing {need.label} ({need.why}): GRANT {need.privilege} ON {target} TO {grantee};"
                )
        return out

    def _has(self, allows: list[_Grant], revokes: list[_Grant], need: _Need, db: str | None) -> bool:
        options = [(need.privilege, need.scope, need.table), *need.alternatives]
        return any(self._holds(allows, revokes, priv, scope, table, db) for priv, scope, table in options)

    def _holds(
        self,
        allows: list[_Grant],
        revokes: list[_Grant],
        privilege: str,
        scope: str,
        table: tuple[str, str] | None,
        db: str | None,
    ) -> bool:
        priv = self._canonical(privilege)

        def covers(g: _Grant) -> bool:
            privs = {self._canonical(p) for p in g.privileges}
            return priv in privs or "ALL PRIVILEGES" in privs

        if scope == "global":
            return any(covers(g) for g in allows if g.level == "global")
        target_db = table[0] if scope == "table" and table else db
        if target_db is None:
            return False
        revoked = any(covers(g) for g in revokes if g.level == "db" and g.db == target_db)
        if not revoked and any(covers(g) for g in allows if g.level == "global"):
            return True
        if any(
            covers(g) for g in allows if g.level == "db" and g.db is not None and _like_match(g.db, target_db)
        ):
            return True
        if scope == "table" and table:
            return any(
                covers(g) for g in allows if g.level == "table" and g.db == table[0] and g.table == table[1]
            )
        return False

    def _canonical(self, privilege: str) -> str:
        p = " ".join(privilege.upper().split())
        if p == "ALL":
            return "ALL PRIVILEGES"
        if self.is_mariadb:
            return _MARIADB_ALIASES.get(p, p)
        return p
