"""Client programs that match the server (pure parts): what a client's ``--version`` says,
when a client does not fit a server, and which build a restore test's scratch server is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mysqlops.errors import ConfigError
from mysqlops.manifest import BackupManifest
from mysqlops.model import BackupKind, BackupMethod, Flavor, ServerVersion
from mysqlops.restore.verify import scratch_build_name
from mysqlops.tools.client import client_mismatch, parse_client_version

MARIADB_1011 = ServerVersion(Flavor.MARIADB, 10, 11, 19)
MARIADB_118 = ServerVersion(Flavor.MARIADB, 11, 8, 9)
MYSQL_97 = ServerVersion(Flavor.MYSQL, 9, 7, 4)

# what each build's tools print (captured from the three builds on this machine)
VERSIONS = [
    (
        "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)",
        "/usr/bin/mariadb-dump",
        Flavor.MARIADB,
        MARIADB_1011,
    ),
    (
        "/c/usr/bin/mariadb-dump from 11.8.9-MariaDB, client 10.20 for debian-linux-gnu (x86_64)",
        "/c/usr/bin/mariadb-dump",
        Flavor.MARIADB,
        MARIADB_118,
    ),
    ("mysqldump  Ver 9.7.4-2 for Linux on x86_64 ((Debian))", "/c/usr/bin/mysqldump", Flavor.MYSQL, MYSQL_97),
    (
        "/c/usr/bin/mysqlbinlog  Ver 9.7.4-2 for Linux on x86_64 ((Debian))",
        "/c/mysqlbinlog",
        Flavor.MYSQL,
        MYSQL_97,
    ),
    # MariaDB 10.11's binlog tool prints no server version; Debian's mysqlbinlog is a link to it
    (
        "/usr/bin/mysqlbinlog Ver 3.5 for debian-linux-gnu at x86_64",
        "/usr/bin/mariadb-binlog",
        Flavor.MARIADB,
        None,
    ),
]


@pytest.mark.parametrize("text,program,flavor,version", VERSIONS)
def test_parse_client_version(text: str, program: str, flavor: Flavor, version: ServerVersion | None) -> None:
    assert parse_client_version(text, program) == (flavor, version)


def test_mariadb_dump_against_mysql_is_refused_with_the_fix() -> None:
    """Issue 17 item 6: MariaDB's mysqldump first on PATH against MySQL failed late with
    `unknown variable 'source-data=2'`; pre-flight names it and what to install."""
    problem, warning = client_mismatch(
        "dump",
        "/usr/bin/mariadb-dump",
        "mysqldump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)",
        MYSQL_97,
        "FIX-TEXT",
    )
    assert warning is None
    assert problem is not None
    assert "MariaDB 10.11.19" in problem and "MySQL 9.7.4" in problem and "FIX-TEXT" in problem


def test_client_versions_against_servers() -> None:
    mysql_dump = "mysqldump  Ver 9.7.4-2 for Linux on x86_64 ((Debian))"
    old_mysql = "mysqldump  Ver 8.0.40 for Linux on x86_64"
    assert client_mismatch("dump", "/x/mysqldump", mysql_dump, MYSQL_97, "") == (None, None)
    problem, _ = client_mismatch("dump", "/x/mysqldump", old_mysql, MYSQL_97, "")
    assert problem and "older than the server" in problem
    # a MySQL client against MariaDB
    problem, _ = client_mismatch("dump", "/x/mysqldump", mysql_dump, MARIADB_1011, "")
    assert problem and "MySQL" in problem
    # an older MariaDB client works against a newer MariaDB: a warning, not a refusal
    old_maria = "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)"
    problem, warning = client_mismatch("dump", "/usr/bin/mariadb-dump", old_maria, MARIADB_118, "")
    assert problem is None and warning and "older than the server" in warning
    # a newer client is fine
    assert client_mismatch(
        "dump", "/usr/bin/mariadb-dump", old_maria, ServerVersion(Flavor.MARIADB, 10, 6, 1), ""
    ) == (
        None,
        None,
    )


def _manifest(flavor: str, version: str) -> BackupManifest:
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    return BackupManifest("20261130T100000Z-aaaaaa", "db1", "local", BackupKind.FULL, BackupMethod.LOGICAL,
                          flavor, version, ("shop",), (), now, now, "zstd-3")  # fmt: skip


def test_scratch_build_is_the_backups_own_or_a_newer_series() -> None:
    assert scratch_build_name(_manifest("mysql", "9.7.4")) == "mysql-9.7"
    assert scratch_build_name(_manifest("mariadb", "10.11.19")) == "mariadb-10.11"
    assert scratch_build_name(_manifest("mariadb", "10.11.19"), "mariadb-11.8") == "mariadb-11.8"
    for bad in ("mysql-9.7", "mariadb-10.6", "maria-11"):
        with pytest.raises(ConfigError) as info:
            scratch_build_name(_manifest("mariadb", "10.11.19"), bad)
        assert bad in str(info.value)
