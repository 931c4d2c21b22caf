"""Argv builders for the MySQL/MariaDB client tools: commands are data (no I/O here).

Credentials are never part of an argv: :func:`client_option_file` renders them for the
process adapter, which passes the file as ``--defaults-extra-file`` (the first option).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mysqlops.model import Flavor, ServerSpec, ServerVersion


@dataclass(frozen=True)
class ClientTools:
    """Names of the client programs of a flavor (resolved on PATH by the process adapter)."""

    mysql: str
    dump: str
    binlog: str
    admin: str
    backup: str
    stream: str  # mbstream / xbstream

    @classmethod
    def for_flavor(cls, flavor: Flavor) -> ClientTools:
        if flavor is Flavor.MARIADB:
            return cls(
                "mariadb", "mariadb-dump", "mariadb-binlog", "mariadb-admin", "mariabackup", "mbstream"
            )
        return cls("mysql", "mysqldump", "mysqlbinlog", "mysqladmin", "xtrabackup", "xbstream")


Program = str | Sequence[str]
"""A client program: a name or path, or a server build's argv prefix
(``ServerBuild.client_argv("dump")``: the loader, its options, then the program)."""


def program_words(program: Program) -> list[str]:
    """The argv words that run ``program`` (one word, or a build's loader prefix)."""
    words = [program] if isinstance(program, str) else list(program)
    if not words or not all(words):
        raise ValueError(f"empty client program {program!r}")
    return words


def _option_value(value: str) -> str:
    """Quote a value for a MySQL option file (double quotes; escape backslash and quote)."""
    if any(c in value for c in "\n\r\x00"):
        raise ValueError("option values cannot contain newlines or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_option_file(spec: ServerSpec, *, groups: Sequence[str] = ("client",)) -> str:
    """The ``[client]`` option file holding host/port/socket/user/password/TLS of ``spec``."""
    lines = [f"user={_option_value(spec.user)}"]
    if spec.password is not None:
        lines.append(f"password={_option_value(spec.password)}")
    if spec.socket:
        lines.append(f"socket={_option_value(spec.socket)}")
    else:
        lines.append(f"host={_option_value(spec.host)}")
        lines.append(f"port={int(spec.port)}")
        lines.append("protocol=TCP")
    if spec.tls:
        if spec.tls.ca:
            lines.append(f"ssl-ca={_option_value(spec.tls.ca)}")
        if spec.tls.cert:
            lines.append(f"ssl-cert={_option_value(spec.tls.cert)}")
        if spec.tls.key:
            lines.append(f"ssl-key={_option_value(spec.tls.key)}")
        lines.append("ssl=1")
        if spec.tls.verify_cert and spec.tls.ca:
            lines.append("ssl-verify-server-cert")
    body = "\n".join(lines) + "\n"
    return "".join(f"[{group}]\n{body}" for group in groups)


@dataclass(frozen=True)
class DumpOptions:
    """What a logical dump contains. Defaults are the consistent, complete set."""

    single_transaction: bool = True
    quick: bool = True
    routines: bool = True
    triggers: bool = True
    events: bool = True
    hex_blob: bool = True
    position_options: tuple[str, ...] = ()  # from the dialect: --master-data=2 --gtid / --source-data=2
    extra: tuple[str, ...] = ()


def dump_argv(program: Program, database: str, options: DumpOptions = DumpOptions()) -> tuple[str, ...]:
    """``mariadb-dump``/``mysqldump`` of one database to stdout.

    ``--databases`` makes the dump carry ``CREATE DATABASE``/``USE``; the database name is one
    argv element, so no quoting problem exists whatever characters it holds.
    """
    argv: list[str] = program_words(program)
    if options.single_transaction:
        argv.append("--single-transaction")
    if options.quick:
        argv.append("--quick")
    for flag, on in (
        ("--routines", options.routines),
        ("--triggers", options.triggers),
        ("--events", options.events),
        ("--hex-blob", options.hex_blob),
    ):
        if on:
            argv.append(flag)
    argv += [
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1G",
        *options.position_options,
        *options.extra,
        "--databases",
        "--",
        database,
    ]
    return tuple(argv)


def table_data_dump_argv(
    program: Program, database: str, tables: Sequence[str], options: DumpOptions = DumpOptions()
) -> tuple[str, ...]:
    """The rows of some tables only, as :func:`dump_argv` with ``options`` writes them
    (``--no-create-info --skip-triggers``, no routines or events: their ``Dumping data``
    sections, header and footer), for per-table re-dumps. No ``--databases``: the names that
    follow are a database and its tables, each one argv element."""
    whole = dump_argv(program, database, replace(options, routines=False, events=False, triggers=False))
    head = list(whole[: whole.index("--databases")])
    return tuple([*head, "--no-create-info", "--skip-triggers", "--", database, *tables])


def mysql_argv(
    program: Program, database: str | None = None, *, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """The ``mysql``/``mariadb`` client reading SQL from stdin (binary-safe, stops on error).

    MariaDB's client prints a failed statement to stderr (an INSERT of a dump: rows of the
    table); ``--skip-print-query-on-error`` keeps row data out of error messages."""
    words = program_words(program)
    argv = [*words, "--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--batch"]
    if os.path.basename(words[-1]).startswith("mariadb"):
        argv.append("--skip-print-query-on-error")
    argv += extra
    if database is not None:
        argv += ["--database", database]
    return tuple(argv)


# --------------------------------------------------------------------------- client identity
_MARIADB_VERSION = re.compile(r"(?:Distrib|from)\s+(\d+)\.(\d+)\.(\d+)[^\s,]*-MariaDB", re.IGNORECASE)
_VER_TRIPLE = re.compile(r"\bVer\s+(\d+)\.(\d+)\.(\d+)")


def parse_client_version(text: str, program: str = "") -> tuple[Flavor | None, ServerVersion | None]:
    """Flavor and server version of a client tool from its ``--version`` text.

    ``mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, ...`` and ``mariadb-dump from
    11.8.9-MariaDB, client 10.20 ...`` -> MariaDB 10.11.19 / 11.8.9; ``mysqldump  Ver 9.7.4-2 for
    Linux ...`` -> MySQL 9.7.4. ``mariadb-binlog Ver 3.5 for debian-linux-gnu`` (10.11 prints no
    server version) -> MariaDB, version unknown: the program's real name (``program``, a path
    with symlinks resolved; Debian's ``mysqlbinlog`` is a link to ``mariadb-binlog``) tells the
    flavor. (None, None) when nothing is recognisable."""
    m = _MARIADB_VERSION.search(text)
    if m:
        return Flavor.MARIADB, ServerVersion(
            Flavor.MARIADB, int(m.group(1)), int(m.group(2)), int(m.group(3))
        )
    base = os.path.basename(program)
    if "mariadb" in text.lower() or base.startswith("maria"):
        return Flavor.MARIADB, None
    m = _VER_TRIPLE.search(text)
    if m:
        return Flavor.MYSQL, ServerVersion(Flavor.MYSQL, int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return None, None


def client_mismatch(
    role: str, program: str, version_text: str, server: ServerVersion, fix: str
) -> tuple[str | None, str | None]:
    """(problem, warning) of using the client ``program`` (``--version`` printed
    ``version_text``) against ``server``. A client of the other flavor is a problem (MariaDB's
    mysqldump against MySQL fails late with ``unknown variable 'source-data=2'``), and so is a
    MySQL client of an older series than the server; an older MariaDB client is a warning.
    ``fix`` says what to install or fetch."""
    flavor, version = parse_client_version(version_text, program)
    server_name = "MariaDB" if server.flavor is Flavor.MARIADB else "MySQL"
    if flavor is None:
        return (
            None,
            f"cannot tell the flavor of the {role} client {program} from {version_text.strip()[:120]!r}",
        )
    if flavor is not server.flavor:
        kind = str(version) if version else ("MariaDB" if flavor is Flavor.MARIADB else "MySQL") + "'s"
        return (
            f"the {role} client {program} is {kind}, the server is {server}: a {server_name} server "
            f"needs {server_name}'s own {role} client. {fix}"
        ), None
    if version is not None and (version.major, version.minor) < (server.major, server.minor):
        text = f"the {role} client {program} is {version}, older than the server ({server}). {fix}"
        return (text, None) if flavor is Flavor.MYSQL else (None, text)
    return None, None
