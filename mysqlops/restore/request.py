"""``restore.run``: one restore request, plain or to a point in time.

The flow (flows/restore.py) builds a :class:`RestoreRequest` (the recovery target parsed once,
:meth:`~mysqlops.model.RecoveryTarget.parse`) and calls :func:`run` inside its task with a
:class:`~mysqlops.runs.RunContext` whose keyring that task loaded. :class:`RestoreOutcome`
holds what the flow returns and publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mysqlops import catalog
from mysqlops.errors import ConfigError
from mysqlops.model import Location, RecoveryTarget, ServerSpec
from mysqlops.restore.load import LoadOptions
from mysqlops.restore.logical import RestoreResult, restore_backup
from mysqlops.restore.pitr import PitrResult, point_in_time_restore
from mysqlops.runs import RunContext


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore into which server. ``server``: the name the backups are recorded under
    (needed for ``latest`` and for a point in time); ``until``: None for a plain restore."""

    target: ServerSpec
    locations: tuple[Location, ...]
    server: str | None = None
    backup_id: str = "latest"
    databases: tuple[str, ...] | None = None
    rename: Mapping[str, str] = field(default_factory=dict)
    overwrite: bool = False
    allow_source_target: bool = False
    until: RecoveryTarget | None = None
    tables: tuple[str, ...] | None = None  # only these tables (mysqlops.restore.tables)
    load: LoadOptions = field(default_factory=LoadOptions)  # connections, statement timeout

    def check(self) -> None:
        """Judged before any location is read or the target touched."""
        if not self.locations:
            raise ConfigError("no backup location given: pass at least one BackupLocation block name")
        if self.backup_id == "latest" and not self.server:
            raise ConfigError("restore of 'latest' needs server=<the backed-up server's name>")
        if self.until is not None and not self.server:
            raise ConfigError("point-in-time recovery needs server=<the backed-up server's name>")
        if self.tables and self.databases:
            raise ConfigError("pass either databases=... or tables=..., not both")
        if self.until is not None and self.rename and not self.tables:
            raise ConfigError(
                "point-in-time recovery restores whole backups under their own names: drop rename, or restore "
                "into a scratch server and copy the databases you need"
            )


@dataclass(frozen=True)
class RestoreOutcome:
    """What one restore did: the restore, and the replay when it went to a point in time."""

    target: str
    restore: RestoreResult
    pitr: PitrResult | None = None

    @property
    def backup_id(self) -> str:
        return self.restore.backup_id

    def summary(self) -> dict[str, Any]:
        """What the restore flow returns."""
        if self.pitr is None:
            return {
                "backup_id": self.restore.backup_id,
                "target": self.target,
                "databases": self.restore.databases,
                "locations_used": self.restore.locations_used,
                "problems": self.restore.problems,
                "durations": self.restore.durations,
            }
        return {
            "backup_id": self.pitr.base.backup_id,
            "target": self.target,
            "databases": self.restore.databases,
            "binlogs_replayed": list(self.pitr.replay.files),
            "stop": self.pitr.replay.stop,
            "durations": {**self.restore.durations, "replay": round(self.pitr.replay.apply_seconds, 3)},
        }

    def rows(self) -> list[dict[str, Any]]:
        """The table artifact: one row per database, or the recovery's one row."""
        if self.pitr is None:
            return [
                {"database": d, "restored_as": t, "target": self.target}
                for d, t in self.restore.databases.items()
            ]
        return [
            {
                "base_backup": self.pitr.base.backup_id,
                "binlogs": len(self.pitr.replay.files),
                "stop": self.pitr.replay.stop,
                "target": self.target,
            }
        ]


def run(request: RestoreRequest, ctx: RunContext) -> RestoreOutcome:
    """Restore ``request`` (see :class:`RestoreRequest`). A missing, truncated or corrupt copy
    is reported and the next location used; an unusable copy is never restored from."""
    request.check()
    if request.until is not None:
        assert request.server is not None
        pitr = point_in_time_restore(
            request.locations,
            request.server,
            request.target,
            request.until,
            backup_id=request.backup_id,
            databases=request.databases,
            overwrite=request.overwrite,
            allow_source_target=request.allow_source_target,
            ctx=ctx,
            tables=request.tables,  # only these, rebuilt on a scratch server (restore/table_pitr)
            rename=request.rename,
        )
        for line in pitr.restore.warnings:
            ctx.reporter.warning(line)
        return RestoreOutcome(request.target.name, pitr.restore, pitr)
    scans = catalog.scan(request.locations)
    wanted = None if request.backup_id == "latest" else request.backup_id
    for problem in catalog.unusable_copies(scans, request.server, wanted):
        ctx.reporter.warning(f"never restored from: {problem}")
    copies = catalog.find_backup(scans, request.server, request.backup_id)
    result = restore_backup(
        copies,
        request.target,
        ctx,
        databases=request.databases,
        rename=request.rename,
        overwrite=request.overwrite,
        allow_source_target=request.allow_source_target,
        load=request.load,
        tables=request.tables,
    )
    ctx.reporter.progress(100.0)
    for line in [*result.problems, *result.warnings]:
        ctx.reporter.warning(line)
    return RestoreOutcome(request.target.name, result)
