"""Reading what the checks judge: servers (privileges, binary log, replication), locations
and local disks; :func:`run_checks` reads everything and returns the verdicts."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlparse

from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.checks.verdicts import (
    CheckPolicy,
    CheckResult,
    Status,
    evaluate_binlog,
    evaluate_disk,
    evaluate_location,
    evaluate_replica,
)
from mysqlops.errors import ConfigError, ConnectionProblem, MysqlopsError
from mysqlops.model import Location, ServerSpec
from mysqlops.sql.dialect import dialect_for


# ------------------------------------------------------------------------------ reading
def local_path(location: Location) -> str | None:
    """The filesystem path of a ``file://`` (or bare path) location; None for remote ones."""
    if location.protocol not in ("file", "local"):
        return None
    if "://" not in location.url:
        return location.url
    return unquote(urlparse(location.url).path) or "/"


def _existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def disk_check(location: Location, scan: catalog.LocationScan, policy: CheckPolicy) -> CheckResult | None:
    path = local_path(location)
    if path is None:
        return None
    where = _existing_parent(path)
    try:
        usage = shutil.disk_usage(where)
    except OSError as exc:
        return CheckResult("", location.name, "free disk", Status.FAILED, f"cannot stat {where}: {exc}")
    newest: dict[str, int] = {}
    for m in sorted(scan.backups, key=lambda m: m.finished_at):
        newest[m.server] = m.stored_bytes
    return evaluate_disk(location.name, where, usage.free, usage.total, sum(newest.values()), policy)


@dataclass
class ServerFacts:
    """What was read from one server (for the location checks)."""

    name: str
    reachable: bool = False
    binlog_on: bool | None = None
    results: list[CheckResult] = field(default_factory=list)


def server_checks(spec: ServerSpec, policy: CheckPolicy) -> ServerFacts:
    facts = ServerFacts(spec.name)
    name = spec.name
    try:
        conn = db.connect(spec, connect_timeout=10, read_timeout=60)
    except ConnectionProblem as exc:
        facts.results.append(CheckResult(name, "", "reachable", Status.FAILED, str(exc)))
        for check in ("privileges", "binlog", "binlog retention", "replication"):
            facts.results.append(CheckResult(name, "", check, Status.SKIPPED, "server unreachable"))
        return facts
    with contextlib.closing(conn):
        try:
            version = db.server_version(conn)
            dialect = dialect_for(version)
            facts.reachable = True
            facts.results.append(
                CheckResult(name, "", "reachable", Status.OK, f"{version} at {spec.endpoint} as {spec.user}")
            )
            variables = db.global_variables(
                conn,
                ["log_bin", "binlog_format", "expire_logs_days", "binlog_expire_logs_seconds", "server_id"],
            )
            facts.binlog_on = variables.get("log_bin", "").strip().upper() in ("ON", "1")
            facts.results.append(
                _privileges(conn, dialect, name, policy.binlog_privileges and facts.binlog_on)
            )
            facts.results.extend(evaluate_binlog(name, variables, policy.max_backup_age))
            try:
                status = db.replica_status(conn, dialect)
            except MysqlopsError as exc:
                facts.results.append(CheckResult(name, "", "replication", Status.FAILED, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a missing privilege must not stop the other checks
                facts.results.append(
                    CheckResult(
                        name,
                        "",
                        "replication",
                        Status.WARNING,
                        f"cannot read the replica status ({_first_line(exc)}); "
                        "grant SLAVE MONITOR (MariaDB) / REPLICATION CLIENT (MySQL) to check it",
                    )
                )
            else:
                facts.results.append(evaluate_replica(name, status, policy.max_replica_lag_seconds))
        except Exception as exc:  # noqa: BLE001 - report, never crash the whole check
            facts.results.append(CheckResult(name, "", "queries", Status.FAILED, _first_line(exc)))
    return facts


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _privileges(conn: db.Connection, dialect: Any, server: str, binlogs: bool) -> CheckResult:
    grants = db.current_grants(conn)
    databases = db.user_databases(conn, dialect.dump.system_schemas())
    missing = dialect.accounts.missing_backup_privileges(grants, databases, binlogs=binlogs)
    if missing:
        return CheckResult(server, "", "privileges", Status.FAILED, " | ".join(missing))
    scope = "backup and binlog archiving" if binlogs else "backup"
    return CheckResult(server, "", "privileges", Status.OK, f"{scope} of {len(databases)} database(s)")


def run_checks(
    specs: Sequence[ServerSpec],
    locations: Sequence[Location],
    policy: CheckPolicy | None = None,
    now: datetime | None = None,
) -> list[CheckResult]:
    """Every check for every server and location; never raises for a failing check."""
    policy = policy or CheckPolicy()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if now.tzinfo is None:
        raise ConfigError("now must be timezone-aware")
    results: list[CheckResult] = []
    binlog_on: dict[str, bool | None] = {}
    for spec in specs:
        facts = server_checks(spec, policy)
        binlog_on[spec.name] = facts.binlog_on
        results.extend(facts.results)
    names = [s.name for s in specs]
    for location in locations:
        scan = catalog.scan_location(location)
        results.extend(evaluate_location(scan, names, policy, now, binlog_on))
        disk = disk_check(location, scan, policy)
        if disk is not None:
            results.append(disk)
    return results
