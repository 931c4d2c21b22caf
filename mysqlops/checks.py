"""Health checks of a backup setup, like ``barman check``: one verdict per server, location
and check, each with a message that says what is wrong and how to fix it.

Per server: reachable, backup privileges, binary log on, binary log retention long enough for
the backup interval, replication healthy (replicas only). Per server and location: newest
complete backup young enough, newest binlog archive young enough, last restore test passed
and recent (before the first archive or test is due, their absence is a warning). Per local
location: free disk space. Per scheduled deployment (:func:`evaluate_schedule`, facts read
from the Prefect API by the flow layer): an upcoming run exists and the run due last was
created ahead by the scheduler.

The evaluators (``evaluate_*``) are pure: they take what was read and return verdicts, so
they are unit-tested without servers. :func:`run_checks` does the reading.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlparse

from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.errors import ConfigError, ConnectionProblem, MysqlopsError
from mysqlops.model import Location, ServerSpec
from mysqlops.sql.dialect import dialect_for
from mysqlops.sql.status import ReplicaStatus
from mysqlops.units import human_age, human_bytes

GIB = 1024**3


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One verdict. ``location`` is empty for server-level checks, ``server`` for disk checks."""

    server: str
    location: str
    check: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    def row(self) -> dict[str, str]:
        doc = asdict(self)
        doc["status"] = self.status.value
        return doc


