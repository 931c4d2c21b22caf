"""Which binlogs to archive; gaps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops import layout
from mysqlops.errors import (
    MysqlopsError,
)
from mysqlops.manifest import BackupManifest, BinlogManifest
from mysqlops.model import binlog_sequence


# =========================================================================== errors
class BinlogError(MysqlopsError):
    """Binary logs cannot be archived or replayed as asked."""


class BinlogGap(BinlogError):
    """Binlogs are missing for good (purged before archiving): PITR cannot cross the gap."""

    def __init__(
        self,
        message: str,
        *,
        server: str,
        missing: Sequence[str],
        locations: Sequence[str] = (),
        affected_backups: Sequence[str] = (),
        result: ArchiveResult | None = None,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.missing = tuple(missing)
        self.locations = tuple(locations)
        self.affected_backups = tuple(affected_backups)
        self.result = result


class BinlogHistoryChanged(BinlogError):
    """The server's binlogs do not continue the archive (re-initialised, RESET MASTER, ...)."""


# =========================================================================== planning (pure)
@dataclass(frozen=True)
class LocationPlan:
    """What one location needs from the server's current binlogs."""

    location: str
    to_archive: tuple[str, ...]  # closed on the server, not archived here: archive, oldest first
    archived: tuple[str, ...]  # already archived here (by manifest)
    new_gap: tuple[str, ...]  # after the last archived file, gone from the server: data lost
    known_gaps: tuple[str, ...]  # holes older than the last archived file (reported before)

    @property
    def last_archived(self) -> str | None:
        return self.archived[-1] if self.archived else None


def plan_location(
    location: str,
    server_logs: Sequence[str],
    active: str,
    archived: Sequence[str],
) -> LocationPlan:
    """Decide what to archive at one location. Pure: names in, names out.

    ``server_logs``: every file ``SHOW BINARY LOGS`` lists; ``active``: the file being written
    (never archived); ``archived``: files with a manifest at the location. Raises
    :class:`BinlogHistoryChanged` when the server's binlogs cannot continue the archive.
    """
    base = layout.binlog_basename(active)
    active_seq = binlog_sequence(active)
    foreign = sorted({layout.binlog_basename(f) for f in archived} - {base})
    if foreign:
        raise BinlogHistoryChanged(
            f"location {location!r}: the archive holds binlogs named {foreign[0]}.*, the server now "
            f"writes {base}.*: log_bin was renamed or this is another server. Archive this server "
            "under a new server name (MySQLServer block server_name), or rename log_bin back"
        )
    done = {binlog_sequence(f): f for f in archived}
    if done and active_seq <= max(done):
        raise BinlogHistoryChanged(
            f"location {location!r}: the server's current binlog {active} is not newer than the last "
            f"archived one {done[max(done)]}: its binlog sequence went back (RESET MASTER, or the "
            "server was re-initialised). Its new binlogs cannot continue this archive: archive them "
            "under a new server name and take a new full backup"
        )
    on_server = {binlog_sequence(f): f for f in server_logs if layout.binlog_basename(f) == base}
    closed = {s: f for s, f in on_server.items() if s < active_seq}
    to_archive = tuple(closed[s] for s in sorted(closed) if s not in done)
    new_gap: list[str] = []
    known: list[str] = []
    if done:
        first, last = min(done), max(done)
        oldest_needed = min([first, *closed])
        for seq in range(oldest_needed, active_seq):
            if seq in done or seq in closed:
                continue
            (new_gap if seq > last else known).append(layout.binlog_sibling(active, seq))
    return LocationPlan(
        location=location,
        to_archive=to_archive,
        archived=tuple(done[s] for s in sorted(done)),
        new_gap=tuple(new_gap),
        known_gaps=tuple(known),
    )


def find_gaps(files: Sequence[str]) -> list[str]:
    """Names missing between the first and the last of ``files`` (one basename)."""
    if not files:
        return []
    seqs = sorted({binlog_sequence(f) for f in files})
    present = set(seqs)
    return [layout.binlog_sibling(files[0], s) for s in range(seqs[0], seqs[-1] + 1) if s not in present]


def affected_backups(backups: Sequence[BackupManifest], last_missing: str) -> list[str]:
    """Full backups whose coordinates are before the end of a gap: they cannot be rolled
    forward across it (PITR stops at the gap, or cannot start at all)."""
    limit = binlog_sequence(last_missing)
    base = layout.binlog_basename(last_missing)
    out = []
    for m in backups:
        coords = m.coordinates
        if coords and layout.binlog_basename(coords.file) == base and coords.sequence <= limit:
            out.append(m.backup_id)
    return sorted(out)


# =========================================================================== results
@dataclass(frozen=True)
class ArchivedBinlog:
    file: str
    location: str
    raw_bytes: int
    stored_bytes: int
    seconds: float
    adopted: bool = False  # the object/manifest was already stored by an overlapping run


@dataclass(frozen=True)
class ArchiveResult:
    server: str
    active: str
    archived: tuple[ArchivedBinlog, ...]
    skipped: tuple[str, ...]  # closed files already archived at every location
    manifests: tuple[BinlogManifest, ...]
    known_gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # location -> files
    new_gaps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seconds: float = 0.0
    rotated: bool = False  # the active binlog was closed (it held transactions) before archiving

    @property
    def files(self) -> list[str]:
        return sorted({a.file for a in self.archived}, key=binlog_sequence)

    @property
    def raw_bytes(self) -> int:
        return sum({m.file: m.raw_bytes for m in self.manifests}.values())

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "file": a.file,
                "location": a.location,
                "raw_bytes": a.raw_bytes,
                "stored_bytes": a.stored_bytes,
                "seconds": round(a.seconds, 3),
                "adopted": a.adopted,
            }
            for a in self.archived
        ]
