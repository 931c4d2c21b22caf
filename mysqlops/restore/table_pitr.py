"""Point-in-time restore of single tables: the base backup's database on a scratch server,
that database's binlog events replayed there, then only the tables moved into the target.

Why a scratch server, and not a table-filtered replay straight into the target: neither
flavor's binlog tool filters by table in a way that is safe on a live server. MySQL's
``mysqlbinlog`` has no table filter at all; MariaDB's ``mariadb-binlog --table`` filters row
events only, so DDL of the database's other tables would still run on the target (and a
row event of the table whose structure a skipped statement changed would fail half way).
``--database=db`` is what both tools offer: row events of ``db``'s tables, and statements whose
default database was ``db``. Filtering by database is only sound against a server that holds
the whole database, so:

1. the newest full logical backup before the target (:func:`~mysqlops.restore.pitr.choose_base`)
   and the archived binlogs from its coordinates to the target are fetched and verified
   BEFORE any server is started or the target touched (a gap, a target outside the archive, a
   missing key fail here: :func:`~mysqlops.binlog.replay.fetch_binlogs`);
2. the target is checked first too: an existing target table without ``overwrite``, a view in
   its place, or the backup's own source server keeping the tables' names are refused;
3. a scratch server of the backup's own build (owner-marked: the next run removes it if this
   one is killed) gets the tables' database from the base backup, and the binlogs are replayed
   into it with ``--database=db`` up to the target (strict mode handled as for every replay);
4. every other table and view of that database is dropped on the scratch, which is then backed
   up through the ordinary logical backup (table index, encrypted with a key that lives only in
   this process) into a private directory, and the tables are restored from that backup into
   the target through the single-table path (:func:`~mysqlops.restore.tables.restore_tables`):
   ``rename`` and ``overwrite`` mean what they mean there, other tables are never touched;
5. the scratch server and every file are removed, on success and on failure.

Assumed (and said in the result's warnings): the binlogs are in ROW format (mysqlops refuses
to archive for point-in-time recovery otherwise: ``sql/requirements``), and statements that
change the database were run with it as the default database or name only it (a statement run
from another default database is filtered out by ``--database``, as both tools document).
A table that did not exist in the base backup cannot be restored this way.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mysqlops import catalog
from mysqlops.adapters import builds, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_dir
from mysqlops.backup.logical import run_backup
from mysqlops.binlog.replay import FetchedBinlogs, apply_binlogs
from mysqlops.binlog.statements import CONTROL, Statement, database_filter_problem, read_statements
from mysqlops.errors import ConfigError, RestoreError
from mysqlops.manifest import BackupManifest
from mysqlops.model import Location, RecoveryTarget, ServerSpec, binlog_sequence
from mysqlops.restore.fetch import check_key
from mysqlops.restore.logical import restore_backup
from mysqlops.restore.pitr import PitrResult, choose_base, fetch_window
from mysqlops.restore.tables import TableRestoreResult, _targets, restore_tables, select_tables
from mysqlops.restore.verify import SCRATCH_PARENT, scratch_build_name
from mysqlops.runs import RunContext
from mysqlops.sql import catalog as sqlcat
from mysqlops.streams.compression import codec
from mysqlops.streams.keys import Keyring

_DML = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b", re.IGNORECASE)


@dataclass
class TablePitrResult(PitrResult):
    """A :class:`~mysqlops.restore.pitr.PitrResult` whose ``restore`` is the move of the tables
    into the target (``replay``: the binlogs replayed on the scratch server). ``scope``:
    ``database`` (only the tables' database restored and replayed, ``--database``) or
    ``server`` (the whole base backup and every event, because ``scope_reason``);
    ``row_format``: what the replayed window showed about the binlog format."""

    restore: TableRestoreResult
    scope: str = "database"
    scope_reason: str = ""
    row_format: str = ""


def _window(fetched: FetchedBinlogs) -> list[Statement]:
    """The statements of the replay window (transaction control left out)."""
    until, out = fetched.until, list[Statement]()
    for i, (m, path) in enumerate(zip(fetched.manifests, fetched.paths, strict=True)):
        stop = until.stop_position if until is not None else None
        out.extend(
            read_statements(
                path,
                start=fetched.start.position if i == 0 else 4,
                stop_position=stop[1] if stop and binlog_sequence(stop[0]) == m.sequence else None,
                stop_time=until.time if until is not None else None,
            )
        )
    return [s for s in out if s.text is None or not CONTROL.match(s.text)]


def _row_format(window: Sequence[Statement]) -> str:
    dml = [s for s in window if s.text is not None and _DML.match(s.text)]
    if not dml:
        return "ROW: no row change was logged as a statement in the replayed window"
    return (
        f"{len(dml)} row change(s) were logged as statements (binlog_format was not ROW for them, first at "
        f"{dml[0].where}): replayed as statements, exact only if they were deterministic"
    )


def _one_database(base: BackupManifest, tables: Sequence[str], rename: Mapping[str, str]) -> tuple[str, list]:
    picks = _targets(select_tables(base, tables), dict(rename))
    databases = sorted({p.database for p in picks})
    if len(databases) != 1:
        raise ConfigError(
            f"a point-in-time restore of tables takes the tables of one database at a time (the binlog replay "
            f"filters by database); {list(tables)} name {databases}: run one restore per database"
        )
    return databases[0], picks


def _check_target(
    target: ServerSpec, base: BackupManifest, picks: Sequence, overwrite: bool, allow_source_target: bool
) -> None:
    """The target refusals of the single-table path, judged before any scratch work (they are
    judged again when the tables are loaded)."""
    with db.session(target) as conn:
        identity = db.server_identity(conn)
        source = base.extra.get("server_identity") or {}
        is_source = target.name == base.server or (
            source and all(identity.get(k) == source.get(k) for k in ("hostname", "port", "server_id"))
        )
        if is_source and not allow_source_target and not all(p.renamed for p in picks):
            raise RestoreError(
                f"target {target.name!r} is the backup's own source server {base.server!r} and the tables keep "
                "their names: restore under another name (rename={'db.t': 'db.t_restored'}) or pass "
                "allow_source_target=True. Nothing was changed"
            )
        taken = {p.target: db.scalar(conn, sqlcat.TABLE_TYPE, [p.target_db, p.target_table]) for p in picks}
    taken = {name: kind for name, kind in taken.items() if kind is not None}
    if any(kind == "VIEW" for kind in taken.values()) or (taken and not overwrite):
        raise RestoreError(
            f"{sorted(taken)} already exist on {target.name} ({', '.join(sorted(set(map(str, taken.values()))))}): "
            "pass overwrite=True to replace tables (views are never replaced), or rename={...} to restore "
            "under another name. Nothing was changed"
        )


def _keep_only(spec: ServerSpec, database: str, keep: set[str]) -> None:
    """Drop every view and table of ``database`` on the scratch server but ``keep``."""
    with db.session(spec) as conn:
        rows = db.query(conn, sqlcat.SCHEMA_TABLES, [database])
        db.execute(conn, sqlcat.NO_FOREIGN_KEY_CHECKS)
        for row in sorted(rows, key=lambda r: r["k"] != "VIEW"):  # views first
            if row["t"] in keep:
                continue
            drop = sqlcat.drop_view if row["k"] == "VIEW" else sqlcat.drop_table
            db.execute(conn, drop(database, row["t"]))


def table_point_in_time_restore(
    locations: Sequence[Location],
    server: str,
    target: ServerSpec,
    until: RecoveryTarget,
    tables: Sequence[str],
    *,
    backup_id: str = "latest",
    rename: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    sandbox_dir: str | None = None,
    ctx: RunContext | None = None,
) -> TablePitrResult:
    """Restore ``tables`` (of one database) of ``server`` into ``target`` as they were at
    ``until`` (see the module docstring). ``sandbox_dir``: where the scratch server lives
    (default: a new owner-marked directory under /tmp)."""
    ctx = ctx or RunContext()
    say, staging_dir, keyring = ctx.reporter.info, ctx.staging_dir, ctx.keyring
    if not isinstance(until, RecoveryTarget):
        raise ConfigError("point-in-time recovery needs a RecoveryTarget (RecoveryTarget.parse(until=...))")
    rename = dict(rename or {})
    copies = choose_base(catalog.scan(locations), server, until, backup_id)
    base = copies[0][1]
    if base.coordinates is None:
        raise RestoreError(
            f"backup {base.backup_id} records no binlog coordinates: point-in-time recovery cannot start from it"
        )
    database, picks = _one_database(base, tables, rename)
    check_key(base, keyring)
    _check_target(target, base, picks, overwrite, allow_source_target)
    say(
        f"base backup {base.backup_id} (coordinates {base.coordinates.file}:{base.coordinates.position}); "
        f"tables {[p.name for p in picks]} via a scratch server"
    )
    reaper.reap([staging_dir, sandbox_dir], log=say)
    with contextlib.ExitStack() as stack:
        # nothing is started before every binlog is fetched and verified
        fetched = stack.enter_context(fetch_window(locations, server, base.coordinates, until, ctx))
        say(f"fetched and verified {len(fetched.paths)} archived binlog file(s)")
        window = _window(fetched)
        row_format = _row_format(window)
        problem = database_filter_problem(window, database, base.databases)
        scope, reason = (
            ("database", f"only {database}'s events were needed") if problem is None else ("server", problem)
        )
        say(
            f"replay scope: {'the database ' + database if problem is None else 'every database'} ({reason}); "
            f"binlog format: {row_format}"
        )
        build = builds.resolve(scratch_build_name(base), log=say)
        root = sandbox_dir or stack.enter_context(private_dir(SCRATCH_PARENT, "mysqlops-tpitr-"))
        scratch = sandbox.start_server(
            root,
            f"tpitr-{base.backup_id[-6:]}",
            server_id=951,
            tuned=True,
            binary=build,
            scratch=True,
            extra_options=["--event-scheduler=OFF"],  # MySQL starts it: restored events must not run
        )
        stack.callback(sandbox.stop_server, scratch)
        spec = scratch.spec(name=f"scratch-tpitr-{base.backup_id[-6:]}")
        restore_backup(
            copies,
            spec,
            databases=[database] if scope == "database" else None,
            staging_dir=staging_dir,
            keyring=keyring,
            log=say,
            reap_leftovers=False,
        )
        replay = apply_binlogs(
            spec, fetched, database=database if scope == "database" else None, timeout=ctx.timeout
        )
        say(
            f"replayed {len(replay.files)} binlog file(s) of {database} up to {replay.stop} on the scratch server"
        )
        _keep_only(spec, database, {p.table for p in picks})
        missing = {p.table for p in picks} - set(_tables_of(spec, database))
        if missing:
            raise RestoreError(
                f"table(s) {sorted(missing)} of {database} do not exist at {replay.stop} (dropped before it?): "
                "pick an earlier point in time. Nothing was changed on the target"
            )
        # the tables go to the target through the single-table path, from a backup of the
        # scratch encrypted with a key only this process holds
        moved_dir = stack.enter_context(private_dir(staging_dir, "mysqlops-tpitr-move-"))
        key = os.urandom(32)
        where = Location("scratch", f"file://{moved_dir}")
        made = run_backup(
            spec,
            [where],
            codec("zstd"),
            databases=[database],
            staging_dir=staging_dir,
            log=say,
            encryption_key=key,
        )
        moved = restore_tables(
            catalog.find_backup(catalog.scan([where]), spec.name, made.manifest.backup_id),
            target,
            [p.name for p in picks],
            rename=rename,
            overwrite=overwrite,
            allow_source_target=True,  # judged above against the real source (the scratch is not it)
            staging_dir=staging_dir,
            log=say,
            load_timeout=ctx.timeout,
            keyring=Keyring(key),
        )
    moved.backup_id = base.backup_id
    moved.server = base.server
    if not row_format.startswith("ROW"):
        moved.warnings = [*moved.warnings, row_format]
    say(f"restored {moved.databases} as of {replay.stop}; scratch server removed")
    return TablePitrResult(moved, replay, base, scope, reason, row_format)


def _tables_of(spec: ServerSpec, database: str) -> list[str]:
    with db.session(spec) as conn:
        return [str(r["t"]) for r in db.query(conn, sqlcat.BASE_TABLES, [database])]
