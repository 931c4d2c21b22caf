"""What the two physical engines share: mariabackup/xtrabackup (:mod:`mysqlops.backup.physical`)
and MySQL's CLONE (:mod:`mysqlops.backup.clone`) both copy the whole instance into ONE stream.

- :class:`Source`: the instance as the server describes it (version, datadir, databases,
  identity, whether binary logging is on), read once before anything is written;
- :func:`destination_problems`: every location writable, and room on the staging disk;
- :func:`stream_manifest`: the manifest of the one stream (method ``physical``), declared once;
- :func:`publish_stream`: the upload to every location, read back, manifest last.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mysqlops.adapters import mysql as db
from mysqlops.adapters.storage import Store
from mysqlops.backup.logical import BackupResult, _own_version
from mysqlops.backup.preflight import _free_bytes
from mysqlops.backup.staging import StagedFile
from mysqlops.backup.uploads import _upload_everywhere, as_uploaded
from mysqlops.errors import StorageError
from mysqlops.manifest import BackupFile, BackupManifest
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


def stream_manifest(
    request: BackupRequest,
    ctx: RunContext,
    source: Source,
    file: BackupFile,
    *,
    backup_id: str,
    started_at: datetime,
    coordinates: BinlogCoordinates | None,
    durations: dict[str, float],
    tools: dict[str, str],
    warnings: Sequence[str],
    extra: dict[str, Any],
    kind: BackupKind = BackupKind.FULL,
    parent_id: str | None = None,
    lsn_from: int | None = None,
    lsn_to: int | None = None,
) -> BackupManifest:
    """The manifest of a physical backup's one stream (``extra`` adds to the datadir and the
    server's identity); finished now."""
    version = source.version
    key = ctx.encryption_key
    return BackupManifest(
        backup_id=backup_id,
        server=request.server.name,
        location="",
        kind=kind,
        method=BackupMethod.PHYSICAL,
        flavor=version.flavor.value,
        server_version=f"{version.major}.{version.minor}.{version.patch}",
        databases=source.databases,
        files=(file,),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        compression=request.codec.label,
        coordinates=coordinates,
        durations=durations,
        tools={**tools, "mysqlops": _own_version()},
        tags=tuple(request.tags),
        warnings=tuple(warnings),
        encryption_key_id=key_id(key) if key is not None else None,
        parent_id=parent_id,
        lsn_from=lsn_from,
        lsn_to=lsn_to,
        extra={**extra, "datadir": source.datadir, "server_identity": source.identity},
    )


def publish_stream(
    request: BackupRequest,
    manifest: BackupManifest,
    staged: StagedFile,
    durations: dict[str, float],
    warnings: list[str],
) -> BackupResult:
    """Upload the one stream to every location, read each copy back, the manifest last."""
    results = _upload_everywhere(manifest, [staged], request.locations, durations)
    return BackupResult(as_uploaded(manifest, results, durations), results, warnings)
