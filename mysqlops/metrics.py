"""Metrics for Prometheus/Grafana: what a dashboard needs after every backup, binlog archive,
restore test, retention run, report and replica health check. Pure: samples from results;
``adapters.prometheus`` writes them (Pushgateway and/or node_exporter's textfile collector).

Every sample belongs to a *group*, ``(event, server, location)``: one push (or one ``.prom``
file) per group, so a restore test of ``db1`` at ``s3`` never removes the backup metrics of
``db1`` at ``local``, and a failed location's push leaves its last success in place. The
group's labels are also the series' labels (``server``, ``location``; ``""`` when not
applicable). Times are Unix seconds (``*_timestamp_seconds``): Grafana shows an age as
``time() - metric``. Sizes are bytes, durations seconds (Prometheus base units).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from mysqlops.errors import ConfigError

if TYPE_CHECKING:
    from mysqlops.backup.logical import BackupResult
    from mysqlops.binlog.plan import ArchiveResult
    from mysqlops.manifest import RestoreCertificate
    from mysqlops.replication.health import ReplicaHealth
    from mysqlops.report.render import Report
    from mysqlops.retention.locations import LocationOutcome

PREFIX = "mysqlops_"
HELP: dict[str, str] = {
    "backup_last_success_timestamp_seconds": "End of the newest verified backup at this location",
    "backup_last_attempt_timestamp_seconds": "End of the newest backup attempt at this location",
    "backup_last_ok": "1 if the newest backup attempt at this location was verified, else 0",
    "backup_stored_bytes": "Stored (compressed, encrypted) size of the newest verified backup",
    "backup_raw_bytes": "Raw (uncompressed) size of the newest verified backup",
    "backup_duration_seconds": "Wall time of the newest verified backup",
    "binlog_last_archive_timestamp_seconds": "End of the newest binlog archive run at this location",
    "binlog_newest_event_timestamp_seconds": "Newest binlog event archived at this location",
    "binlog_archived_files": "Binlog files archived by the newest run",
    "binlog_archived_bytes": "Stored bytes of the binlogs archived by the newest run",
    "restore_test_passed": "1 if the newest restore test of this location's copy passed, else 0",
    "restore_test_timestamp_seconds": "Time of the newest restore test",
    "restore_test_duration_seconds": "Restore time stated by the newest restore certificate",
    "retention_last_run_timestamp_seconds": "Time of the newest retention run at this location",
    "retention_deleted_backups": "Backups and binlogs deleted by the newest retention run",
    "retention_freed_bytes": "Bytes freed by the newest retention run",
    "retention_kept_backups": "Backups and binlogs kept by the newest retention plan",
    "retention_refused": "1 if retention refused to delete (nothing proven), else 0",
    "recovery_window_oldest_timestamp_seconds": "Oldest point a proven backup can restore to",
    "recovery_window_newest_timestamp_seconds": "Newest point restorable (proven backup or gapless binlogs)",
    "recovery_window_seconds": "Length of the recovery window",
    "replication_lag_seconds": "Seconds_Behind_Source of the replica (absent when unknown)",
    "replication_ok": "1 if the replica's threads run within the lag limit and without drift, else 0",
}


@dataclass(frozen=True)
class Sample:
    """One value of one series: ``mysqlops_<name>{server, location, **labels}``."""

    event: str
    name: str
    value: float
    server: str = ""
    location: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in HELP:
            raise ConfigError(f"unknown metric {self.name!r}; known: {', '.join(sorted(HELP))}")

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.event, self.server, self.location)

    @property
    def all_labels(self) -> dict[str, str]:
        return {"server": self.server, "location": self.location, **dict(self.labels)}


@dataclass(frozen=True)
class MetricsTarget:
    """Where metrics go: a Pushgateway URL and/or a textfile-collector directory (either may be
    empty; both empty: metrics are off). ``job`` is the Pushgateway job label."""

    pushgateway_url: str = ""
    textfile_dir: str = ""
    job: str = "mysqlops"
    timeout: float = 10.0
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.pushgateway_url or self.textfile_dir)

    def __post_init__(self) -> None:
        url = self.pushgateway_url
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"pushgateway_url {url!r} must start with http:// or https:// (e.g. http://127.0.0.1:9091)"
            )
        if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
            raise ConfigError(
                "pushgateway_url must not hold credentials (user:password@): they would be logged"
            )
        if not self.job or "/" in self.job:
            raise ConfigError(f"metrics job {self.job!r} must be a non-empty name without '/'")


def _sample(
    where: tuple[str, str, str], name: str, value: float, labels: tuple[tuple[str, str], ...] = ()
) -> Sample:
    event, server, location = where
    return Sample(event=event, name=name, value=float(value), server=server, location=location, labels=labels)


def backup_samples(result: BackupResult) -> list[Sample]:
    """Per location: success time, sizes and duration when verified; attempt time and ok always."""
    m = result.manifest
    kind = (("kind", m.kind.value), ("method", m.method.value))
    end = m.finished_at.timestamp()
    duration = float(m.durations.get("total", (m.finished_at - m.started_at).total_seconds()))
    out: list[Sample] = []
    for loc in result.locations:
        where = ("backup", m.server, loc.location)
        out += [
            _sample(where, "backup_last_attempt_timestamp_seconds", end),
            _sample(where, "backup_last_ok", 1.0 if loc.ok else 0.0),
        ]
        if loc.ok:
            out += [
                _sample(where, "backup_last_success_timestamp_seconds", end, kind),
                _sample(where, "backup_stored_bytes", float(m.stored_bytes), kind),
                _sample(where, "backup_raw_bytes", float(m.raw_bytes), kind),
                _sample(where, "backup_duration_seconds", duration, kind),
            ]
    return out


def binlog_samples(result: ArchiveResult, locations: Sequence[str], now: datetime) -> list[Sample]:
    out: list[Sample] = []
    for location in locations:
        where = ("binlog", result.server, location)
        archived = [a for a in result.archived if a.location == location]
        newest = [m.last_event_at for m in result.manifests if m.location == location and m.last_event_at]
        out += [
            _sample(where, "binlog_last_archive_timestamp_seconds", now.timestamp()),
            _sample(where, "binlog_archived_files", float(len(archived))),
            _sample(where, "binlog_archived_bytes", float(sum(a.stored_bytes for a in archived))),
        ]
        if newest:
            out.append(_sample(where, "binlog_newest_event_timestamp_seconds", max(newest).timestamp()))
    return out


def restore_test_samples(certificates: Iterable[RestoreCertificate]) -> list[Sample]:
    out: list[Sample] = []
    for c in certificates:
        where = ("restore-test", c.server, c.location)
        out += [
            _sample(where, "restore_test_passed", 1.0 if c.passed else 0.0),
            _sample(where, "restore_test_timestamp_seconds", c.tested_at.timestamp()),
        ]
        total = c.durations.get("total")
        if total is not None:
            out.append(_sample(where, "restore_test_duration_seconds", float(total)))
    return out


def retention_samples(outcome: LocationOutcome, now: datetime) -> list[Sample]:
    """One run at one location (no ``outcome.result``: a dry run, nothing deleted)."""
    where = ("retention", "", outcome.location)
    result = outcome.result
    return [
        _sample(where, "retention_last_run_timestamp_seconds", now.timestamp()),
        _sample(where, "retention_deleted_backups", float(len(result.deleted) if result else 0)),
        _sample(where, "retention_freed_bytes", float(result.bytes_freed if result else 0)),
        _sample(where, "retention_kept_backups", float(outcome.counts()["keep"])),
        _sample(where, "retention_refused", 1.0 if outcome.refused else 0.0),
    ]


def recovery_window_samples(report: Report) -> list[Sample]:
    """Per server with a proven backup: its recovery window (``report.recovery``, built by
    ``recovery_window.recovery_windows``: the one definition the inventory shows too)."""
    out: list[Sample] = []
    for r in report.recovery.to_dict("records"):
        if not isinstance(r["oldest_backup_id"], str) or pd.isna(r["newest_at"]):
            continue  # nothing proven restorable: no window
        where = ("report", str(r["server"]), "")
        out += [
            _sample(where, "recovery_window_oldest_timestamp_seconds", r["oldest_at"].timestamp()),
            _sample(where, "recovery_window_newest_timestamp_seconds", r["newest_at"].timestamp()),
            _sample(where, "recovery_window_seconds", float(r["window_s"])),
        ]
    return out


def replication_samples(results: Iterable[ReplicaHealth]) -> list[Sample]:
    out: list[Sample] = []
    for h in results:
        where = ("replica-health", h.replica, "")
        out.append(_sample(where, "replication_ok", 1.0 if h.ok else 0.0))
        if h.seconds_behind is not None:
            out.append(_sample(where, "replication_lag_seconds", float(h.seconds_behind)))
    return out


def grouped(samples: Iterable[Sample]) -> dict[tuple[str, str, str], list[Sample]]:
    groups: dict[tuple[str, str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    return groups


def send(samples: Iterable[Sample], target: MetricsTarget) -> list[str]:
    """Push and/or write ``samples`` (``adapters.prometheus``); returns the problems, never raises
    for an unreachable Pushgateway or an unwritable directory. Target off: nothing is sent."""
    from mysqlops.adapters import prometheus

    if not target.enabled:
        return []
    groups = {
        group: [
            prometheus.Series(PREFIX + s.name, HELP[s.name], {**target.extra_labels, **s.all_labels}, s.value)
            for s in members
        ]
        for group, members in grouped(samples).items()
    }
    return prometheus.publish(
        groups,
        pushgateway_url=target.pushgateway_url,
        textfile_dir=target.textfile_dir,
        job=target.job,
        timeout=target.timeout,
    )
