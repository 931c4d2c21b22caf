"""Verdicts of the health checks: what each check says and the pure evaluators that say it
(they take what was read and return verdicts, so they are unit-tested without servers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from mysqlops import catalog
from mysqlops.errors import ConfigError
from mysqlops.sql import binlog as binlog_sql
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
                + binlog_sql.retention_advice(need),
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
    return _within(
        (server, name, "backup age"),
        age,
        policy.max_backup_age,
        f"newest {newest.backup_id}, {human_age(age)} old",
        "the backup schedule is not running or failing; look at the backup flow runs",
    )


def _first_backup(scan: catalog.LocationScan, server: str) -> datetime | None:
    """When the oldest complete backup of ``server`` at this location finished (None: none)."""
    done = [m.finished_at for m in scan.backups if m.server == server and m.status.value == "complete"]
    return min(done) if done else None


def _nothing_yet(
    scan: catalog.LocationScan,
    server: str,
    now: datetime,
    check: tuple[str, timedelta, str, str],
    advice: str,
    failed: str,
) -> CheckResult:
    """The verdict when a check finds nothing of its kind: a WARNING while nothing is due yet (a
    fresh install whose first backup is younger than the check's limit; ``check`` = check name,
    limit, what is missing, what is due), else FAILED with ``failed`` as the detail."""
    first = _first_backup(scan, server)
    name, limit, missing, due = check
    if first is None or _age(now, first) > limit:
        return CheckResult(server, scan.location.name, name, Status.FAILED, failed)
    return CheckResult(
        server,
        scan.location.name,
        name,
        Status.WARNING,
        f"no {missing} yet (first backup {human_age(_age(now, first))} ago; the first {due} "
        f"is due within {human_age(limit)} of it): {advice}",
    )


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
        return _nothing_yet(
            scan,
            server,
            now,
            ("binlog archive age", policy.max_binlog_archive_age, "binlog archived", "archive"),
            "the archive-binlogs schedule will archive them, or run it now "
            f"(prefect deployment run 'archive-binlogs/{server}')",
            f"no archived binlog of {server!r} at {name!r}"
            + (f" although the first backup is {human_age(_age(now, first))} old" if first else "")
            + f": the archive-binlogs schedule is not running or failing; run it "
            f"(prefect deployment run 'archive-binlogs/{server}') and look at its runs",
        )
    newest = max(archives, key=lambda b: b.archived_at)
    age = _age(now, newest.archived_at)
    return _within(
        (server, name, "binlog archive age"),
        age,
        policy.max_binlog_archive_age,
        f"newest {newest.file}, archived {human_age(age)} ago",
        "the archive-binlogs schedule is not running or failing",
    )


def _restore_test(scan: catalog.LocationScan, server: str, policy: CheckPolicy, now: datetime) -> CheckResult:
    name = scan.location.name
    if policy.max_restore_test_age is None:
        return CheckResult(server, name, "restore test", Status.SKIPPED, "switched off")
    certificates = [c for c in scan.certificates if c.server == server]
    if not certificates:
        return _nothing_yet(
            scan,
            server,
            now,
            ("restore test", policy.max_restore_test_age, "restore test", "test"),
            "a backup is not proven until restored; the restore-test schedule will test it, "
            f"or run it now (prefect deployment run 'restore-test/{server}')",
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
    return _within(
        (server, name, "restore test"),
        age,
        policy.max_restore_test_age,
        f"last test of {newest.backup_id} passed {human_age(age)} ago",
        "the restore-test schedule is not running",
    )


def _within(
    where: tuple[str, str, str], age: timedelta, limit: timedelta, newest: str, late: str
) -> CheckResult:
    """OK while the newest evidence (described by ``newest``) is at most ``limit`` old; FAILED
    with the ``late`` advice after that. ``where`` = server, location, check name."""
    ok = age <= limit
    detail = f"{newest} (limit {human_age(limit)})" + ("" if ok else f": {late}")
    return CheckResult(*where, Status.OK if ok else Status.FAILED, detail)


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


def failures(results: Iterable[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.failed]


def summary(results: Sequence[CheckResult]) -> str:
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
