"""Replication SQL per flavor: status, CHANGE SOURCE/MASTER, start/stop, GTID positions, waits.

Pure: strings in, strings out (see :mod:`mysqlops.sql.dialect` for the version facts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mysqlops.errors import ConfigError
from mysqlops.gtid import _MARIADB_GTID, _MYSQL_GTID, normalize_gtid
from mysqlops.redact import error_message
from mysqlops.sql.quoting import _check_text, quote_string
from mysqlops.sql.series import Series
from mysqlops.sql.status import ReplicaStatus, _get, _int, _text

NO_BINLOG = "SET SESSION sql_log_bin = 0"  # this session's changes stay on this server
BINLOG = "SET SESSION sql_log_bin = 1"


class ReplicaSql(Series):
    """What a replica is told and asked, for one server version."""

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

    def start_until(self, gtid: str) -> str:
        """Start the (stopped) replica so it stops right after ``gtid``."""
        value = quote_string(self.check_gtid(gtid))
        if self.is_mariadb:  # needs both threads stopped (error 1254 otherwise, measured)
            return f"{self.start_replica()} UNTIL master_gtid_pos = {value}"
        return f"{self.start_replica_sql_thread()} UNTIL SQL_AFTER_GTIDS = {value}"

    def freeze(self) -> str:
        """Stop applying (MariaDB: both threads, what START ... UNTIL needs; MySQL: the SQL thread)."""
        return self.stop_replica() if self.is_mariadb else self.stop_replica_sql_thread()

    # -- a consistent snapshot of a primary, for seeding a replica -----------------------------
    SNAPSHOT_ISOLATION = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"
    START_SNAPSHOT = "START TRANSACTION WITH CONSISTENT SNAPSHOT"
    # MariaDB: where the snapshot is in the binary log, without a global lock
    SNAPSHOT_BINLOG_STATUS = "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'"
    GTID_AT_POSITION = "SELECT BINLOG_GTID_POS(%s, %s)"  # MariaDB: the GTID position at file, offset
    GLOBAL_READ_LOCK = "FLUSH TABLES WITH READ LOCK"  # MySQL: a moment, to read gtid_executed
    UNLOCK = "UNLOCK TABLES"

    def empty_position(self, *, reset_binlog: bool) -> list[str]:
        """Statements for a replica of a primary that has no GTID history yet."""
        out = [self._reset_binlog()] if reset_binlog else []
        if self.is_mariadb:
            out.append("SET GLOBAL gtid_slave_pos = ''")
        return out
