"""What the two physical engines share: mariabackup/xtrabackup (:mod:`mysqlops.backup.physical`)
and MySQL's CLONE (:mod:`mysqlops.backup.clone`) both copy the whole instance into ONE stream.

- :class:`Source`: the instance as the server describes it (version, datadir, databases,
  identity, whether binary logging is on), read once before anything is written;
- :func:`destination_problems`: every location writable, and room on the staging disk;
- :class:`StreamRun`: the run itself: the one stream staged (compressed, encrypted, sha256),
  its manifest declared once, the upload to every location, read back, manifest last.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mysqlops import layout
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process
from mysqlops.adapters.storage import Store
from mysqlops.backup.logical import BackupResult, _own_version
from mysqlops.backup.preflight import _free_bytes
from mysqlops.backup.staging import StagedFile, _Sink, drain_into
from mysqlops.backup.uploads import _upload_everywhere, as_uploaded
from mysqlops.errors import StorageError
from mysqlops.manifest import BackupManifest
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, Flavor, ServerSpec, ServerVersion
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.dialect import dialect_for
from mysqlops.streams.keys import key_id
from mysqlops.units import human_bytes

if TYPE_CHECKING:
    from mysqlops.backup.request import BackupRequest
    from mysqlops.runs import RunContext

#: the warning of a backup of a server without binary logs
LOG_BIN_OFF = (
    "binary logging is off on this server: the backup records no binlog coordinates, so "
    "point-in-time recovery from it is impossible (add log_bin to [mysqld])"
)


@dataclass(frozen=True)
class Source:
    """The instance a physical backup copies, as its server reports it."""

    version: ServerVersion
    datadir: str
    databases: tuple[str, ...]
    identity: dict[str, Any]
    log_bin: bool


def inspect_source(spec: ServerSpec, datadir_hint: str | None) -> Source:
    with db.session(spec) as conn:
        version = db.server_version(conn)
        row = db.query(conn, sqlcat.PHYSICAL_FACTS)[0]
        databases = tuple(db.user_databases(conn, dialect_for(version).dump.system_schemas()))
    identity = {"hostname": str(row["h"]), "port": int(row["p"]), "server_id": int(row["s"])}
    reported = str(row["d"]).rstrip("/") or "/"
    identity["datadir"] = reported
    # mariabackup cds into the server-reported datadir whatever --datadir says
    datadir = reported if version.flavor is Flavor.MARIADB or not datadir_hint else datadir_hint
    return Source(version, datadir.rstrip("/") or "/", databases, identity, bool(int(row["lb"] or 0)))


def destination_problems(
    request: BackupRequest, ctx: RunContext, problems: list[str], needed: Callable[[], int], what: str
) -> None:
    """Add to ``problems`` each location that cannot be written, and a staging disk without
    room for ``needed()`` bytes (``what`` they are), asked only when nothing else is wrong."""
    for loc in request.locations:
        try:
            Store(loc, retries=2).check_writable()
        except StorageError as exc:
            problems.append(str(exc))
    if problems:
        return
    staging = ctx.staging_dir or tempfile.gettempdir()
    free = _free_bytes(staging)
    if free is None:
        return
    size = needed()
    if free < size:
        problems.append(
            f"staging directory {staging} has {human_bytes(free)} free, {what} may need about "
            f"{human_bytes(size)}: free space or set staging_dir on a larger disk"
        )


@dataclass
class StreamRun:
    """One physical backup once its pre-flight passed: its id and start, the one stream staged
    as ``name`` in ``staging_root``, its durations and warnings."""

    request: BackupRequest
    ctx: RunContext
    source: Source
    staging_root: str
    name: str
    warnings: list[str]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    durations: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.backup_id = layout.new_backup_id(self.started_at)
        self.staged = StagedFile("", os.path.join(self.staging_root, self.name))

    def stream(
        self,
        argv: Sequence[str],
        name: str,
        *,
        credentials: str | None = None,
        stderr_filter: Callable[[str], str] | None = None,
    ) -> None:
        """``argv``'s output through compression, encryption and sha256 into the staged file."""
        sink = _Sink(self.staged, self.request.codec, self.ctx.encryption_key)
        try:
            with process.Pipeline(
                [argv],
                credentials=credentials,
                stdout=process.PIPE,
                timeout=self.ctx.timeout,
                name=name,
                stderr_filter=stderr_filter,
            ) as pipe:
                drain_into(pipe.stdout_pipe, sink)
                pipe.wait()
        finally:
            sink.close()

    def publish(
        self,
        *,
        coordinates: BinlogCoordinates | None,
        tools: dict[str, str],
        extra: dict[str, Any],
        kind: BackupKind = BackupKind.FULL,
        parent_id: str | None = None,
        lsn_from: int | None = None,
        lsn_to: int | None = None,
    ) -> BackupResult:
        """The manifest of the one stream (method ``physical``; ``extra`` adds to the datadir and
        the server's identity), the stream uploaded to every location and read back, the
        manifest last."""
        version = self.source.version
        key = self.ctx.encryption_key
        manifest = BackupManifest(
            backup_id=self.backup_id,
            server=self.request.server.name,
            location="",
            kind=kind,
            method=BackupMethod.PHYSICAL,
            flavor=version.flavor.value,
            server_version=f"{version.major}.{version.minor}.{version.patch}",
            databases=self.source.databases,
            files=(self.staged.to_server_file(self.name, self.durations["backup"]),),
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            compression=self.request.codec.label,
            coordinates=coordinates,
            durations=self.durations,
            tools={**tools, "mysqlops": _own_version()},
            tags=tuple(self.request.tags),
            warnings=tuple(self.warnings),
            encryption_key_id=key_id(key) if key is not None else None,
            parent_id=parent_id,
            lsn_from=lsn_from,
            lsn_to=lsn_to,
            extra={**extra, "datadir": self.source.datadir, "server_identity": self.source.identity},
        )
        results = _upload_everywhere(manifest, [self.staged], self.request.locations, self.durations)
        return BackupResult(as_uploaded(manifest, results, self.durations), results, self.warnings)
