"""SQL and option differences of MariaDB 10.5+/11.x and MySQL 8.0/8.4 (pure: strings in, strings out).

One :class:`Dialect` per server version, built with :func:`dialect_for`. Every method returns SQL
text (or argv options) and never talks to a server; the adapters run what this module writes.

Version facts used here (sources: the MySQL 8.0/8.4 and MariaDB manuals; "measured" means checked
on the MariaDB 10.11 sandbox of this project):

* MySQL 8.0.22: ``START/STOP REPLICA``, ``SHOW REPLICA STATUS`` (``Source_*``/``Replica_*`` columns).
* MySQL 8.0.23: ``CHANGE REPLICATION SOURCE TO ... SOURCE_*`` (before: ``CHANGE MASTER TO``).
* MySQL 8.0.26: ``mysqldump --source-data``/``--dump-replica`` (before: ``--master-data``/``--dump-slave``).
* MySQL 8.2.0: ``SHOW BINARY LOG STATUS`` and ``RESET BINARY LOGS AND GTIDS``; 8.4 removed
  ``SHOW MASTER STATUS``, ``RESET MASTER``, ``CHANGE MASTER``, ``START/STOP SLAVE``.
* MySQL replication passwords are limited to 32 characters (error 3056); MariaDB 10.11 allows 96
  (measured).
* MariaDB keeps ``CHANGE MASTER TO`` and ``SHOW SLAVE STATUS``; ``SHOW SLAVE STATUS`` has no
  executed-GTID column (``Gtid_IO_Pos`` is what was *received*), only ``SHOW ALL SLAVES STATUS``
  has ``Gtid_Slave_Pos`` (measured).
* MariaDB 10.5.2 split SUPER: ``BINLOG MONITOR`` (alias ``REPLICATION CLIENT``) for SHOW MASTER
  STATUS / SHOW BINARY LOGS, ``REPLICATION SLAVE ADMIN`` for START/STOP SLAVE; 10.5.9 added
  ``SLAVE MONITOR`` (alias ``REPLICA MONITOR``) for SHOW SLAVE STATUS. SUPER still satisfies all
  three on 10.11 (measured error texts). 11.3.0 added ``SHOW CREATE ROUTINE``.
* ``mariadb-dump --single-transaction --master-data=2`` uses the binlog snapshot and needs neither
  RELOAD nor BINLOG MONITOR (measured); since MDEV-4827 it writes the GTID line
  (``-- SET GLOBAL gtid_slave_pos='...'``) at the END of the dump, after the data (measured on
  10.11.19): :meth:`Dialect.parse_dump_coordinates` must see the dump's head AND tail.
* ``mysqldump --source-data`` takes FLUSH TABLES WITH READ LOCK briefly (RELOAD) and reads the
  binlog status (REPLICATION CLIENT); PROCESS is needed unless ``--no-tablespaces`` (8.0.21+).
* ``--set-gtid-purged=COMMENTED`` writes ``/* SET @@GLOBAL.GTID_PURGED='+uuid:1-5';*/`` (MySQL
  8.0.17+), so restoring a dump never changes the target's GTID state by itself.

String literals (:func:`quote_string`): single quotes are doubled (``''``), which means the same
with and without ``NO_BACKSLASH_ESCAPES``. A backslash cannot be written one way that is right in
both modes, so the default output assumes the server default (backslash escapes on), the same
assumption PyMySQL's own parameter escaping makes; pass ``no_backslash_escapes=True`` for a session
that has that SQL mode. NUL is refused: no name, password or path needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mysqlops.errors import ConfigError
from mysqlops.model import BinlogCoordinates, Flavor, ServerVersion
from mysqlops.sql.grants import _Grant, _like_match, _Need, _parse_grant_line
from mysqlops.sql.gtid import _MARIADB_GTID, _MYSQL_GTID, normalize_gtid
from mysqlops.sql.quoting import (
    SYSTEM_SCHEMAS,
    _check_text,
    _db_grant_name,
    account,
    quote_identifier,
    quote_string,
)
from mysqlops.sql.status import ReplicaStatus, _get, _int, _text
from mysqlops.tools.redact import error_message

# events every binlog starts with, written by the server itself: a file holding only these has
# no transaction in it (MariaDB: Gtid_list/Binlog_checkpoint; MySQL: Previous_gtids)
BINLOG_HEADER_EVENTS = frozenset(
    {"Format_desc", "Start_encryption", "Gtid_list", "Binlog_checkpoint", "Previous_gtids"}
)
_BINLOG_FILE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


# --------------------------------------------------------------------------------------------
# the dialect

_ON_VALUES = frozenset({"ON", "1", "YES", "TRUE", "FORCE"})


def _is_on(value: Any) -> bool:
    return _text(value).strip().upper() in _ON_VALUES


_CHANGE_RE = re.compile(
    r"^[ \t]*(?:--[ \t]*)?CHANGE[ \t]+(?:MASTER|REPLICATION[ \t]+SOURCE)[ \t]+(?:'[^']*'[ \t]+)?TO\b(?P<body>[^;]*);",
    re.IGNORECASE | re.MULTILINE,
)
_LOG_FILE_RE = re.compile(r"(?:MASTER|SOURCE)_LOG_FILE\s*=\s*'([^']*)'", re.IGNORECASE)
_LOG_POS_RE = re.compile(r"(?:MASTER|SOURCE)_LOG_POS\s*=\s*(\d+)", re.IGNORECASE)
_MARIADB_GTID_RE = re.compile(
    r"^[ \t]*(?:--[ \t]*)?SET[ \t]+GLOBAL[ \t]+gtid_slave_pos[ \t]*=[ \t]*'([^']*)'",
    re.IGNORECASE | re.MULTILINE,
)
_MYSQL_GTID_RE = re.compile(
    r"^[ \t]*(?:--[ \t]*|/\*[ \t]*)?SET[ \t]+@@GLOBAL\.GTID_PURGED[ \t]*=[ \t]*(?:/\*!\d+[ \t]*'\+'[ \t]*\*/)?[ \t]*'([^']*)'",
    re.IGNORECASE | re.MULTILINE,
)


class Dialect:
    """SQL and tool options for one server version. Build it with :func:`dialect_for`."""

    def __init__(self, version: ServerVersion) -> None:
        if version.flavor is Flavor.MARIADB:
            if not version.at_least(10, 5, 2):
                raise ConfigError(
                    f"{version} is not supported: mysqlops needs MariaDB 10.5.2 or newer "
                    "(the split SUPER privileges BINLOG MONITOR / REPLICATION SLAVE ADMIN)"
                )
        elif not version.at_least(8, 0, 0):
            raise ConfigError(f"{version} is not supported: mysqlops needs MySQL 8.0 or newer")
        self.version = version

    def __repr__(self) -> str:
        return f"Dialect({self.version})"

    @property
    def flavor(self) -> Flavor:
        return self.version.flavor

    @property
    def is_mariadb(self) -> bool:
        return self.version.flavor is Flavor.MARIADB

    def _mysql_at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return not self.is_mariadb and self.version.at_least(major, minor, patch)

    @property
    def _replica_word(self) -> str:
        """REPLICA (MySQL 8.0.22+) or SLAVE (MariaDB: the only spelling in every 10.5+ release)."""
        return "REPLICA" if self._mysql_at_least(8, 0, 22) else "SLAVE"

    @property
    def _source_syntax(self) -> bool:
        """CHANGE REPLICATION SOURCE TO / SOURCE_* options: MySQL 8.0.23+."""
        return self._mysql_at_least(8, 0, 23)

    # -- replication -------------------------------------------------------------------------

    def show_replica_status(self) -> str:
        return f"SHOW {self._replica_word} STATUS"

    def parse_replica_status(self, row: Mapping[str, Any] | None) -> ReplicaStatus | None:
        """Normalize one status row (dict keyed by column name); None when not a replica.

        MariaDB: SHOW SLAVE STATUS has no executed GTID; merge ``gtid_slave_pos`` (from
        :meth:`replica_gtid_query`) into the row, or pass a SHOW ALL SLAVES STATUS row.
        """
        if not row:
            return None
        if self.is_mariadb:
            using = _text(_get(row, "Using_Gtid")).strip()
            using_gtid = bool(using) and using.upper() != "NO"
            executed = _get(row, "Gtid_Slave_Pos", "gtid_slave_pos")
        else:
            using_gtid = _int(_get(row, "Auto_Position"), 0) == 1
            executed = _get(row, "Executed_Gtid_Set")
        return ReplicaStatus(
            source_host=_text(_get(row, "Source_Host", "Master_Host")),
            source_port=_int(_get(row, "Source_Port", "Master_Port"), 0) or 0,
            io_running=_text(_get(row, "Replica_IO_Running", "Slave_IO_Running")) or "No",
            sql_running=_text(_get(row, "Replica_SQL_Running", "Slave_SQL_Running")) or "No",
            seconds_behind=_int(_get(row, "Seconds_Behind_Source", "Seconds_Behind_Master")),
            last_io_error=_text(_get(row, "Last_IO_Error")),
            last_sql_error=error_message(_text(_get(row, "Last_SQL_Error"))),  # quotes rows
            last_io_errno=_int(_get(row, "Last_IO_Errno"), 0) or 0,
            last_sql_errno=_int(_get(row, "Last_SQL_Errno"), 0) or 0,
            executed_gtid=normalize_gtid(_text(executed)),
            retrieved_gtid=normalize_gtid(_text(_get(row, "Retrieved_Gtid_Set", "Gtid_IO_Pos"))),
            using_gtid=using_gtid,
            source_log_file=_text(_get(row, "Source_Log_File", "Master_Log_File")),
            read_source_log_pos=_int(_get(row, "Read_Source_Log_Pos", "Read_Master_Log_Pos"), 0) or 0,
            relay_source_log_file=_text(_get(row, "Relay_Source_Log_File", "Relay_Master_Log_File")),
            exec_source_log_pos=_int(_get(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos"), 0) or 0,
            ssl_allowed=_text(_get(row, "Source_SSL_Allowed", "Master_SSL_Allowed")).strip().upper() == "YES",
            io_state=_text(_get(row, "Replica_IO_State", "Slave_IO_State")),
            sql_state=_text(_get(row, "Replica_SQL_Running_State", "Slave_SQL_Running_State")),
        )

    def replica_gtid_query(self) -> str:
        """The replica's applied GTID position, one column ``gtid``.

        MariaDB: ``gtid_slave_pos`` (what MASTER_GTID_WAIT compares with); MySQL: ``gtid_executed``.
        """
        if self.is_mariadb:
            return "SELECT @@GLOBAL.gtid_slave_pos AS gtid"
        return "SELECT @@GLOBAL.gtid_executed AS gtid"

    def change_source(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        tls: bool,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        verify_cert: bool = False,
        connect_retry: int = 10,
    ) -> str:
        """Point this replica at a source, positioned by GTID.

        TLS settings are always written explicitly: MariaDB 11.4 turned SSL and certificate
        verification on by default for replication (MDEV-31857), so leaving them out would mean
        different things on different versions. Without TLS, MySQL gets GET_SOURCE_PUBLIC_KEY=1
        so a caching_sha2_password replication user can log in.
        """
        for kind, value in (("source host", host), ("replication user", user)):
            _check_text(kind, value)
            if not value:
                raise ConfigError(f"{kind} must not be empty")
        _check_text("replication password", password)
        if not 0 < int(port) < 65536:
            raise ConfigError(f"source port {port} is not in 1..65535")
        if int(connect_retry) < 1:
            raise ConfigError(f"connect_retry must be at least 1 second, got {connect_retry}")
        if not self.is_mariadb and len(password) > 32:
            raise ConfigError(
                "MySQL refuses replication passwords longer than 32 characters (error 3056): "
                "choose a password of at most 32 characters for the replication user"
            )
        if self.is_mariadb and len(password) > 96:
            raise ConfigError(
                "MariaDB refuses MASTER_PASSWORD longer than 96 characters: choose a shorter one"
            )
        if not tls and (ca or cert or key or verify_cert):
            raise ConfigError("ca/cert/key/verify_cert were given but tls is off: set tls=True or drop them")
        if verify_cert and not ca:
            raise ConfigError("verify_cert needs the CA file that signed the source's certificate: pass ca=")
        if bool(cert) != bool(key):
            raise ConfigError("a client certificate needs both cert= and key=")
        p = "SOURCE" if self._source_syntax else "MASTER"
        opts = [
            f"{p}_HOST={quote_string(host)}",
            f"{p}_PORT={int(port)}",
            f"{p}_USER={quote_string(user)}",
            f"{p}_PASSWORD={quote_string(password)}",
            f"{p}_CONNECT_RETRY={int(connect_retry)}",
            "MASTER_USE_GTID=slave_pos" if self.is_mariadb else f"{p}_AUTO_POSITION=1",
        ]
        if tls:
            opts.append(f"{p}_SSL=1")
            for name, path in (("CA", ca), ("CERT", cert), ("KEY", key)):
                if path:
                    opts.append(f"{p}_SSL_{name}={quote_string(path)}")
            opts.append(f"{p}_SSL_VERIFY_SERVER_CERT={1 if verify_cert else 0}")
        else:
            opts.append(f"{p}_SSL=0")
            if not self.is_mariadb:
                opts.append("GET_SOURCE_PUBLIC_KEY=1" if self._source_syntax else "GET_MASTER_PUBLIC_KEY=1")
        head = "CHANGE REPLICATION SOURCE TO" if self._source_syntax else "CHANGE MASTER TO"
        return f"{head} " + ", ".join(opts)

    def start_replica(self) -> str:
        return f"START {self._replica_word}"

    def stop_replica(self) -> str:
        return f"STOP {self._replica_word}"

    def stop_replica_sql_thread(self) -> str:
        return f"STOP {self._replica_word} SQL_THREAD"

    def start_replica_sql_thread(self) -> str:
        return f"START {self._replica_word} SQL_THREAD"

    def reset_replica_all(self) -> str:
        return f"RESET {self._replica_word} ALL"

    def _reset_binlog(self) -> str:
        return "RESET BINARY LOGS AND GTIDS" if self._mysql_at_least(8, 2, 0) else "RESET MASTER"

    def check_gtid(self, gtid: str) -> str:
        """The GTID set/position with whitespace removed; ConfigError when it is not one."""
        value = normalize_gtid(gtid) or ""
        pattern = _MARIADB_GTID if self.is_mariadb else _MYSQL_GTID
        if not pattern.match(value):
            example = (
                "0-1-42 (domain-server-sequence)"
                if self.is_mariadb
                else "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42"
            )
            raise ConfigError(f"{gtid!r} is not a {self.flavor.value} GTID; expected e.g. {example}")
        return value

    def set_gtid_position(self, gtid: str, *, reset_binlog: bool = True) -> list[str]:
        """Statements that make a freshly restored replica start after ``gtid``.

        Run with replication stopped. ``reset_binlog`` first deletes this server's own binary
        logs and GTID history (RESET MASTER / RESET BINARY LOGS AND GTIDS): a restore that was
        binary-logged leaves local GTIDs behind, and MariaDB then refuses the new gtid_slave_pos
        (error 1947, measured); MySQL can only set gtid_purged wholesale on an empty history.
        Pass ``reset_binlog=False`` when the server has log_bin=OFF (MariaDB: "Binlog closed,
        cannot RESET MASTER", measured); MySQL then appends with ``gtid_purged='+...'``.
        """
        value = self.check_gtid(gtid)
        out = [self._reset_binlog()] if reset_binlog else []
        if self.is_mariadb:
            out.append(f"SET GLOBAL gtid_slave_pos = {quote_string(value)}")
        else:
            out.append(f"SET GLOBAL gtid_purged = {quote_string(value if reset_binlog else '+' + value)}")
        return out

    def read_only_statements(self, on: bool) -> list[str]:
        """Make a server refuse (or accept) client writes; replication threads still apply.

        MySQL: super_read_only also stops SUPER/admin accounts; turning it on implies
        read_only, turning read_only off implies super_read_only off, hence the order.
        MariaDB 10.5-11.x has no super_read_only: read_only stops everyone without the
        READ ONLY ADMIN privilege (since 10.11 SUPER no longer includes it, MDEV-29596;
        ALL PRIVILEGES still does), so root can still write on a read-only MariaDB replica.
        """
        if self.is_mariadb:
            return [f"SET GLOBAL read_only = {'ON' if on else 'OFF'}"]
        if on:
            return ["SET GLOBAL read_only = ON", "SET GLOBAL super_read_only = ON"]
        return ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]

    def gtid_executed_query(self) -> str:
        """What this server has written and a replica of it can reach, one column ``gtid``.

        MariaDB: ``gtid_binlog_pos`` (not gtid_current_pos, which can hold replicated domains
        this server never binlogged, so a replica could wait for them forever).
        MySQL: ``gtid_executed`` (may contain newlines: use :func:`normalize_gtid`).
        """
        if self.is_mariadb:
            return "SELECT @@GLOBAL.gtid_binlog_pos AS gtid"
        return "SELECT @@GLOBAL.gtid_executed AS gtid"

    def wait_for_gtid(self, gtid: str, timeout_s: int) -> str:
        """A SELECT returning one column ``result``: 0 when reached, else timed out.

        MariaDB MASTER_GTID_WAIT returns -1 on timeout and compares with gtid_slave_pos (so it
        only makes sense on a replica: measured -1 on a primary); MySQL
        WAIT_FOR_EXECUTED_GTID_SET returns 1 on timeout. Check with :meth:`wait_succeeded`.
        """
        value = self.check_gtid(gtid)
        if int(timeout_s) < 0:
            raise ConfigError(f"timeout must not be negative, got {timeout_s}")
        fn = "MASTER_GTID_WAIT" if self.is_mariadb else "WAIT_FOR_EXECUTED_GTID_SET"
        return f"SELECT {fn}({quote_string(value)}, {int(timeout_s)}) AS result"

    @staticmethod
    def wait_succeeded(result: Any) -> bool:
        """Whether a :meth:`wait_for_gtid` result means reached (0), not timeout or NULL."""
        return _int(result) == 0

    def binlog_status_query(self) -> str:
        """File/Position of the binary log (SHOW BINARY LOG STATUS on MySQL 8.2+)."""
        return "SHOW BINARY LOG STATUS" if self._mysql_at_least(8, 2, 0) else "SHOW MASTER STATUS"

    def parse_binlog_status(
        self, row: Mapping[str, Any] | None, gtid: str | None = None
    ) -> BinlogCoordinates | None:
        """Coordinates from a binlog status row; None when binary logging is off (no row).

        MySQL rows carry ``Executed_Gtid_Set``; for MariaDB pass ``gtid`` from
        :meth:`gtid_executed_query`.
        """
        if not row:
            return None
        file = _text(_get(row, "File"))
        position = _int(_get(row, "Position"))
        if not file or position is None:
            return None
        found = gtid if gtid is not None else _text(_get(row, "Executed_Gtid_Set"))
        return BinlogCoordinates(file, position, normalize_gtid(found))

    def flush_binary_logs(self) -> str:
        return "FLUSH BINARY LOGS"

    def show_binary_logs(self) -> str:
        return "SHOW BINARY LOGS"

    def show_binlog_events(self, file: str, limit: int) -> str:
        """The first ``limit`` events of one binary log (REPLICATION SLAVE on MySQL, BINLOG
        MONITOR on MariaDB: what archiving already needs)."""
        if not isinstance(file, str) or not _BINLOG_FILE.match(file) or file in (".", ".."):
            raise ConfigError(f"{file!r} is not a binary log file name such as mysql-bin.000042")
        return f"SHOW BINLOG EVENTS IN {quote_string(file)} LIMIT {int(limit)}"

    def purge_binary_logs_to(self, file: str) -> str:
        """Delete binary logs before ``file`` (a bare name as SHOW BINARY LOGS lists it)."""
        if not isinstance(file, str) or not _BINLOG_FILE.match(file) or file in (".", ".."):
            raise ConfigError(f"{file!r} is not a binary log file name such as mysql-bin.000042")
        return f"PURGE BINARY LOGS TO {quote_string(file)}"

    # -- preflight -------------------------------------------------------------------------------

    def replication_requirements(self, variables: Mapping[str, Any], role: str) -> list[str]:
        """Settings replication cannot work without, each with the my.cnf line that fixes it.

        ``variables``: SHOW GLOBAL VARIABLES as a dict (names in any case). ``role``:
        ``primary`` (the source) or ``replica``. Only hard requirements are returned; see
        :meth:`replication_recommendations` for advice (gtid_strict_mode, log_slave_updates...).
        Primary: binary log on, ROW format (every change replicates and can be replayed for
        point-in-time recovery exactly), server_id != 0; MySQL also gtid_mode=ON and
        enforce_gtid_consistency=ON (auto-positioning). Replica: server_id != 0; MySQL
        GTID settings as on the primary (SOURCE_AUTO_POSITION needs them on both ends).
        """
        role = _check_role(role)
        v = {str(k).lower(): _text(val) for k, val in variables.items()}
        out: list[str] = []
        if role == "primary":
            if "log_bin" not in v:
                out.append("cannot check the binary log: log_bin is missing from SHOW GLOBAL VARIABLES")
            elif not _is_on(v["log_bin"]):
                hint = " (remove skip-log-bin / disable-log-bin)" if not self.is_mariadb else ""
                out.append(f"binary log is off{hint}: add to [mysqld]: log_bin = mysql-bin")
            fmt = v.get("binlog_format", "").strip().upper()
            if fmt and fmt != "ROW":
                out.append(
                    f"binlog_format is {fmt}; replicas and point-in-time recovery need every row change: "
                    "add to [mysqld]: binlog_format = ROW"
                )
        sid = v.get("server_id")
        if sid is None:
            out.append("cannot check server_id: it is missing from SHOW GLOBAL VARIABLES")
        elif _int(sid, 0) == 0:
            number = 1 if role == "primary" else 2
            out.append(
                "server_id is 0, so the server refuses to replicate (every server needs its own id): "
                f"add to [mysqld]: server_id = {number}"
            )
        if not self.is_mariadb:
            mode = v.get("gtid_mode")
            if mode is None:
                out.append("cannot check gtid_mode: it is missing from SHOW GLOBAL VARIABLES")
            elif mode.strip().upper() != "ON":
                out.append(
                    f"gtid_mode is {mode.strip().upper() or 'empty'}; GTID auto-positioning needs ON "
                    "(on a running server step OFF -> OFF_PERMISSIVE -> ON_PERMISSIVE -> ON): "
                    "add to [mysqld]: gtid_mode = ON"
                )
            enforce = v.get("enforce_gtid_consistency")
            if enforce is None:
                out.append("cannot check enforce_gtid_consistency: it is missing from SHOW GLOBAL VARIABLES")
            elif enforce.strip().upper() not in ("ON", "1"):
                out.append(
                    f"enforce_gtid_consistency is {enforce.strip().upper() or 'empty'}; gtid_mode=ON needs it: "
                    "add to [mysqld]: enforce_gtid_consistency = ON"
                )
        return out

    def replication_recommendations(self, variables: Mapping[str, Any], role: str) -> list[str]:
        """Advice (not blockers), each with the my.cnf line: durability and safer replicas."""
        role = _check_role(role)
        v = {str(k).lower(): _text(val) for k, val in variables.items()}
        out: list[str] = []
        if role == "primary":
            if "sync_binlog" in v and _int(v["sync_binlog"], 0) != 1:
                out.append(
                    "sync_binlog is not 1: a crash can lose binlogged transactions the replicas or "
                    "point-in-time recovery need: add to [mysqld]: sync_binlog = 1"
                )
            if "innodb_flush_log_at_trx_commit" in v and _int(v["innodb_flush_log_at_trx_commit"], 1) != 1:
                out.append(
                    "innodb_flush_log_at_trx_commit is not 1: a crash can lose committed transactions: "
                    "add to [mysqld]: innodb_flush_log_at_trx_commit = 1"
                )
        if self.is_mariadb:
            if "gtid_strict_mode" in v and not _is_on(v["gtid_strict_mode"]):
                out.append(
                    "gtid_strict_mode is OFF: out-of-order or duplicate GTIDs (a write on the replica) "
                    "go unnoticed: add to [mysqld]: gtid_strict_mode = ON"
                )
            if role == "replica":
                name = "log_slave_updates" if "log_slave_updates" in v else "log_replica_updates"
                if name in v and not _is_on(v[name]):
                    out.append(
                        "log_slave_updates is OFF: the replica's binary log misses replicated changes, "
                        "so it cannot be promoted or serve point-in-time recovery: "
                        "add to [mysqld]: log_slave_updates = ON"
                    )
        elif role == "replica":
            name = "log_replica_updates" if "log_replica_updates" in v else "log_slave_updates"
            if name in v and not _is_on(v[name]):
                out.append(
                    f"{name} is OFF: the replica's binary log misses replicated changes, so it cannot be "
                    f"promoted or serve point-in-time recovery: add to [mysqld]: {name} = ON"
                )
            if "relay_log_recovery" in v and not _is_on(v["relay_log_recovery"]):
                out.append(
                    "relay_log_recovery is OFF: after a crash the replica may apply a damaged relay log: "
                    "add to [mysqld]: relay_log_recovery = ON"
                )
        if role == "replica" and "read_only" in v and not _is_on(v["read_only"]):
            line = "super_read_only = ON" if not self.is_mariadb else "read_only = ON"
            out.append(f"the replica accepts client writes, which break replication: add to [mysqld]: {line}")
        return out

    def replication_pair_problems(self, primary: Mapping[str, Any], replica: Mapping[str, Any]) -> list[str]:
        """Problems only visible with both servers' variables: equal ids (cloned data dirs)."""
        p = {str(k).lower(): _text(val) for k, val in primary.items()}
        r = {str(k).lower(): _text(val) for k, val in replica.items()}
        out: list[str] = []
        if p.get("server_id") and p.get("server_id") == r.get("server_id"):
            out.append(
                f"primary and replica both have server_id = {p['server_id']}; the replica would ignore "
                "the primary's events: give the replica another one in [mysqld]: server_id = "
                f"{(_int(p['server_id'], 0) or 0) + 1}"
            )
        if not self.is_mariadb and p.get("server_uuid") and p.get("server_uuid") == r.get("server_uuid"):
            out.append(
                "primary and replica have the same server_uuid (a copied data directory): "
                "delete auto.cnf in the replica's data directory and restart it"
            )
        return out

    # -- dump tool options ------------------------------------------------------------------

    def dump_position_options(self) -> tuple[str, ...]:
        """mysqldump/mariadb-dump options that record the binlog position and GTID, commented.

        MariaDB: ``--master-data=2 --gtid`` (``--gtid`` makes the CHANGE MASTER line use GTID; the
        gtid_slave_pos comment is written at the end of the dump). MySQL: ``--source-data=2``
        (8.0.26+, else ``--master-data=2``) with ``--set-gtid-purged=COMMENTED`` (8.0.17+), so
        the GTID set is recorded but a restore does not change gtid_purged; before 8.0.17 only
        AUTO exists, which writes an active SET @@GLOBAL.GTID_PURGED. Chosen by the server
        version: install the client tools of the same series.
        """
        if self.is_mariadb:
            return ("--master-data=2", "--gtid")
        return (
            "--source-data=2" if self._mysql_at_least(8, 0, 26) else "--master-data=2",
            self._set_gtid_purged(),
        )

    def dump_replica_options(self) -> tuple[str, ...]:
        """Options to dump a replica with its *source's* coordinates (the tool stops the SQL thread)."""
        if self.is_mariadb:
            return ("--dump-slave=2", "--gtid")
        return (
            "--dump-replica=2" if self._mysql_at_least(8, 0, 26) else "--dump-slave=2",
            self._set_gtid_purged(),
        )

    def _set_gtid_purged(self) -> str:
        return "--set-gtid-purged=COMMENTED" if self._mysql_at_least(8, 0, 17) else "--set-gtid-purged=AUTO"

    def parse_dump_coordinates(self, header_text: str) -> tuple[str | None, int | None, str | None]:
        """``(binlog file, position, gtid)`` recorded in a dump; None for what is not there.

        Pass the first ~100 lines AND, for MariaDB, the last ~30 lines: mariadb-dump writes
        ``-- SET GLOBAL gtid_slave_pos='...'`` after the data. Understands commented or active
        ``CHANGE MASTER [name] TO MASTER_LOG_FILE=..., MASTER_LOG_POS=...``, ``CHANGE REPLICATION
        SOURCE TO SOURCE_LOG_FILE=...``, MariaDB's gtid_slave_pos line, and MySQL's
        ``SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '...'`` (also COMMENTED, also over several lines).
        Only statements at the start of a line count, so table data cannot fake them.
        """
        file: str | None = None
        pos: int | None = None
        for m in _CHANGE_RE.finditer(header_text):
            body = m.group("body")
            fm, pm = _LOG_FILE_RE.search(body), _LOG_POS_RE.search(body)
            if fm and pm:
                file, pos = fm.group(1), int(pm.group(1))
                break
        gtid: str | None = None
        for regex in (
            (_MARIADB_GTID_RE, _MYSQL_GTID_RE) if self.is_mariadb else (_MYSQL_GTID_RE, _MARIADB_GTID_RE)
        ):
            gm = regex.search(header_text)
            if gm:
                gtid = normalize_gtid(gm.group(1).strip().lstrip("+"))
                break
        return file, pos, gtid

    # -- least-privilege accounts -------------------------------------------------------------

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

    def system_schemas(self) -> frozenset[str]:
        """Schemas a backup never dumps (MariaDB has ``sys`` since 10.6; harmless before)."""
        return SYSTEM_SCHEMAS


_MARIADB_ALIASES = {
    "REPLICATION CLIENT": "BINLOG MONITOR",
    "REPLICA MONITOR": "SLAVE MONITOR",
    "REPLICATION REPLICA": "REPLICATION SLAVE",
    "REPLICATION REPLICA ADMIN": "REPLICATION SLAVE ADMIN",
    "READ ONLY ADMIN": "READ_ONLY ADMIN",
}


def _check_role(role: str) -> str:
    value = str(role).strip().lower()
    if value not in ("primary", "replica"):
        raise ConfigError(f"role must be 'primary' or 'replica', got {role!r}")
    return value


def _unique(names: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        _check_text("database name", name)
        if not name:
            raise ConfigError("database name must not be empty")
        if name not in seen:
            seen.append(name)
    return seen


def dialect_for(version: ServerVersion) -> Dialect:
    """The dialect of ``version`` (ConfigError for MariaDB < 10.5.2 or MySQL < 8.0)."""
    return Dialect(version)
