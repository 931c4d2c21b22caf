"""SQL and option differences of MariaDB 10.5+/11.x and MySQL 8.0/8.4 (pure: strings in, strings out).

One :class:`Dialect` per server version, built with :func:`dialect_for`: a facade over small
classes, one per concern, each a :class:`~mysqlops.sql.series.Series` of the same version:
``replica`` (:mod:`.replica`), ``binlog`` (:mod:`.binlog`), ``dump`` (:mod:`.dump`),
``accounts`` (:mod:`.accounts`) and ``requirements`` (:mod:`.requirements`); what is the
same on both flavors is in :mod:`.catalog`. Every method returns SQL text (or argv options) and never talks to a
server; the adapters run what these modules write. MySQL and MariaDB differences live here
and nowhere else.

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
  10.11.19): :meth:`DumpSql.parse_dump_coordinates` must see the dump's head AND tail.
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

from mysqlops.model import ServerVersion
from mysqlops.sql.accounts import AccountSql
from mysqlops.sql.binlog import BINLOG_HEADER_EVENTS, BinlogSql
from mysqlops.sql.dump import DumpSql
from mysqlops.sql.replica import ReplicaSql
from mysqlops.sql.requirements import Requirements
from mysqlops.sql.series import Series

__all__ = ["BINLOG_HEADER_EVENTS", "Dialect", "dialect_for"]


class Dialect(Series):
    """SQL and tool options for one server version, by concern. Build it with :func:`dialect_for`."""

    def __init__(self, version: ServerVersion) -> None:
        super().__init__(version)  # refuses unsupported versions
        self.replica = ReplicaSql(version)
        self.binlog = BinlogSql(version)
        self.dump = DumpSql(version)
        self.accounts = AccountSql(version)
        self.requirements = Requirements(version)


def dialect_for(version: ServerVersion) -> Dialect:
    """The dialect of ``version`` (ConfigError for MariaDB < 10.5.2 or MySQL < 8.0)."""
    return Dialect(version)
