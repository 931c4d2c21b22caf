"""Point-in-time recovery: the newest full backup before the target, then archived binlogs
replayed from that backup's recorded coordinates up to the target (streamed, verified)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from mysqlops import catalog
from mysqlops.adapters.storage import Store
from mysqlops.binlogs import ReplayResult, replay_binlogs
from mysqlops.crypto import Keyring
from mysqlops.errors import ConfigError, RestoreError
from mysqlops.manifest import BackupManifest
from mysqlops.model import BackupMethod, BinlogCoordinates, Location, ServerSpec
from mysqlops.restore import RestoreResult, restore_backup


@dataclass
class PitrResult:
    restore: RestoreResult
    replay: ReplayResult
    base: BackupManifest


def parse_position(text: str) -> tuple[str, int]:
    """``mysql-bin.000004:1234`` -> (file, position)."""
    file, sep, pos = text.rpartition(":")
    if not sep or not file or not pos.isdigit():
        raise ConfigError(f"until_position {text!r} must look like mysql-bin.000004:1234")
    return file, int(pos)


def choose_base(
    scans: Sequence[catalog.LocationScan],
    server: str,
    until: datetime | None,
    until_position: tuple[str, int] | None,
    backup_id: str = "latest",
) -> list[tuple[Location, BackupManifest]]:
    """Copies of the newest complete logical backup with coordinates taken before the target."""
    if backup_id != "latest":
        return catalog.find_backup(scans, server, backup_id)
    candidates = [
        m
        for s in scans
        for m in s.backups
        if m.server == server
        and m.method is BackupMethod.LOGICAL
        and m.status.value == "complete"
        and m.coordinates
    ]
    if until is not None:
        # the dump's snapshot is taken when it starts: the backup must have started before the target
        candidates = [m for m in candidates if m.started_at < until]
    if until_position is not None:
        file, pos = until_position
        target = BinlogCoordinates(file, pos)
        candidates = [
            m
            for m in candidates
            if m.coordinates
            and (m.coordinates.sequence, m.coordinates.position) <= (target.sequence, target.position)
        ]
    if not candidates:
        raise RestoreError(
            f"no complete logical backup of {server!r} with binlog coordinates before the recovery target: "
            "point-in-time recovery needs a full backup taken before it"
        )
    newest = max(candidates, key=lambda m: m.backup_id)
    return catalog.find_backup(scans, server, newest.backup_id)


def point_in_time_restore(
    locations: Sequence[Location],
    server: str,
    target: ServerSpec,
    *,
    until: datetime | None = None,
    until_gtid: str | None = None,
    until_position: str | None = None,
    backup_id: str = "latest",
    databases: Sequence[str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    staging_dir: str | None = None,
    keyring: Keyring | None = None,
    log: Callable[[str], None] | None = None,
) -> PitrResult:
    say = log or (lambda _m: None)
    if sum(x is not None for x in (until, until_gtid, until_position)) != 1:
        raise ConfigError("point-in-time recovery needs exactly one of until, until_gtid, until_position")
    if until is not None and until.tzinfo is None:
        raise ConfigError("until must be timezone-aware (e.g. 2026-11-23T10:15:00Z)")
    if databases:
        raise ConfigError(
            "point-in-time recovery restores whole backups: binlog events of the other databases would "
            "have nowhere to go; restore into a scratch server and copy the databases you need"
        )
    position = parse_position(until_position) if until_position else None
    scans = catalog.scan(locations)
    copies = choose_base(scans, server, until, position, backup_id)
    base = copies[0][1]
    assert base.coordinates is not None
    say(f"base backup {base.backup_id} (coordinates {base.coordinates.file}:{base.coordinates.position})")
    restored = restore_backup(
        copies,
        target,
        databases=databases,
        overwrite=overwrite,
        allow_source_target=allow_source_target,
        staging_dir=staging_dir,
        keyring=keyring,
        log=say,
    )
    replay = replay_binlogs(
        target,
        [Store(loc) for loc in locations],
        server,
        base.coordinates,
        until_datetime=until,
        until_gtid=until_gtid,
        until_position=position,
        staging_dir=staging_dir,
    )
    say(f"replayed {len(replay.files)} binlog file(s) up to {replay.stop}")
    return PitrResult(restored, replay, base)
