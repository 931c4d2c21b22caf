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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops import redact
from mysqlops.adapters import clients, process, reaper
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.errors import (
    ConfigError,
    PreflightFailed,
    ProcessError,
    RestoreError,
)
from mysqlops.manifest import BackupManifest, validate_backup_manifest
from mysqlops.model import Location, ObjectCounts, ServerSpec
from mysqlops.progress import Progress, ProgressFn, Ticker
from mysqlops.restore.fetch import check_key, fetch_backup_files
from mysqlops.restore.lines import AT_LINE_RE, DumpLines
from mysqlops.restore.parallel import TableFn, default_workers, load_file_parallel
from mysqlops.restore.rename import RenameRefused, RenameRewriter, rename_refusals
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.sql.restore_grants import RESTORE_FLAGS, missing_restore_privileges
from mysqlops.streams.checksum import CHUNK, iter_chunks
from mysqlops.streams.compression import codec_from_label
from mysqlops.streams.crypto import Decryptor, Keyring
from mysqlops.tools.client import Program, client_option_file, mysql_argv

# --------------------------------------------------------------------------- loading


def load_file(
    path: str,
    compression: str,
    target: ServerSpec,
    program: Program,
    rename: Mapping[str, str],
    on_bytes: Callable[[int], None] | None = None,
    timeout: float | None = None,
    keyring: Keyring | None = None,
) -> None:
    """Stream-decrypt (when encrypted) and decompress ``path`` (with renames) into the real
    client on ``target``.

    A failed load raises :class:`ProcessError` naming the line and the object it was loading
    (``data of table `t```), the error code and a message without values: the client's echo
    of the statement (rows of the table) and quoted values never reach the exception."""
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    rewriter = RenameRewriter(rename)
    lines = DumpLines()
    name = os.path.basename(path)

    def send(sink: Any, raw: bytes) -> None:
        out = rewriter.feed(raw)
        lines.feed(out)
        sink.write(out)

    try:
        with (
            process.Pipeline(
                [mysql_argv(program)],
                credentials=client_option_file(target),
                stdin=process.PIPE,
                stdout=process.DEVNULL,
                timeout=timeout,
                name=f"load of {name}",
                stderr_filter=redact.client_stderr,
            ) as pipe,
            open(path, "rb") as src,
        ):
            sink = pipe.stdin_pipe
            try:
                for chunk in iter_chunks(src, CHUNK):
                    plain = decryptor.update(chunk) if decryptor is not None else chunk
                    raw = dec.decompress(plain)
                    if raw:
                        send(sink, raw)
                        if on_bytes:
                            on_bytes(len(raw))
                if decryptor is not None:
                    rest = decryptor.finalize()  # raises on truncation/tampering: the load is rolled back
                    if rest:
                        send(sink, dec.decompress(rest))
                send(sink, dec.finish())
                last = rewriter.finish()
                lines.feed(last)
                sink.write(last)
            except BrokenPipeError:
                pass  # the client died: wait() reports its error
            pipe.wait()
    except ProcessError as exc:
        found = AT_LINE_RE.search(str(exc))
        where = f" at line {found.group(1)} ({lines.where(int(found.group(1)))})" if found else ""
        raise type(exc)(
            f"loading {name} into {target.name} failed{where}: {exc}",
            returncode=exc.returncode,
            stderr_tail=exc.stderr_tail,
        ) from None


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


def restore_backup(
    copies: Sequence[tuple[Location, BackupManifest]],
    target: ServerSpec,
    *,
    databases: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    staging_dir: str | None = None,
    progress: ProgressFn | None = None,
    progress_interval: float = 5.0,
    log: Callable[[str], None] | None = None,
    load_timeout: float | None = 24 * 3600,
    keyring: Keyring | None = None,
    reap_leftovers: bool = True,
    workers: int | None = None,
    on_table: TableFn | None = None,
    tables: Sequence[str] | None = None,
) -> RestoreResult:
    """Restore one backup (its copies in location preference order) into ``target``.
    Encrypted backups need ``keyring`` holding the key whose id the manifest records.
    ``reap_leftovers``: first remove what killed runs left (:mod:`mysqlops.adapters.reaper`).
    ``workers``: tables load in parallel over this many connections with secondary indexes
    and foreign keys added after the rows (:mod:`mysqlops.restore.parallel`; default: one per
    core); ``0`` pipes each file through one client as it is. ``on_table(database, table)``
    runs (in a loading thread) as soon as a table is fully loaded, parallel loads only.
    ``tables``: only these tables (``["shop.orders", "shop.order_*"]``), read by ranged reads
    from the backup's table index; ``rename`` then maps ``db.table`` or ``db`` names (see
    :mod:`mysqlops.restore.tables`)."""
    say = log or (lambda _m: None)
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
            rename=rename,
            overwrite=overwrite,
            allow_source_target=allow_source_target,
            staging_dir=staging_dir,
            log=say,
            load_timeout=load_timeout,
            keyring=keyring,
            progress=progress,
            progress_interval=progress_interval,
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
        identity = db.server_identity(conn)
        source_identity = manifest.extra.get("server_identity") or {}
        same = target.name == manifest.server or (
            source_identity
            and all(identity.get(k) == source_identity.get(k) for k in ("hostname", "port", "server_id"))
        )
        if same and not allow_source_target:
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
    load_clients = clients.for_server(version)
    client_problems, _warnings = clients.check(load_clients, version, roles=("client",))
    if client_problems:
        raise RestoreError("; ".join(client_problems))
    program = load_clients.mysql
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
        ticker = Ticker(Progress(time.monotonic(), total, stage="load"), progress, progress_interval)
        t1 = time.monotonic()

        with db.session(target) as conn:
            for source_db, state in states.items():
                if state == "nonempty":  # overwrite=True, and every copy passed its sha256 check
                    say(f"dropping existing {targets[source_db]!r} on {target.name} (overwrite=True)")
                    db.execute(conn, sqlcat.drop_database(targets[source_db]))
                if state in ("nonempty", "absent"):
                    created.append(targets[source_db])
        n_workers = default_workers() if workers is None else workers
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
                    timeout=load_timeout,
                    keyring=file_key,
                    workers=n_workers,
                    on_table=on_table,
                    log=say,
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
                ff.path, manifest.compression, target, program, renames, on_bytes, load_timeout, file_key
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
