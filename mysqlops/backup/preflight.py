"""Backup pre-flight: what to dump, and every problem before anything is written."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops.adapters import mysql as db
from mysqlops.adapters import process
from mysqlops.adapters.storage import Store
from mysqlops.errors import (
    ConfigError,
    ConnectionProblem,
    MysqlopsError,
    PreflightFailed,
    StorageError,
)
from mysqlops.model import (
    Location,
    ObjectCounts,
    ServerSpec,
    ServerVersion,
)
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.dialect import Dialect, dialect_for
from mysqlops.tools.client import ClientTools
from mysqlops.units import human_bytes


# --------------------------------------------------------------------------- pre-flight
@dataclass(frozen=True)
class Plan:
    """What pre-flight found: the backup that will be made."""

    server: ServerSpec
    version: ServerVersion
    databases: tuple[str, ...]
    estimated_bytes: dict[str, int]
    counts: dict[str, ObjectCounts]
    lossy_columns: dict[str, tuple[str, ...]]
    position_options: tuple[str, ...]
    warnings: tuple[str, ...]
    tool: str
    tool_version: str
    identity: dict[str, Any] = field(default_factory=dict)
    non_transactional: dict[str, dict[str, str]] = field(default_factory=dict)  # database -> table -> engine

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.version)


def select_databases(
    available: Sequence[str], databases: Sequence[str] | None, include: Sequence[str], exclude: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Explicit names (must exist), else all non-system, filtered by glob patterns.

    Returns (selected, problems). An include pattern that matches no database, and a selection
    that leaves nothing to back up, are problems: a "successful" backup of nothing is a trap.
    (A server without any user database is backed up, with a warning from pre-flight.)
    """
    problems: list[str] = []
    listing = ", ".join(available) or "none"
    if databases:
        missing = [d for d in databases if d not in available]
        problems += [f"database {d!r} does not exist on the server (available: {listing})" for d in missing]
        chosen = [d for d in databases if d in available]
    else:
        chosen = list(available)
    if include:
        for pattern in include:
            if not any(fnmatch.fnmatchcase(d, pattern) for d in chosen):
                problems.append(
                    f"include pattern {pattern!r} matches no database (databases on the server: {listing}); "
                    "fix the pattern (case-sensitive glob: * ? [..]) or remove it"
                )
        chosen = [d for d in chosen if any(fnmatch.fnmatchcase(d, p) for p in include)]
    if exclude:
        chosen = [d for d in chosen if not any(fnmatch.fnmatchcase(d, p) for p in exclude)]
    if not chosen and not problems and available:
        problems.append(
            f"nothing to back up: the selection (databases={list(databases or [])}, include={list(include)}, "
            f"exclude={list(exclude)}) leaves no database of: {listing}"
        )
    return chosen, problems


MAX_PARALLEL = 64


