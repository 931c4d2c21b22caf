"""Restore logical backups, and prove them: restore tests into scratch servers.

Restore path, per database file: download the stored (compressed) copy into a private
staging directory while computing its sha256 → compare with the manifest (a missing,
truncated or corrupt copy is reported and the next location is tried; nothing has touched
the target yet) → stream decompress → rewrite the database name if renamed → load. By
default the load is parallel (:mod:`mysqlops.restore.parallel`): tables over one connection
per core with secondary keys and foreign keys added after the rows, triggers, routines,
events and views after the tables through the real ``mariadb``/``mysql`` client; each table's
rows wait in a private spool file at most until a connection is free. ``workers=0`` pipes the
stream through one real client as it is, with no copy on disk. If loading fails, every
database this run created is dropped again: nothing half-restored is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mysqlops.adapters import clients, reaper
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.errors import (
    ConfigError,
    PreflightFailed,
    RestoreError,
)
from mysqlops.manifest import BackupManifest, validate_backup_manifest
from mysqlops.model import Location, ObjectCounts, ServerSpec, ServerVersion
from mysqlops.progress import Progress, ProgressFn, Ticker
from mysqlops.restore.fetch import check_key, fetch_backup_files
from mysqlops.restore.load import LoadOptions, load_file
from mysqlops.restore.parallel import TableFn, load_file_parallel
from mysqlops.restore.rename import RenameRefused, rename_refusals
from mysqlops.runs import RunContext
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.sql.restore_grants import RESTORE_FLAGS, missing_restore_privileges
from mysqlops.tools.client import Program

__all__ = ["RestoreResult", "load_file", "progress_reporter", "restore_backup"]


def is_source_server(conn: db.Connection, target: ServerSpec, manifest: BackupManifest) -> bool:
    """Whether ``target`` (connected as ``conn``) is the server the backup was taken from."""
    identity = db.server_identity(conn)
    source_identity = manifest.extra.get("server_identity") or {}
    return target.name == manifest.server or bool(
        source_identity
        and all(identity.get(k) == source_identity.get(k) for k in ("hostname", "port", "server_id"))
    )


def load_client(version: ServerVersion) -> Program:
    """The real client of the target server's build (checked against the server)."""
    load_clients = clients.for_server(version)
    client_problems, _warnings = clients.check(load_clients, version, roles=("client",))
    if client_problems:
        raise RestoreError("; ".join(client_problems))
    return load_clients.mysql


def _database_state(conn: db.Connection, database: str) -> str:
    """'absent', 'empty' or 'nonempty'."""
    exists = db.scalar(conn, sqlcat.SCHEMA_EXISTS, [database])
    if not exists:
        return "absent"
    objects = db.scalar(conn, sqlcat.DATABASE_OBJECTS, [database] * 3)
    return "nonempty" if objects else "empty"


@dataclass
class RestoreResult:
    backup_id: str
    server: str
    target: str
    databases: dict[str, str]  # source database -> restored as
    locations_used: dict[str, str]  # file -> location
    problems: list[str]
    durations: dict[str, float]
    raw_bytes: int
    warnings: list[str] = field(default_factory=list)


def progress_reporter(ctx: RunContext) -> ProgressFn:
    """A load's progress to the run's reporter: a log line and the percentage of a bar."""

    def on_progress(p: Progress) -> None:
        ctx.reporter.info(p.describe())  # "loaded 12.0 MiB of 40.0 MiB (30%) at 4.0 MiB/s, ETA 7s"
        ctx.reporter.progress(100.0 if p.finished else round(100 * p.fraction, 1))

    return on_progress


