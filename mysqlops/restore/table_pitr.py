"""Point-in-time restore of single tables: rebuilt on a scratch server from the base backup
and the archived binlog events they need, then only the tables moved into the target.

Why a scratch server, and not a table-filtered replay straight into the target: neither
flavor's binlog tool filters by table in a way that is safe on a live server. MySQL's
``mysqlbinlog`` has no table filter; MariaDB's ``mariadb-binlog --table`` filters row events
only (other tables' DDL still runs) and, measured on 10.11, prints invalid SQL for a
transaction that changed the table and another one (an UPDATE whose trigger writes to an
audit table loses its ``BINLOG '`` head). ``--database=db`` (both tools) keeps row events of
``db``'s tables and statements whose DEFAULT database was ``db``: a statement run from another
default database is dropped even when it changes ``db`` (measured: ``ALTER TABLE shop.orders
ADD COLUMN`` on a connection without ``USE`` was dropped, and the following row events went
into the narrower table without an error). So the replay's scope is chosen from the window's
own events (:mod:`mysqlops.binlog.statements`), the narrowest that is exact:

- ``table`` (MariaDB, one table): no statement run from ``db`` names another of its tables, no
  row change logged as a statement, no transaction changed the table with another one, and
  the table has no foreign keys (changes cascaded from a parent are not in the binlog): only
  the table is restored on the scratch (single-table path, ranged reads) and replayed with
  ``--database=db --table=t``;
- ``database``: no statement from another default database names ``db`` and none from ``db``
  names another database: ``db`` is restored and replayed with ``--database=db``;
- ``server``: otherwise, the whole base backup and every event (a full point-in-time recovery
  on the scratch).

Steps: the base backup (:func:`~mysqlops.restore.pitr.choose_base`) and every binlog of the
window are fetched and verified, and the target is checked (an existing target table without
``overwrite``, a view in its place, the backup's own source keeping the names are refused),
BEFORE a scratch server of the backup's build is started (owner-marked: if this process is
killed, the next run's reaper stops and removes it). After the replay every other table and
view of ``db`` is dropped on the scratch, which is backed up through the ordinary logical
backup (table index; encrypted with a key that lives only in this process) into a private
directory, and the tables are restored from there into the target by the single-table path
(:func:`~mysqlops.restore.tables.restore_tables`): ``rename`` and ``overwrite`` mean what they
mean there, other tables are never touched. The scratch server and every file are removed,
on success and on failure. A table that did not exist in the base backup cannot be restored
this way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mysqlops import catalog
from mysqlops.adapters import builds, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_dir
from mysqlops.backup.logical import run_backup
from mysqlops.backup.request import BackupRequest
from mysqlops.binlog.replay import FetchedBinlogs, apply_binlogs
from mysqlops.binlog.statements import (
    CONTROL,
    DML,
    Statement,
    Transaction,
    database_filter_problem,
    read_statements,
    table_filter_problem,
)
from mysqlops.errors import ConfigError, RestoreError
from mysqlops.manifest import BackupManifest
from mysqlops.model import Flavor, Location, RecoveryTarget, ServerSpec, binlog_sequence
from mysqlops.restore.fetch import check_key
from mysqlops.restore.logical import restore_backup
from mysqlops.restore.pitr import PitrResult, choose_base, fetch_window
from mysqlops.restore.tables import TableRestoreResult, _Pick, _targets, restore_tables, select_tables
from mysqlops.restore.verify import SCRATCH_PARENT, scratch_build_name
from mysqlops.runs import RunContext
from mysqlops.sql import catalog as sqlcat
from mysqlops.streams.keys import Keyring


@dataclass
class TablePitrResult(PitrResult):
    """A :class:`~mysqlops.restore.pitr.PitrResult` whose ``restore`` is the move of the tables
    into the target (``replay``: the binlogs replayed on the scratch server). ``scope``:
    ``table`` (only the table restored and its row events replayed), ``database`` (only its
    database, ``--database``) or ``server`` (the whole base backup and every event), and
    ``scope_reason`` why (see the module docstring); ``row_format``: what the replayed window
    showed about the binlog format."""

    restore: TableRestoreResult
    scope: str = "database"
    scope_reason: str = ""
    row_format: str = ""


def _window(fetched: FetchedBinlogs) -> list[Statement | Transaction]:
    """The statements and transactions of the replay window (transaction control left out)."""
    until, out = fetched.until, list[Statement | Transaction]()
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
    return [s for s in out if not isinstance(s, Statement) or s.text is None or not CONTROL.match(s.text)]


def _row_format(window: Sequence[Statement | Transaction]) -> str:
    dml = [s for s in window if isinstance(s, Statement) and s.text is not None and DML.match(s.text)]
    if not dml:
        return "ROW: no row change was logged as a statement in the replayed window"
    return (
        f"{len(dml)} row change(s) were logged as statements (binlog_format was not ROW for them, first at "
        f"{dml[0].where}): replayed as statements, exact only if they were deterministic"
    )


def _choose_scope(
    window: Sequence[Statement | Transaction], base: BackupManifest, database: str, picks: Sequence[_Pick]
) -> tuple[str, str]:
    """``table`` (only the table restored and its row events replayed: MariaDB, one table),
    ``database`` (its database and ``--database``) or ``server`` (everything), and why."""
    problem = database_filter_problem(window, database, base.databases)
    if problem is not None:
        return "server", problem
    if len(picks) != 1:
        return "database", "several tables (a replay filters by one table at most)"
    if base.flavor != Flavor.MARIADB.value:
        return "database", "mysqlbinlog has no table filter"
    tables = [t.table for f in base.files if f.database == database for t in f.table_index or ()]
    problem = table_filter_problem(window, database, picks[0].table, tables)
    if problem is not None:
        return "database", problem
    return "table", f"no statement of the window names another table of {database}"


def _load_scratch(
    copies: Sequence[tuple[Location, BackupManifest]],
    spec: ServerSpec,
    scope: str,
    reason: str,
    database: str,
    picks: Sequence[_Pick],
    ctx: RunContext,
) -> tuple[str, str]:
    """Load the scratch server for ``scope``; a table with foreign keys takes its whole
    database after all (changes cascaded from a parent table are not in the binlog)."""
    say = ctx.reporter.info
    if scope == "table":
        (pick,) = picks
        restore_tables(copies, spec, [pick.name], ctx)
        with db.session(spec) as conn:
            if not db.scalar(conn, sqlcat.TABLE_FOREIGN_KEYS, [database, pick.table]):
                return scope, reason
            db.execute(conn, sqlcat.drop_database(database))
        scope, reason = (
            "database",
            f"{pick.name} has foreign keys (changes cascaded to it are not in the binlog)",
        )
        say(f"replay scope: {scope} ({reason})")
    restore_backup(
        copies,
        spec,
        ctx,
        databases=[database] if scope == "database" else None,
        reap_leftovers=False,
    )
    return scope, reason


def _one_database(
    base: BackupManifest, tables: Sequence[str], rename: Mapping[str, str]
) -> tuple[str, list[_Pick]]:
    picks = _targets(select_tables(base, tables), dict(rename))
    databases = sorted({p.database for p in picks})
    if len(databases) != 1:
        raise ConfigError(
            f"a point-in-time restore of tables takes the tables of one database at a time (the binlog replay "
            f"filters by database); {list(tables)} name {databases}: run one restore per database"
        )
    return databases[0], picks


def _check_target(
    target: ServerSpec,
    base: BackupManifest,
    picks: Sequence[_Pick],
    overwrite: bool,
    allow_source_target: bool,
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
        scope, reason = _choose_scope(window, base, database, picks)
        say(f"replay scope: {scope} ({reason}); binlog format: {row_format}")
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
        scope, reason = _load_scratch(copies, spec, scope, reason, database, picks, ctx)
        replay = apply_binlogs(
            spec,
            fetched,
            database=database if scope != "server" else None,
            table=picks[0].table if scope == "table" else None,
            timeout=ctx.timeout,
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
            BackupRequest(spec, (where,), databases=(database,)),
            dataclasses.replace(ctx, staging_dir=staging_dir, keyring=Keyring(key)),
        )
        moved = restore_tables(
            catalog.find_backup(catalog.scan([where]), spec.name, made.manifest.backup_id),
            target,
            [p.name for p in picks],
            dataclasses.replace(ctx, keyring=Keyring(key)),
            rename=rename,
            overwrite=overwrite,
            allow_source_target=True,  # judged above against the real source (the scratch is not it)
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
