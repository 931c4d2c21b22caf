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
from mysqlops.backup.preflight import Plan, check_backup_parameters, preflight
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.model import Location, ServerSpec
from mysqlops.progress import Progress
from mysqlops.runs import RunContext
from mysqlops.streams.compression import Codec
from mysqlops.streams.compression import codec as make_codec
from mysqlops.units import human_bytes, human_duration


@dataclass(frozen=True)
class BackupRequest:
    """What to back up, where and how (everything but the run context)."""

    server: ServerSpec
    locations: tuple[Location, ...]
    method: str = "logical"
    compression: str = "zstd"
    level: int | None = None
    databases: tuple[str, ...] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    parallel: int = 1
    from_replica: bool = False
    incremental: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def codec(self) -> Codec:
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


def _progress_reporter(ctx: RunContext) -> Any:
    def on_progress(p: Progress) -> None:
        ctx.reporter.info(p.describe())  # no percentage or ETA once the estimate is exceeded
        ctx.reporter.progress(round(100 * p.fraction, 1))

    return on_progress


def plan(request: BackupRequest, ctx: RunContext) -> Plan:
    """The logical pre-flight (nothing is written when it fails), reported."""
    checked = preflight(
        request.server,
        request.locations,
        databases=request.databases,
        include=request.include,
        exclude=request.exclude,
        staging_dir=ctx.staging_dir,
        from_replica=request.from_replica,
    )
    ctx.reporter.info(
        f"pre-flight ok: {checked.version}, {len(checked.databases)} database(s) "
        f"({human_bytes(sum(checked.estimated_bytes.values()))} estimated), "
        f"locations {', '.join(loc.name for loc in request.locations)}"
    )
    for warning in checked.warnings:
        ctx.reporter.warning(warning)
    return checked


def run(request: BackupRequest, ctx: RunContext) -> BackupResult:
    """Make the backup: logical (pre-flight, dump, uploads, manifest last) or physical
    (mariabackup/xtrabackup on the server's machine). The key is ``ctx.keyring``'s current."""
    request.check(ctx)
    if request.method == "physical":
        from mysqlops.backup.physical import run_physical_backup

        result = run_physical_backup(
            request.server,
            request.locations,
            request.codec,
            incremental=request.incremental,
            staging_dir=ctx.staging_dir,
            tags=request.tags,
            log=ctx.reporter.info,
            timeout=ctx.timeout,
            encryption_key=ctx.encryption_key,
        )
    else:
        result = run_backup(
            request.server,
            request.locations,
            request.codec,
            plan=plan(request, ctx),
            parallel=request.parallel,
            from_replica=request.from_replica,
            tags=request.tags,
            staging_dir=ctx.staging_dir,
            progress=_progress_reporter(ctx),
            progress_interval=ctx.progress_interval,
            dump_timeout=ctx.timeout,
            log=ctx.reporter.info,
            encryption_key=ctx.encryption_key,
        )
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
