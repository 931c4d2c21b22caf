"""A server's recovery window: the one definition the inventory, the report and the metrics use.

Pure (no I/O, no pandas). A *restore point* is a backup with at least one copy that is
**proven**: its manifest is complete, it holds data, and a restore test passed for that copy
(or for an identical copy: ``Verdict.PROVEN_BY_COPY``); a copy whose newest test failed or
whose files are missing is never one. Then, per server:

* **oldest point**: the end of the oldest restore point (a backup restores to its own end);
* **newest point**: the later of the newest restore point's end and the last event of the
  binlogs archived without a gap from that backup's binlog position onwards (point-in-time
  recovery reaches that far; a missing binlog file stops it);
* **pitr_from**: the oldest restore point from which the archived binlogs run without a gap to
  the newest point (every moment in between is restorable); **gaps**: the binlog files missing
  after the oldest restore point's position.

Why *proven* and not merely *complete*: the window is a promise ("we can restore to any point
in here") that a DBA alerts on and plans a recovery with, so it only starts where a restore is
known to work. A manifest proves only that an upload finished; an untested backup is counted
separately (``untested``) so the inventory can say "run restore-test to extend the window".
This is the rule the report already applies to freshness and 3-2-1, and the nightly restore
test proves each nightly backup, so in a healthy fleet the two readings differ by hours only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from mysqlops.manifest import BackupManifest, BinlogManifest, Verdict
from mysqlops.model import BackupStatus


@dataclass(frozen=True)
class RecoveryWindow:
    """The recovery window of one server (``oldest`` is None: nothing proven restorable)."""

    server: str
    oldest: BackupManifest | None = None
    newest: BackupManifest | None = None  # the newest restore point
    newest_at: datetime | None = None
    pitr_from: BackupManifest | None = None
    gaps: tuple[int, ...] = ()
    untested: int = 0  # complete backups with data that no restore test proved (not counted)

    @property
    def restorable(self) -> bool:
        return self.oldest is not None

    @property
    def oldest_at(self) -> datetime | None:
        return self.oldest.finished_at if self.oldest is not None else None

    @property
    def from_binlogs(self) -> bool:
        """True when binlogs carry the newest point past the newest restore point's end."""
        return (
            self.newest is not None
            and self.newest_at is not None
            and self.newest_at > self.newest.finished_at
        )

    @property
    def seconds(self) -> float | None:
        if self.oldest is None or self.newest_at is None:
            return None
        return (self.newest_at - self.oldest.finished_at).total_seconds()


def holds_data(m: BackupManifest) -> bool:
    """A complete manifest of a backup with data (an empty backup proves nothing)."""
    return m.status is BackupStatus.COMPLETE and m.raw_bytes > 0 and bool(m.databases)


def _chain_end(m: BackupManifest, by_seq: Mapping[int, BinlogManifest]) -> tuple[datetime | None, list[int]]:
    """The last event archived without a gap from ``m``'s binlog position, and the gaps after it."""
    coords = m.coordinates or m.source_coordinates
    if coords is None or not by_seq:
        return None, []
    end: datetime | None = None
    gaps: list[int] = []
    for n in range(coords.sequence, max(by_seq) + 1):
        b = by_seq.get(n)
        if b is None:
            gaps.append(n)
        elif not gaps:
            end = b.last_event_at or end
    return end, gaps


def recovery_windows(
    backups: Iterable[BackupManifest],
    binlogs: Iterable[BinlogManifest],
    verdicts: Mapping[tuple[str, str, str], Verdict],
) -> dict[str, RecoveryWindow]:
    """The window of every server with a backup or a binlog, by server name.

    ``backups``/``binlogs``: every copy found (``location`` = where it was found, as
    ``catalog.scan`` sets it); ``verdicts``: ``catalog.verdicts`` (or
    ``manifest.copy_verdicts``), keyed ``(location, server, backup_id)``; a copy missing from
    it is untested."""
    proven: dict[str, dict[str, BackupManifest]] = {}
    unproven: dict[str, set[str]] = {}
    servers: set[str] = set()
    for m in backups:
        servers.add(m.server)
        if not holds_data(m):
            continue
        verdict = verdicts.get((m.location, m.server, m.backup_id), Verdict.UNTESTED)
        if verdict.proven:
            proven.setdefault(m.server, {}).setdefault(m.backup_id, m)
        elif verdict is Verdict.UNTESTED:
            unproven.setdefault(m.server, set()).add(m.backup_id)
    by_seq: dict[str, dict[int, BinlogManifest]] = {}
    for b in binlogs:
        servers.add(b.server)
        by_seq.setdefault(b.server, {}).setdefault(b.sequence, b)
    out: dict[str, RecoveryWindow] = {}
    for server in sorted(servers):
        points = sorted(proven.get(server, {}).values(), key=lambda m: (m.finished_at, m.backup_id))
        untested = len(unproven.get(server, set()) - {m.backup_id for m in points})
        if not points:
            out[server] = RecoveryWindow(server, untested=untested)
            continue
        logs = by_seq.get(server, {})
        oldest, latest = points[0], points[-1]
        end, _ = _chain_end(latest, logs)
        newest_at = max(latest.finished_at, end) if end is not None else latest.finished_at
        pitr_from = None
        for m in points:  # oldest first: the first whose binlogs reach the newest point without a gap
            m_end, _ = _chain_end(m, logs)
            if m_end is not None and m_end >= newest_at:
                pitr_from = m
                break
        _, gaps = _chain_end(oldest, logs)
        out[server] = RecoveryWindow(server, oldest, latest, newest_at, pitr_from, tuple(gaps), untested)
    return out