@dataclass(frozen=True)
class CheckPolicy:
    """Thresholds. ``None`` for an age switches that check off (reported as skipped)."""

    max_backup_age: timedelta = timedelta(hours=26)
    max_binlog_archive_age: timedelta | None = timedelta(hours=1)
    max_restore_test_age: timedelta | None = timedelta(days=8)
    max_replica_lag_seconds: int = 300
    min_free_bytes: int = 5 * GIB
    free_space_factor: float = 1.5  # free space must hold this many times the newest backups
    binlog_privileges: bool = True  # also check what binlog archiving needs

    def __post_init__(self) -> None:
        if self.max_backup_age <= timedelta(0):
            raise ConfigError("max_backup_age must be positive, e.g. 26 hours for nightly backups")
        for name in ("max_binlog_archive_age", "max_restore_test_age"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ConfigError(f"{name} must be positive or None (to skip that check)")
        if self.min_free_bytes < 0 or self.free_space_factor < 0:
            raise ConfigError("min_free_bytes and free_space_factor must not be negative")


def _age(now: datetime, then: datetime) -> timedelta:
    return now - then.astimezone(UTC)


# ------------------------------------------------------------------------ pure evaluators
def _int(value: Any) -> int | None:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return None


def binlog_retention_seconds(variables: Mapping[str, Any]) -> int | None:
    """Seconds the server keeps binary logs; 0 = never purged; None = unknown.

    ``binlog_expire_logs_seconds`` (MySQL 8, MariaDB 10.6+) wins when non-zero, else
    ``expire_logs_days`` (MariaDB may show fractions), else 0 (no automatic purge).
    """
    v = {str(k).lower(): val for k, val in variables.items()}
    seconds = _int(v.get("binlog_expire_logs_seconds"))
    if seconds:
        return seconds
    days_text = v.get("expire_logs_days")
    if days_text is not None:
        try:
            days = float(str(days_text))
        except ValueError:
            days = 0.0
        if days > 0:
            return int(days * 86400)
    if seconds is None and days_text is None:
        return None
    return 0


def evaluate_binlog(server: str, variables: Mapping[str, Any], needed: timedelta) -> list[CheckResult]:
    """Binary log on, and kept at least ``needed`` (the backup interval)."""
    v = {str(k).lower(): str(val) for k, val in variables.items()}
    log_bin = v.get("log_bin", "").strip().upper()
    if log_bin not in ("ON", "1"):
        return [
            CheckResult(
                server,
                "",
                "binlog",
                Status.FAILED,
                "binary log is off: no point-in-time recovery and no binlog archive; "
                "add to [mysqld]: log_bin = mysql-bin and binlog_format = ROW, then restart",
            ),
            CheckResult(server, "", "binlog retention", Status.SKIPPED, "binary log is off"),
        ]
    fmt = v.get("binlog_format", "").strip().upper()
    out = [
        CheckResult(
            server,
            "",
            "binlog",
            Status.OK if fmt in ("", "ROW") else Status.WARNING,
            f"on, format {fmt or 'unknown'}"
            + (
                ""
                if fmt in ("", "ROW")
                else ": point-in-time recovery is exact only with binlog_format = ROW"
            ),
        )
    ]
    kept = binlog_retention_seconds(v)
    need = int(needed.total_seconds())
    if kept is None:
        out.append(
            CheckResult(server, "", "binlog retention", Status.WARNING, "cannot read expire_logs_days")
        )
    elif kept == 0:
        out.append(
            CheckResult(
                server,
                "",
                "binlog retention",
                Status.OK,
                "binary logs are never purged automatically (watch the server's disk; "
                "archived binlogs can be purged after archiving)",
            )
        )
    elif kept < need:
        out.append(
            CheckResult(
                server,
                "",
                "binlog retention",
                Status.FAILED,
                f"binary logs are kept {human_age(timedelta(seconds=kept))}, less than the backup "
                f"interval {human_age(needed)}: a late archive run loses binlogs for good; set "
                f"SET PERSIST binlog_expire_logs_seconds = {need} (MySQL) or "
                f"[mysqld] expire_logs_days = {max(1, -(-need // 86400))} (MariaDB)",
            )
        )
    else:
        out.append(
            CheckResult(
                server,
                "",
                "binlog retention",
                Status.OK,
                f"kept {human_age(timedelta(seconds=kept))} (backup interval {human_age(needed)})",
            )
        )
    return out


def evaluate_replica(server: str, status: ReplicaStatus | None, max_lag_seconds: int) -> CheckResult:
    if status is None:
        return CheckResult(server, "", "replication", Status.SKIPPED, "not a replica")
    problems = status.problems(max_lag_seconds)
    if problems:
        return CheckResult(server, "", "replication", Status.FAILED, "; ".join(problems))
    return CheckResult(
        server,
        "",
        "replication",
        Status.OK,
        f"replicating from {status.source_host}:{status.source_port}, lag {status.seconds_behind}s",
    )


def evaluate_location(
    scan: catalog.LocationScan,
    servers: Sequence[str],
    policy: CheckPolicy,
    now: datetime,
    binlog_on: Mapping[str, bool | None] | None = None,
) -> list[CheckResult]:
    """Backup age, binlog archive age and restore tests of each server at one location."""
    name = scan.location.name
    out: list[CheckResult] = []
    if scan.errors:
        out.append(
            CheckResult(
                "",
                name,
                "location readable",
                Status.FAILED,
                f"{len(scan.errors)} problem(s): " + " | ".join(scan.errors[:3]),
            )
        )
    else:
        out.append(CheckResult("", name, "location readable", Status.OK, f"{scan.location.url}"))
    for server in servers:
        out.append(_backup_age(scan, server, policy, now))
        out.append(_binlog_age(scan, server, policy, now, (binlog_on or {}).get(server)))
        out.append(_restore_test(scan, server, policy, now))
    return out


def _backup_age(scan: catalog.LocationScan, server: str, policy: CheckPolicy, now: datetime) -> CheckResult:
    name = scan.location.name
    complete = [m for m in scan.backups if m.server == server and m.status.value == "complete"]
    if not complete:
        return CheckResult(
            server,
            name,
            "backup age",
            Status.FAILED,
            f"no complete backup of {server!r} at {name!r}: run the backup flow "
            f"(prefect deployment run 'backup/{server}')",
        )
    newest = max(complete, key=lambda m: m.finished_at)
    age = _age(now, newest.finished_at)
    ok = age <= policy.max_backup_age
    detail = f"newest {newest.backup_id}, {human_age(age)} old (limit {human_age(policy.max_backup_age)})"
    if not ok:
        detail += ": the backup schedule is not running or failing; look at the backup flow runs"
    return CheckResult(server, name, "backup age", Status.OK if ok else Status.FAILED, detail)


def _first_backup(scan: catalog.LocationScan, server: str) -> datetime | None:
    """When the oldest complete backup of ``server`` at this location finished (None: none)."""
    done = [m.finished_at for m in scan.backups if m.server == server and m.status.value == "complete"]
    return min(done) if done else None


def _binlog_age(
    scan: catalog.LocationScan, server: str, policy: CheckPolicy, now: datetime, binlog_on: bool | None
) -> CheckResult:
    name = scan.location.name
    if policy.max_binlog_archive_age is None:
        return CheckResult(server, name, "binlog archive age", Status.SKIPPED, "switched off")
    if binlog_on is False:
        return CheckResult(server, name, "binlog archive age", Status.SKIPPED, "binary log is off")
    archives = [b for b in scan.binlogs if b.server == server]
    if not archives:
        first = _first_backup(scan, server)
        limit = policy.max_binlog_archive_age
        if first is not None and _age(now, first) <= limit:
            # a fresh install: the first backup is younger than the archive interval allows
            return CheckResult(
                server,
                name,
                "binlog archive age",
                Status.WARNING,
                f"no binlog archived yet (first backup {human_age(_age(now, first))} ago; the first "
                f"archive is due within {human_age(limit)} of it): the archive-binlogs schedule "
                f"will archive them, or run it now (prefect deployment run 'archive-binlogs/{server}')",
            )
        return CheckResult(
            server,
            name,
            "binlog archive age",
            Status.FAILED,
            f"no archived binlog of {server!r} at {name!r}"
            + (f" although the first backup is {human_age(_age(now, first))} old" if first else "")
            + f": the archive-binlogs schedule is not running or failing; run it "
            f"(prefect deployment run 'archive-binlogs/{server}') and look at its runs",
        )
    newest = max(archives, key=lambda b: b.archived_at)
    age = _age(now, newest.archived_at)
    ok = age <= policy.max_binlog_archive_age
    detail = (
        f"newest {newest.file}, archived {human_age(age)} ago "
        f"(limit {human_age(policy.max_binlog_archive_age)})"
    )
    if not ok:
        detail += ": the archive-binlogs schedule is not running or failing"
    return CheckResult(server, name, "binlog archive age", Status.OK if ok else Status.FAILED, detail)


def _restore_test(scan: catalog.LocationScan, server: str, policy: CheckPolicy, now: datetime) -> CheckResult:
    name = scan.location.name
    if policy.max_restore_test_age is None:
        return CheckResult(server, name, "restore test", Status.SKIPPED, "switched off")
    certificates = [c for c in scan.certificates if c.server == server]
    if not certificates:
        first = _first_backup(scan, server)
        limit = policy.max_restore_test_age
        if first is not None and _age(now, first) <= limit:
            return CheckResult(
                server,
                name,
                "restore test",
                Status.WARNING,
                f"no restore test yet (first backup {human_age(_age(now, first))} ago; the first test "
                f"is due within {human_age(limit)} of it): a backup is not proven until restored; the "
                f"restore-test schedule will test it, or run it now "
                f"(prefect deployment run 'restore-test/{server}')",
            )
        return CheckResult(
            server,
            name,
            "restore test",
            Status.FAILED,
            f"no restore test of a backup of {server!r} at {name!r}: a backup is not proven "
            "until restored; run the restore-test flow",
        )
    newest = max(certificates, key=lambda c: c.tested_at)
    age = _age(now, newest.tested_at)
    if not newest.passed:
        failed = [f"{c.name}: {c.detail}" for c in newest.checks if not c.passed]
        return CheckResult(
            server,
            name,
            "restore test",
            Status.FAILED,
            f"last restore test of {newest.backup_id} ({human_age(age)} ago) FAILED: "
            + ("; ".join(failed[:3]) or "see its certificate"),
        )
    ok = age <= policy.max_restore_test_age
    detail = (
        f"last test of {newest.backup_id} passed {human_age(age)} ago "
        f"(limit {human_age(policy.max_restore_test_age)})"
    )
    if not ok:
        detail += ": the restore-test schedule is not running"
    return CheckResult(server, name, "restore test", Status.OK if ok else Status.FAILED, detail)


def evaluate_disk(
    location: str, path: str, free: int, total: int, newest_backup_bytes: int, policy: CheckPolicy
) -> CheckResult:
    """Free space must hold ``free_space_factor`` x the newest backups, and ``min_free_bytes``."""
    needed = max(policy.min_free_bytes, int(policy.free_space_factor * newest_backup_bytes))
    detail = (
        f"{human_bytes(free)} free of {human_bytes(total)} at {path} "
        f"(need {human_bytes(needed)}: {policy.free_space_factor:g} x newest backups "
        f"{human_bytes(newest_backup_bytes)}, at least {human_bytes(policy.min_free_bytes)})"
    )
    if free < needed:
        return CheckResult(
            "",
            location,
            "free disk",
            Status.FAILED,
            detail + ": the next backup may not fit; free space or apply retention",
        )
    return CheckResult("", location, "free disk", Status.OK, detail)


# ------------------------------------------------------------ the scheduler (pure verdicts)
SCHEDULER_FIX = (
    "Prefect's scheduler service is not creating runs: look at the Prefect server's log for "
    "errors of the scheduler service (prefect 3.8.8 with SQLAlchemy 2.1 logs \"Can't evaluate bulk "
    'DML statement": install the locked prefect 3.9.1 with `make setup`), make sure '
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED is not false, then restart `prefect server start`"
)


@dataclass(frozen=True)
class ScheduledRun:
    """A flow run of a deployment, as the schedule check needs it."""

    expected_start: datetime
    created: datetime
    state_type: str  # SCHEDULED, PENDING, RUNNING, COMPLETED, ...
    state_name: str  # Scheduled, Late, AwaitingConcurrencySlot, ...
    auto_scheduled: bool  # created by the scheduler service (not run_deployment / the UI)


@dataclass(frozen=True)
class ScheduleFacts:
    """What the Prefect API says about one deployment's schedules (read by the flow layer)."""

    deployment: str  # flow/name
    schedules: int  # schedules configured
    active: int  # active schedules (0 when the deployment or every schedule is paused)
    last_due: datetime | None  # newest fire time of an active schedule that had to have a run
    runs: Sequence[ScheduledRun]  # its runs at last_due and its upcoming runs
    work_queue: str = ""


def evaluate_schedule(
    facts: ScheduleFacts, now: datetime, late_after: timedelta = timedelta(minutes=5)
) -> CheckResult:
    """Is Prefect's scheduler alive for this deployment?

    An active schedule must have an upcoming scheduled run (the scheduler keeps runs ahead);
    the run due at ``last_due`` must exist and have been created by the scheduler before it was
    due; a due run that has not started after ``late_after`` means no worker serves its queue.
    """
    where = ("prefect", facts.deployment, "schedule")
    if facts.schedules == 0:
        return CheckResult(*where, Status.SKIPPED, "no schedule (runs on demand)")
    if facts.active == 0:
        return CheckResult(
            *where,
            Status.WARNING,
            f"every schedule is paused: nothing runs on its own; resume it "
            f"(prefect deployment schedule ls '{facts.deployment}', then "
            f"prefect deployment schedule resume '{facts.deployment}' <id>) or unpause the deployment",
        )
    upcoming = sorted(
        (
            r
            for r in facts.runs
            if r.state_type == "SCHEDULED" and r.auto_scheduled and r.expected_start > now
        ),
        key=lambda r: r.expected_start,
    )
    if not upcoming:
        return CheckResult(
            *where,
            Status.FAILED,
            f"{facts.active} active schedule(s) but no upcoming run: nothing will run. {SCHEDULER_FIX}",
        )
    nxt = upcoming[0]
    detail = (
        f"next run {nxt.expected_start.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z "
        f"(in {human_age(nxt.expected_start - now)}), {len(upcoming)} scheduled ahead"
    )
    if facts.last_due is None:
        return CheckResult(*where, Status.OK, detail + "; none due yet")
    due = facts.last_due
    ago = human_age(_age(now, due))
    matches = [
        r for r in facts.runs if abs((r.expected_start - due).total_seconds()) < 1 and r.auto_scheduled
    ]
    if not matches:
        return CheckResult(
            *where,
            Status.FAILED,
            f"no run was created for {due.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z (due {ago} ago): "
            f"the scheduler was not running then. {SCHEDULER_FIX}",
        )
    run = matches[0]
    if run.created > due:
        return CheckResult(
            *where,
            Status.WARNING,
            f"the run due {ago} ago was created {human_age(run.created - due)} after it was due: "
            "the scheduler was down or lagging (server overloaded?); " + detail,
        )
    if run.state_type == "SCHEDULED" and _age(now, due) > late_after:
        return CheckResult(
            *where,
            Status.WARNING,
            f"the run due {ago} ago has not started ({run.state_name}): no worker polls work queue "
            f"{facts.work_queue or '?'}, the queue or pool is paused, or its concurrency slot is taken "
            "(prefect worker start --pool <pool>; prefect work-queue ls); " + detail,
        )
    return CheckResult(
        *where,
        Status.OK,
        f"the run due {ago} ago was created {human_age(due - run.created)} ahead ({run.state_name}); "
        + detail,
    )


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
    grants = [str(next(iter(r.values()))) for r in db.query(conn, "SHOW GRANTS FOR CURRENT_USER()")]
    databases = db.user_databases(conn, dialect.system_schemas())
    missing = dialect.missing_backup_privileges(grants, databases, binlogs=binlogs)
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


def failures(results: Iterable[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.failed]


def summary(results: Sequence[CheckResult]) -> str:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
