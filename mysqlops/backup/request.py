"""``backup.run``: one backup request, logical or physical, judged before anything connects.

The flow (flows/backup.py) builds a :class:`BackupRequest` from its parameters, calls
:meth:`BackupRequest.check` before anything else, and inside its task calls :func:`run` with
a :class:`~mysqlops.runs.RunContext` (staging dir, keyring loaded in that task, reporter).
:func:`summary`, :func:`summary_markdown` and :func:`failure` turn the result into what the
flow returns, publishes and raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops.backup.logical import BackupResult, run_backup
from mysqlops.backup.preflight import check_backup_parameters
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.model import Location, ServerSpec
from mysqlops.runs import RunContext
from mysqlops.streams.compression import Codec
from mysqlops.streams.compression import codec as make_codec
from mysqlops.units import human_bytes, human_duration


@dataclass(frozen=True)
class BackupRequest:
    """What to back up, where and how (everything but the run context).

    ``compression``: a codec name (the flows), or a ready :class:`Codec` (tests and benchmarks:
    a thread count, a codec that fails on purpose); ``level`` goes with a name only.
    ``datadir_hint`` and ``program`` are for ``method='physical'``: the datadir as seen here when
    it differs from the server's (xtrabackup), and the caller's own backup program (xtrabackup
    for MySQL; without it MySQL is backed up with CLONE and MariaDB with its build's mariabackup).
    """

    server: ServerSpec
    locations: tuple[Location, ...]
    method: str = "logical"
    compression: str | Codec = "zstd"
    level: int | None = None
    databases: tuple[str, ...] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    parallel: int = 1
    from_replica: bool = False
    incremental: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)
    datadir_hint: str | None = None
    program: str | None = None

    @property
    def codec(self) -> Codec:
        if isinstance(self.compression, Codec):
            if self.level is not None:
                raise ConfigError(
                    f"level={self.level} was given with a ready codec ({self.compression.label}): "
                    "give the level to the codec, or name the compression"
                )
            return self.compression
        return make_codec(self.compression, self.level)

    def check(self, ctx: RunContext) -> None:
        """Judge every parameter before anything connects to the server: a wrong one is a
        :class:`ConfigError` naming it, never a connection error or a half-made backup."""
        if self.method not in ("logical", "physical"):
            raise ConfigError(f"method must be 'logical' or 'physical', got {self.method!r}")
        if self.incremental and self.method != "physical":
            raise ConfigError(
                "incremental=True needs method='physical' (logical increments are binlog archives)"
            )
        if self.from_replica and self.method != "logical":
            raise ConfigError(
                "from_replica=True is for logical backups; a physical backup copies the server it runs on"
            )
        for name in ("datadir_hint", "program"):
            if getattr(self, name) is not None and self.method != "physical":
                raise ConfigError(f"{name} is for method='physical'; a logical backup uses the dump client")
        self.codec  # noqa: B018 - an unknown codec or a level out of range
        check_backup_parameters(
            self.locations,
            databases=self.databases,
            include=self.include,
            exclude=self.exclude,
            parallel=self.parallel,
            staging_dir=ctx.staging_dir,
            progress_interval=ctx.progress_interval,
            tags=self.tags,
        )


def run(request: BackupRequest, ctx: RunContext) -> BackupResult:
    """Make the backup: logical (pre-flight, dump, uploads, manifest last) or physical
    (mariabackup/xtrabackup on the server's machine, CLONE on MySQL). The key is
    ``ctx.keyring``'s current."""
    request.check(ctx)
    if request.method == "physical":
        from mysqlops.backup.physical import run_physical_backup

        result = run_physical_backup(request, ctx)
    else:
        result = run_backup(request, ctx)
    ctx.reporter.progress(100.0)
    return result


def summary(result: BackupResult) -> dict[str, Any]:
    """What the backup flow returns: ids, sizes, per-location status, coordinates."""
    m = result.manifest
    return {
        "backup_id": m.backup_id,
        "server": m.server,
        "databases": list(m.databases),
        "raw_bytes": m.raw_bytes,
        "stored_bytes": m.stored_bytes,
        "locations": {r.location: ("verified" if r.ok else r.error) for r in result.locations},
        "durations": m.durations,
        "warnings": result.warnings,
        "coordinates": None
        if not m.coordinates
        else {"file": m.coordinates.file, "position": m.coordinates.position, "gtid": m.coordinates.gtid},
    }


def summary_markdown(result: BackupResult) -> str:
    """The backup summary as markdown (the flow's artifact)."""
    m = result.manifest
    lines = [
        f"# Backup `{m.backup_id}` of `{m.server}`",
        "",
        f"- server: {m.flavor} {m.server_version}; databases: {len(m.databases)}"
        + (" (empty)" if m.extra.get("empty") else ""),
        f"- raw {human_bytes(m.raw_bytes)} → stored {human_bytes(m.stored_bytes)} ({m.compression})",
        f"- binlog coordinates: {m.coordinates.file}:{m.coordinates.position} gtid {m.coordinates.gtid}"
        if m.coordinates
        else "- binlog coordinates: none (PITR not possible from this backup)",
        "- durations: " + ", ".join(f"{k} {human_duration(v)}" for k, v in m.durations.items()),
        "",
        "| location | status |",
        "|---|---|",
    ]
    lines += [
        f"| {r.location} | {'verified' if r.ok else 'FAILED: ' + r.error[:300]} |" for r in result.locations
    ]
    if result.warnings:
        lines += ["", "## Warnings", *[f"- {w}" for w in result.warnings]]
    return "\n".join(lines)


def failure(result: BackupResult) -> MysqlopsError | None:
    """The error that fails the flow when a location could not be written and verified."""
    if result.ok:
        return None
    good = [r.location for r in result.locations if r.ok]
    return MysqlopsError(
        f"backup {result.manifest.backup_id} failed at location(s) {', '.join(result.failed_locations)}; "
        f"verified copies exist at: {', '.join(good) or 'none'}. "
        + " | ".join(f"{r.location}: {r.error}" for r in result.locations if not r.ok)
    )


def request_from(server: ServerSpec, locations: Sequence[Location], **options: Any) -> BackupRequest:
    """A request from flow-style parameters (lists, ``None`` for empty): the one conversion.
    Anything that is not a list is passed on as given, for :meth:`BackupRequest.check` to name."""
    for name in ("databases", "include", "exclude", "tags"):
        value = options.get(name)
        if isinstance(value, list):
            options[name] = tuple(value)
        elif value is None and name != "databases":
            options.pop(name, None)
    return BackupRequest(server, tuple(locations), **options)