def check_backup_parameters(
    locations: Sequence[Location],
    *,
    databases: Sequence[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    parallel: int = 1,
    staging_dir: str | None = None,
    progress_interval: float = 5.0,
    tags: Sequence[str] = (),
) -> None:
    """Every backup parameter that can be judged without the server, judged before anything
    connects to it: a wrong parameter is a :class:`ConfigError` naming it and the fix, never a
    connection error or a half-made backup."""
    problems: list[str] = []
    if not locations:
        problems.append("no backup location given: pass at least one BackupLocation block name")
    elif not all(isinstance(loc, Location) for loc in locations):
        problems.append("locations must be Location objects (BackupLocation blocks' .to_location())")
    else:
        names = [loc.name for loc in locations]
        if len(set(names)) != len(names):
            problems.append(f"location names must be distinct, got {names}")
    for label, value in (
        ("databases", databases),
        ("include", include),
        ("exclude", exclude),
        ("tags", tags),
    ):
        if value is None:
            continue
        if isinstance(value, str | bytes):
            problems.append(f"{label} must be a list of names, got the string {value!r}: write [{value!r}]")
        elif not all(isinstance(v, str) and v.strip() for v in value):
            problems.append(f"{label} must hold non-empty strings, got {list(value)!r}")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= MAX_PARALLEL:
        problems.append(f"parallel must be a whole number from 1 to {MAX_PARALLEL}, got {parallel!r}")
    if staging_dir is not None:
        if not isinstance(staging_dir, str) or not os.path.isabs(staging_dir):
            problems.append(
                f"staging_dir {staging_dir!r} is not an absolute path: it would depend on the current "
                "directory of the process that runs the backup; give e.g. /var/tmp/mysqlops"
            )
        elif os.path.exists(staging_dir) and not os.path.isdir(staging_dir):
            problems.append(f"staging_dir {staging_dir!r} exists and is not a directory")
    if (
        isinstance(progress_interval, bool)
        or not isinstance(progress_interval, int | float)
        or progress_interval < 0
    ):
        problems.append(f"progress_interval must be a number of seconds >= 0, got {progress_interval!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def _tool_version(program: str) -> str:
    try:
        out = process.run([program, "--version"], timeout=30).stdout.decode("utf-8", "replace").strip()
    except MysqlopsError:
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def preflight(
    spec: ServerSpec,
    locations: Sequence[Location],
    *,
    databases: Sequence[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    staging_dir: str | None = None,
    from_replica: bool = False,
) -> Plan:
    """Check everything before anything is written; raise :class:`PreflightFailed` listing
    every problem with its fix. Nothing is dumped when this fails."""
    problems: list[str] = []
    warnings: list[str] = []
    check_backup_parameters(
        locations, databases=databases, include=include, exclude=exclude, staging_dir=staging_dir
    )
    try:
        conn = db.connect(spec)
    except ConnectionProblem as exc:
        raise PreflightFailed([str(exc)]) from None
    with contextlib.closing(conn):
        version = db.server_version(conn)
        identity = db.server_identity(conn)
        dialect = dialect_for(version)
        available = db.user_databases(conn, dialect.dump.system_schemas())
        chosen, selection_problems = select_databases(available, databases, include, exclude)
        problems += selection_problems
        grants = db.current_grants(conn)
        problems += dialect.accounts.missing_backup_privileges(grants, chosen, binlogs=False)
        variables = db.global_variables(conn, ["log_bin", "server_id", "gtid_mode"])
        position_options = dialect.dump.dump_position_options()
        if variables.get("log_bin", "OFF").upper() not in ("ON", "1"):
            position_options = ()
            warnings.append(
                "binary logging is off on this server: the backup records no binlog coordinates, "
                "so point-in-time recovery from it is impossible (add log_bin to [mysqld])"
            )
        if from_replica:
            status = db.replica_status(conn, dialect)
            if status is None:
                problems.append(
                    f"from_replica=True but {spec.name} is not a replica (SHOW REPLICA STATUS is empty); "
                    "point the backup at a replica or set from_replica=False"
                )
        sizes = db.database_sizes(conn, chosen, dialect.is_mariadb)
        counts = {d: db.object_counts(conn, d) for d in chosen}
        lossy = {d: tuple(db.float_columns(conn, d)) for d in chosen}
        outside = non_transactional_tables(conn, chosen)
    if outside:
        named = [f"{d}.{t} ({engine})" for d, tables in outside.items() for t, engine in tables.items()]
        warnings.append(
            f"{len(named)} table(s) use a non-transactional engine and are outside the consistent "
            f"snapshot: {', '.join(named[:20])}{' ...' if len(named) > 20 else ''}. Writes to them while the "
            "dump runs are not consistent with the rest of the backup (nor with its binlog coordinates); "
            "convert them to InnoDB (ALTER TABLE ... ENGINE=InnoDB) or back up from a frozen replica"
            + (" (this backup is)" if from_replica else "")
        )
    if not chosen and not problems:
        warnings.append(f"{spec.name} has no user database: this backup holds no data")
    for database, cols in lossy.items():
        if cols:
            warnings.append(
                f"database {database!r} has FLOAT columns ({', '.join(cols[:5])}{'...' if len(cols) > 5 else ''}): "
                "a logical dump writes FLOAT with 6 significant digits, so these round-trip approximately; "
                "use DOUBLE or DECIMAL for exact values, or physical backups"
            )
    for loc in locations:
        try:
            warnings += Store(loc, retries=2).check_writable()
        except StorageError as exc:
            problems.append(str(exc))
    staging = staging_dir or tempfile.gettempdir()
    free = _free_bytes(staging)
    needed = int(sum(sizes.values()) * 0.6) + 64 * 1024 * 1024
    if free is not None and free < needed:
        problems.append(
            f"staging directory {staging} has {human_bytes(free)} free, the backup needs about "
            f"{human_bytes(needed)}: free space or set a staging_dir on a larger disk"
        )
    tools = ClientTools.for_flavor(version.flavor)
    try:
        program = process.require_program(
            tools.dump,
            "mysqldump",
            package_hint="mariadb-client" if version.flavor.value == "mariadb" else "mysql-client",
        )
    except MysqlopsError as exc:
        problems.append(str(exc))
        program = tools.dump
    if problems:
        raise PreflightFailed(problems)
    return Plan(
        server=spec,
        version=version,
        databases=tuple(chosen),
        estimated_bytes=sizes,
        counts=counts,
        lossy_columns=lossy,
        position_options=position_options,
        warnings=tuple(warnings),
        tool=program,
        tool_version=_tool_version(program),
        identity=identity,
        non_transactional=outside,
    )


# engines whose tables a --single-transaction dump reads in its consistent snapshot; BLACKHOLE
# holds no data. Everything else (MyISAM, Aria, MEMORY, CSV, ARCHIVE, MERGE, CONNECT, FEDERATED,
# SPIDER, ...) is read at whatever moment the dump reaches it.
TRANSACTIONAL_ENGINES = ("InnoDB", "RocksDB", "TokuDB", "BLACKHOLE")


def non_transactional_tables(conn: db.Connection, databases: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{database: {table: engine}}`` of base tables outside a ``--single-transaction`` snapshot."""
    if not databases:
        return {}
    rows = db.query(
        conn,
        sqlcat.tables_not_in_engines(len(databases), len(TRANSACTIONAL_ENGINES)),
        [*databases, *TRANSACTIONAL_ENGINES],
    )
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(str(row["d"]), {})[str(row["t"])] = str(row["e"])
    return out


def _first(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return rows[0] if rows else None


def _free_bytes(path: str) -> int | None:
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        return shutil.disk_usage(probe or "/").free
    except OSError:
        return None
