"""Dump tool options per flavor and reading the coordinates a dump recorded."""

from __future__ import annotations

import re

from mysqlops.gtid import normalize_gtid
from mysqlops.sql.quoting import SYSTEM_SCHEMAS
from mysqlops.sql.series import Series

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


class DumpSql(Series):
    """mysqldump / mariadb-dump options and dump headers of one server version."""

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

    def system_schemas(self) -> frozenset[str]:
        """Schemas a backup never dumps (MariaDB has ``sys`` since 10.6; harmless before)."""
        return SYSTEM_SCHEMAS