def restore_backup(
    copies: Sequence[tuple[Location, BackupManifest]],
    target: ServerSpec,
    ctx: RunContext | None = None,
    *,
    databases: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    reap_leftovers: bool = True,
    load: LoadOptions | None = None,
    on_table: TableFn | None = None,
    tables: Sequence[str] | None = None,
) -> RestoreResult:
    """Restore one backup (its copies in location preference order) into ``target``.
    ``ctx``: the staging directory, the keyring (an encrypted backup needs the key whose id the
    manifest records), the reporter (log lines; the load's progress as lines and a percentage),
    the timeout of one client process and the progress interval.
    ``reap_leftovers``: first remove what killed runs left (:mod:`mysqlops.adapters.reaper`).
    ``load``: how (:class:`~mysqlops.restore.load.LoadOptions`): tables load in parallel over
    ``workers`` connections with secondary indexes and foreign keys added after the rows
    (:mod:`mysqlops.restore.parallel`; default: one per core); ``workers=0`` pipes each file
    through one client as it is; ``statement_timeout``: a statement without an answer for that
    long fails the load. ``on_table(database, table)`` runs (in a loading thread) as soon as a
    table is fully loaded, parallel loads only.
    ``tables``: only these tables (``["shop.orders", "shop.order_*"]``), read by ranged reads
    from the backup's table index and loaded by the same parallel loader; ``rename`` then maps
    ``db.table`` or ``db`` names (see :mod:`mysqlops.restore.tables`)."""
    ctx = ctx or RunContext()
    load = load or LoadOptions()
    say = ctx.reporter.info
    staging_dir, keyring = ctx.staging_dir, ctx.keyring
    if tables:
        if databases:
            raise ConfigError("pass either databases=... or tables=..., not both")
        from mysqlops.restore.tables import restore_tables

        if reap_leftovers:
            reaper.reap([staging_dir], log=say)
        return restore_tables(
            copies,
            target,
            tables,
            ctx,
            rename=rename,
            overwrite=overwrite,
            allow_source_target=allow_source_target,
            load=load,
            on_table=on_table,
        )
    if not copies:
        raise ConfigError("no copy of the backup to restore from")
    for _location, copy in copies:
        validate_backup_manifest(copy)  # before anything touches the target
    manifest = copies[0][1]
    check_key(manifest, keyring)
    rename = dict(rename or {})
    wanted = list(databases) if databases else list(manifest.databases)
    unknown = [d for d in wanted if d not in manifest.databases]
    if unknown:
        raise ConfigError(
            f"backup {manifest.backup_id} has no database(s) {unknown}; it holds {list(manifest.databases)}"
        )
    bad_rename = [d for d in rename if d not in wanted]
    if bad_rename:
        raise ConfigError(f"rename names database(s) {bad_rename} that are not being restored ({wanted})")
    targets = {d: rename.get(d, d) for d in wanted}
    if len(set(targets.values())) != len(targets):
        raise ConfigError(f"rename maps two databases to one name: {targets}")
    files = [f for f in manifest.files if f.database in wanted]
    with db.session(target) as conn:
        if is_source_server(conn, target, manifest) and not allow_source_target:
            raise RestoreError(
                f"target {target.name!r} is the backup's own source server {manifest.server!r}; restoring there "
                "would overwrite production data. Pass allow_source_target=True if that is really intended"
            )
        states = {d: _database_state(conn, t) for d, t in targets.items()}
        busy = [targets[d] for d, s in states.items() if s == "nonempty"]
        if busy and not overwrite:
            raise RestoreError(
                f"database(s) {busy} already exist on {target.name} and are not empty; pass overwrite=True to "
                "replace them, or rename=... to restore under another name"
            )
        version = db.server_version(conn)
        counts = sum((f.counts or ObjectCounts() for f in files), ObjectCounts())
        grants = [str(next(iter(r.values()))) for r in db.query(conn, sqlcat.CURRENT_GRANTS)]
        flags = db.query(conn, RESTORE_FLAGS)[0]
        missing = missing_restore_privileges(
            version,
            grants,
            counts,
            log_bin=bool(int(flags["lb"] or 0)),
            trust_function_creators=bool(int(flags["t"] or 0)),
        )
        if missing:
            raise PreflightFailed(
                [
                    f"the account {target.user!r} on {target.name} cannot load this backup: {m}"
                    for m in missing
                ]
            )
    program = load_client(version)
    if reap_leftovers:
        reaper.reap([staging_dir], log=say)
    staging = private_tempdir(staging_dir, "mysqlops-restore-")
    durations: dict[str, float] = {}
    created: list[str] = []
    try:
        t0 = time.monotonic()
        fetched, problems = fetch_backup_files(copies, files, staging, say)
        durations["download"] = round(time.monotonic() - t0, 3)
        refused = [
            f"{q(ff.database)}: {reason}"
            for ff in fetched
            if ff.database is not None and targets[ff.database] != ff.database
            for reason in rename_refusals(
                ff.path,
                manifest.compression,
                {ff.database: targets[ff.database]},
                keyring if manifest.encryption_key_id else None,
            )
        ]
        if refused:
            raise RenameRefused(
                "cannot restore under another name without touching the original database: "
                + "; ".join(refused[:20])
                + (f"; and {len(refused) - 20} more" if len(refused) > 20 else "")
                + ". A rename rewrites CREATE/USE/ALTER DATABASE only; these definitions qualify names "
                "with the original database. Nothing was loaded. Restore under the original name "
                "(on another server), or remove the qualifier from these definitions and back up again"
            )
        total = sum(f.raw_bytes for f in files)
        ticker = Ticker(
            Progress(time.monotonic(), total, stage="load"), progress_reporter(ctx), ctx.progress_interval
        )
        t1 = time.monotonic()

        with db.session(target) as conn:
            for source_db, state in states.items():
                if state == "nonempty":  # overwrite=True, and every copy passed its sha256 check
                    say(f"dropping existing {targets[source_db]!r} on {target.name} (overwrite=True)")
                    db.execute(conn, sqlcat.drop_database(targets[source_db]))
                if state in ("nonempty", "absent"):
                    created.append(targets[source_db])
        n_workers = load.connections
        for ff in fetched:
            assert ff.database is not None
            database = ff.database

            def on_bytes(n: int, database: str = database) -> None:
                ticker.add(database, n)

            renames = {ff.database: targets[ff.database]} if targets[ff.database] != ff.database else {}
            file_key = keyring if manifest.encryption_key_id else None
            if n_workers > 0:
                stats = load_file_parallel(
                    ff.path,
                    manifest.compression,
                    target,
                    program,
                    renames,
                    staging,
                    on_bytes=on_bytes,
                    timeout=ctx.timeout,
                    keyring=file_key,
                    workers=n_workers,
                    on_table=on_table,
                    log=say,
                    statement_timeout=load.statement_timeout,
                )
                say(
                    f"loaded {ff.database!r} as {targets[ff.database]!r} from {ff.location}: {stats.tables} table(s) "
                    f"over {n_workers} connection(s), keys deferred on {stats.deferred_tables}"
                    + (
                        f"; kept as dumped: {', '.join(f'{t} ({r})' for t, r in stats.kept.items())}"
                        if stats.kept
                        else ""
                    )
                )
                continue
            load_file(
                ff.path, manifest.compression, target, program, renames, on_bytes, ctx.timeout, file_key
            )
            say(f"loaded {ff.database!r} as {targets[ff.database]!r} from {ff.location}")
        ticker.done()
        durations["load"] = round(time.monotonic() - t1, 3)
        created.clear()  # success: keep them
        warnings: list[str] = []
        return RestoreResult(
            backup_id=manifest.backup_id,
            server=manifest.server,
            target=target.name,
            databases=targets,
            locations_used={os.path.basename(f.path): f.location for f in fetched},
            problems=problems,
            durations=durations,
            raw_bytes=total,
            warnings=warnings,
        )
    except BaseException:
        if created:
            with contextlib.suppress(Exception), db.session(target) as conn:
                for name in created:
                    db.execute(conn, sqlcat.drop_database(name, if_exists=True))
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
