"""Binary log SQL per flavor: status, listing, events, flush and purge."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mysqlops.errors import ConfigError
from mysqlops.gtid import normalize_gtid
from mysqlops.model import BinlogCoordinates
from mysqlops.sql.quoting import quote_string
from mysqlops.sql.series import Series
from mysqlops.sql.status import _get, _int, _text

# events every binlog starts with, written by the server itself: a file holding only these has
# no transaction in it (MariaDB: Gtid_list/Binlog_checkpoint; MySQL: Previous_gtids)
BINLOG_HEADER_EVENTS = frozenset(
    {"Format_desc", "Start_encryption", "Gtid_list", "Binlog_checkpoint", "Previous_gtids"}
)
_BINLOG_FILE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


def retention_advice(seconds: int) -> str:
    """How to keep binary logs ``seconds`` on either flavor (for a check that does not know it)."""
    days = max(1, -(-seconds // 86400))
    return (
        f"SET PERSIST binlog_expire_logs_seconds = {seconds} (MySQL) or "
        f"[mysqld] expire_logs_days = {days} (MariaDB)"
    )


class BinlogSql(Series):
    """The binary log of one server version."""

    def archive_grant_hint(self) -> str:
        """The GRANT binlog archiving needs (shown when it is refused)."""
        monitor = "BINLOG MONITOR" if self.is_mariadb else "REPLICATION CLIENT"
        return f"GRANT RELOAD, {monitor}, REPLICATION SLAVE ON *.* TO <backup user>"

    # MariaDB only: strict mode refuses replayed GTIDs that are not logged
    GTID_STRICT_MODE = "SELECT @@GLOBAL.gtid_strict_mode"

    @staticmethod
    def set_gtid_strict_mode(on: bool) -> str:
        return f"SET GLOBAL gtid_strict_mode={1 if on else 0}"

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
