"""Database size estimates from the InnoDB tablespace files, per flavor (the table statistics
are ``sql.catalog.database_sizes``).

``information_schema.TABLES`` sizes are statistics: right after a bulk load they can be a
thousandth of the data (MySQL also caches them for ``information_schema_stats_expiry``, a day
by default). The tablespace views give the size of each ``.ibd`` file as the file system sees
it now: ``INNODB_SYS_TABLESPACES`` on MariaDB, ``INNODB_TABLESPACES`` on MySQL (both need the
PROCESS privilege; without it the statistics are all there is). Tablespace names are
``<database>/<table>`` in the server's file-name encoding (``my-db`` is ``my@002ddb``).
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"[A-Za-z0-9_]")


def tablespace_prefix(database: str) -> str | None:
    """The database part of its InnoDB tablespace names, or None when it is not plain ASCII
    (the server's encoding of other characters is not reproduced here: statistics are used)."""
    if not database.isascii():
        return None
    return "".join(c if _SAFE.fullmatch(c) else f"@{ord(c):04x}" for c in database)


def tablespace_sql(is_mariadb: bool, count: int) -> str:
    """Bytes of the tablespace files per database prefix (one ``%s`` per prefix)."""
    view = "INNODB_SYS_TABLESPACES" if is_mariadb else "INNODB_TABLESPACES"
    marks = ",".join(["%s"] * count)
    return (
        "SELECT SUBSTRING_INDEX(NAME, '/', 1) AS s, COALESCE(SUM(FILE_SIZE), 0) AS b "
        f"FROM information_schema.{view} WHERE SUBSTRING_INDEX(NAME, '/', 1) IN ({marks}) "
        "GROUP BY SUBSTRING_INDEX(NAME, '/', 1)"
    )
