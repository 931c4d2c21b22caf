"""Single-table and partial restore from a backup's table index.

A logical backup made with a table index (``BackupFile.table_index``) stores each table's
structure, data and triggers as sections compressed on their own. Restoring a few tables reads
only those byte ranges (a ranged GET on S3), checks each section's sha256 (and, encrypted, the
authentication of every chunk it spans) into a private staging directory, and only then loads
them as one dump stream (a fixed session preamble; per table its target database's marker and
``USE``, the structure ``DROP TABLE IF EXISTS`` + ``CREATE TABLE``, the rows, the triggers)
through the parallel loader every logical restore uses (:mod:`mysqlops.restore.parallel`):
the rows over their own connection with non-unique secondary keys and foreign keys added after
them from the original DDL, triggers last through the server's own client.

- ``tables``: ``["shop.orders", "shop.order_*"]`` (``database.table``; shell patterns on the
  table part, split at the first dot).
- ``rename``: ``{"shop.orders": "shop.orders_restored"}`` (or ``"orders_restored"``: same
  database), ``{"shop": "shop_copy"}`` (every selected table of ``shop``). A renamed table gets
  its constraint names renamed too (they are unique per database); its triggers are NOT
  restored (their bodies name the original table), a warning says so.
- An existing target table is refused unless ``overwrite=True``. Other tables are never
  touched: the statements sent are those of the selected tables' own sections only.
- A failed load drops the tables it created or left half loaded (and the databases it
  created); a replaced table (``overwrite=True``) loaded completely before another table
  failed stays, otherwise the error says its old rows are gone.
- A section that fails its check at one location (corrupt, truncated, missing) is reported
  and the table is fetched from the next location; nothing touches the target until every
  selected table has a verified copy.
- A backup without a table index is refused with a clear error (restore the whole database
  under another name, or take a new backup).
"""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.errors import (
    ConfigError,
    ProcessError,
    RestoreError,
)
from mysqlops.manifest import BackupFile, BackupManifest, TableSections, validate_backup_manifest
from mysqlops.model import Location, ServerSpec
from mysqlops.progress import Progress, Ticker
from mysqlops.restore.fetch import check_key
from mysqlops.restore.load import LoadOptions
from mysqlops.restore.logical import RestoreResult, is_source_server, load_client, progress_reporter
from mysqlops.restore.parallel import ParallelLoader, TableFn
from mysqlops.restore.rename import TableRenamer
from mysqlops.restore.sections import PARTS, fetch_table
from mysqlops.runs import RunContext
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.streams.checksum import iter_chunks
from mysqlops.streams.compression import codec_from_label

_READ = 1 << 20

PREAMBLE = (
    b"/*!40101 SET NAMES utf8mb4 */;\n"
    b"/*!40103 SET TIME_ZONE='+00:00' */;\n"
    b"/*!40014 SET UNIQUE_CHECKS=0, FOREIGN_KEY_CHECKS=0 */;\n"
    b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
    b"/*!40111 SET SQL_NOTES=0 */;\n"
)


@dataclass
class TableRestoreResult(RestoreResult):
    """``databases`` maps ``db.table`` to ``target_db.target_table``."""

    fetched_bytes: int = 0  # stored bytes read from the locations
    rows: dict[str, int] = field(default_factory=dict)  # target table -> rows after the load
    keys_deferred: list[str] = field(
        default_factory=list
    )  # target tables whose keys were added after the rows


@dataclass(frozen=True)
class _Pick:
    database: str
    table: str
    file: BackupFile
    index: TableSections
    target_db: str
    target_table: str

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"

    @property
    def target(self) -> str:
        return f"{self.target_db}.{self.target_table}"

    @property
    def renamed(self) -> bool:
        return (self.database, self.table) != (self.target_db, self.target_table)

    @property
    def renamed_table(self) -> bool:
        return self.table != self.target_table


def _split(name: str, what: str) -> tuple[str, str]:
    database, dot, table = name.partition(".")
    if not dot or not database or not table:
        raise ConfigError(
            f"{what} {name!r} is not 'database.table' (shell patterns allowed in the table part)"
        )
    return database, table


def select_tables(
    manifest: BackupManifest, patterns: Sequence[str]
) -> list[tuple[BackupFile, TableSections]]:
    """The indexed tables ``patterns`` name, in backup order. Refuses a pattern that names
    nothing and a backup without a table index."""
    if isinstance(patterns, str) or not patterns:
        raise ConfigError("tables must be a non-empty list of 'database.table' names or patterns")
    files = {f.database: f for f in manifest.files if f.database is not None}
    picked: list[tuple[BackupFile, TableSections]] = []
    for pattern in patterns:
        database, table_pattern = _split(pattern, "table")
        f = files.get(database)
        if f is None:
            raise ConfigError(
                f"backup {manifest.backup_id} has no database {database!r} (for {pattern!r}); "
                f"it holds {list(manifest.databases)}"
            )
        if not f.table_index:
            raise ConfigError(
                f"backup {manifest.backup_id} was made without a table index (before mysqlops recorded one), so "
                f"single tables cannot be read from it: restore the whole database with databases=[{database!r}] "
                "and rename={...} and copy the table from there, or restore from a newer backup"
            )
        hits = [t for t in f.table_index if fnmatch.fnmatchcase(t.table, table_pattern)]
        if not hits:
            names = [t.table for t in f.table_index]
            raise ConfigError(
                f"no table of {database!r} in backup {manifest.backup_id} matches {table_pattern!r}; its tables: "
                f"{names[:30]}{' ...' if len(names) > 30 else ''} (views, routines and events are not restored "
                "one by one)"
            )
        for t in hits:
            if (f, t) not in picked:
                picked.append((f, t))
    return picked


def _targets(picked: Sequence[tuple[BackupFile, TableSections]], rename: Mapping[str, str]) -> list[_Pick]:
    names = {f"{f.database}.{t.table}" for f, t in picked}
    databases = {f.database for f, _ in picked}
    for key in rename:
        if key not in names and key not in databases:
            raise ConfigError(
                f"rename names {key!r}, which is not among the tables being restored ({sorted(names)})"
            )
    out = []
    for f, t in picked:
        assert f.database is not None
        name = f"{f.database}.{t.table}"
        target_db, target_table = rename.get(f.database, f.database), t.table
        if name in rename:
            new = rename[name]
            if not new:
                raise ConfigError(f"rename of {name!r} is empty")
            target_db, target_table = _split(new, "rename target") if "." in new else (target_db, new)
        q(target_db), q(target_table)  # refuses names MySQL cannot hold
        out.append(_Pick(f.database, t.table, f, t, target_db, target_table))
    seen: dict[str, str] = {}
    for p in out:
        if p.target in seen:
            raise ConfigError(f"{seen[p.target]} and {p.name} would both be restored as {p.target}")
        seen[p.target] = p.name
    return out


def _decompressed(path: str, compression: str) -> Iterator[bytes]:
    dec = codec_from_label(compression).decompressor()
    with open(path, "rb") as src:
        for chunk in iter_chunks(src, _READ):
            raw = dec.decompress(chunk)
            if raw:
                yield raw
    yield dec.finish()


def _table_stream(
    fetched: Sequence[tuple[_Pick, Mapping[str, str], str]],
    compression: str,
    on_bytes: Callable[[str, int], None],
    structure_done: Callable[[_Pick], None],
) -> Iterator[bytes]:
    """The selected tables' sections as one dump stream for the parallel loader: a fixed
    session preamble, then per table its target database (the marker and ``USE`` a dump
    writes), its structure (checked and renamed before one byte of it is sent), its rows and,
    under its own name, its triggers. ``structure_done(pick)`` runs once the loader has taken
    the whole structure (its ``DROP``/``CREATE`` ran)."""
    yield PREAMBLE
    for pick, paths, _where in fetched:
        yield b"--\n-- Current Database: " + q(pick.target_db).encode() + b"\n--\n\n"
        yield sqlcat.use_database(pick.target_db).encode()
        renamer = TableRenamer(pick.table, pick.target_table) if pick.renamed_table else None
        for part in PARTS:
            if part not in paths or (part == "triggers" and pick.renamed):
                continue
            if part == "structure":  # small: whole, so a failed rename sends nothing
                raw = b"".join(_decompressed(paths[part], compression))
                on_bytes(pick.target_db, len(raw))
                text = renamer.feed(raw) + renamer.finish() if renamer else raw
                if renamer is not None and renamer.created != 1:
                    raise RestoreError(
                        f"the structure section of {pick.name} has {renamer.created} statements creating it "
                        "(expected 1): not renamed, nothing of it sent"
                    )
                yield text
                structure_done(pick)  # resumed: the loader ran what it was given
                continue
            for raw in _decompressed(paths[part], compression):
                on_bytes(pick.target_db, len(raw))
                yield renamer.feed(raw) if renamer else raw
            if renamer:
                yield renamer.finish()


# --------------------------------------------------------------------------- entry point
def restore_tables(
    copies: Sequence[tuple[Location, BackupManifest]],
    target: ServerSpec,
    tables: Sequence[str],
    ctx: RunContext | None = None,
    *,
    rename: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    load: LoadOptions | None = None,
    on_table: TableFn | None = None,
) -> TableRestoreResult:
    """Restore the tables ``tables`` names (see the module docstring) into ``target``, through
    the parallel loader (secondary keys and foreign keys after the rows, triggers last).
    ``ctx``: staging directory, keyring, reporter, client timeout (as for ``restore_backup``);
    ``load``: connections and statement timeout (``workers=0``: one connection, keys as dumped)."""
    ctx = ctx or RunContext()
    load = load or LoadOptions()
    say = ctx.reporter.info
    if not copies:
        raise ConfigError("no copy of the backup to restore from")
    for _location, copy in copies:
        validate_backup_manifest(copy)
    manifest = copies[0][1]
    check_key(manifest, ctx.keyring)
    key_for_files = ctx.keyring if manifest.encryption_key_id else None
    picks = _targets(select_tables(manifest, tables), dict(rename or {}))
    with db.session(target) as conn:
        renamed_all = all(p.renamed for p in picks)
        if is_source_server(conn, target, manifest) and not allow_source_target and not renamed_all:
            raise RestoreError(
                f"target {target.name!r} is the backup's own source server {manifest.server!r} and the tables keep "
                "their names: that would overwrite production tables. Restore under another name "
                "(rename={'db.t': 'db.t_restored'}) or pass allow_source_target=True"
            )
        existing: dict[str, str] = {}
        for p in picks:
            kind = db.scalar(conn, sqlcat.TABLE_TYPE, [p.target_db, p.target_table])
            if kind is not None:
                existing[p.target] = str(kind)
        views = [t for t, k in existing.items() if k == "VIEW"]
        if views:
            raise RestoreError(
                f"{views} exist on {target.name} as views: a table cannot replace them; drop them first"
            )
        if existing and not overwrite:
            raise RestoreError(
                f"table(s) {sorted(existing)} already exist on {target.name}; pass overwrite=True to replace them, "
                "or rename={...} to restore under another name. Nothing was changed"
            )
        databases = {p.target_db for p in picks}
        missing_dbs = [d for d in sorted(databases) if not db.scalar(conn, sqlcat.SCHEMA_EXISTS, [d])]
        version = db.server_version(conn)
    program = load_client(version)
    warnings = [
        f"the triggers of {p.name} were not restored: it was restored as {p.target} and trigger bodies name "
        "the original table; recreate them by hand if needed"
        for p in picks
        if p.renamed and p.index.triggers is not None
    ]
    staging = private_tempdir(ctx.staging_dir, "mysqlops-tables-")
    durations: dict[str, float] = {}
    problems: list[str] = []
    created_dbs: list[str] = []
    touched: list[_Pick] = []  # their DROP/CREATE ran: the old table (if any) is gone
    completed: set[str] = set()  # rows and deferred keys in
    lock = threading.Lock()
    try:
        t0 = time.monotonic()
        fetched = []
        total_read = 0
        for p in picks:
            paths, where, read = fetch_table(copies, p.file, p.table, staging, key_for_files, say, problems)
            fetched.append((p, paths, where))
            total_read += read
        durations["download"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        if missing_dbs:
            with db.session(target) as conn:
                for d in missing_dbs:
                    db.execute(conn, sqlcat.create_database(d))
                    created_dbs.append(d)
        total = sum(
            getattr(p.index, part).raw_bytes
            for p in picks
            for part in PARTS
            if getattr(p.index, part) is not None and not (part == "triggers" and p.renamed)
        )
        ticker = Ticker(
            Progress(time.monotonic(), total, stage="load"), progress_reporter(ctx), ctx.progress_interval
        )
        sent = 0

        def on_bytes(database: str, n: int) -> None:
            nonlocal sent
            sent += n
            ticker.add(database, n)

        def structure_done(p: _Pick) -> None:
            if p.target in existing:
                say(f"replacing existing table {p.target} on {target.name} (overwrite=True)")
            touched.append(p)

        by_target = {(p.target_db, p.target_table): (p, where) for p, _paths, where in fetched}

        def table_in(database: str, table: str) -> None:
            p, where = by_target[(database, table)]
            with lock:
                completed.add(p.target)
            say(f"loaded table {p.name} as {p.target} from {where}")
            if on_table is not None:
                on_table(database, table)

        loader = ParallelLoader(
            target,
            program,
            staging,
            workers=max(1, load.connections),
            timeout=ctx.timeout,
            on_table=table_in,
            log=say,
            defer=load.connections > 0,
            seal_spool=key_for_files is not None,
            statement_timeout=load.statement_timeout,
        )
        stats = loader.load(_table_stream(fetched, manifest.compression, on_bytes, structure_done))
        ticker.done()
        durations["load"] = round(time.monotonic() - t1, 3)
        touched.clear()  # every table loaded: nothing to undo from here on
        created_dbs.clear()
        with db.session(target) as conn:
            rows = {
                p.target: int(db.scalar(conn, sqlcat.count_rows(p.target_db, p.target_table))) for p in picks
            }
        return TableRestoreResult(
            backup_id=manifest.backup_id,
            server=manifest.server,
            target=target.name,
            databases={p.name: p.target for p in picks},
            locations_used={p.name: where for p, _paths, where in fetched},
            problems=problems,
            durations=durations,
            raw_bytes=sent,
            warnings=warnings,
            fetched_bytes=total_read,
            rows=rows,
            keys_deferred=[
                p.target for p in picks if f"{q(p.target_db)}.{q(p.target_table)}" in stats.deferred
            ],
        )
    except (ProcessError, RestoreError) as exc:
        replaced = _undo(target, touched, completed, existing, created_dbs)
        what = ", ".join(f"{p.name} as {p.target}" for p in picks)
        message = f"loading table{'s' if len(picks) > 1 else ''} {what} into {target.name} failed: {exc}"
        if replaced:
            message += (
                f". The existing table(s) {', '.join(replaced)} were being replaced (overwrite=True): their old rows "
                "are gone and the partly loaded tables were dropped; restore them again once the cause is fixed"
            )
        if isinstance(exc, ProcessError):
            raise type(exc)(message, returncode=exc.returncode, stderr_tail=exc.stderr_tail) from None
        raise type(exc)(message) from None
    except BaseException:
        _undo(target, touched, completed, existing, created_dbs)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _undo(
    target: ServerSpec,
    touched: Sequence[_Pick],
    completed: set[str],
    existing: Mapping[str, str],
    created_dbs: Sequence[str],
) -> list[str]:
    """After a failed load: drop the tables this run created or left half loaded, and the
    databases it created. A table that replaced an existing one (overwrite=True) and was loaded
    completely stays, unless the failure came after every table (foreign keys, triggers: which
    table it hit is not known). Returns the replaced tables dropped (their old rows are gone)."""
    all_in = bool(touched) and all(p.target in completed for p in touched)
    replaced = []
    with contextlib.suppress(Exception), db.session(target) as conn:
        for p in touched:
            if p.target in existing and p.target in completed and not all_in:
                continue
            db.execute(conn, sqlcat.drop_table(p.target_db, p.target_table))
            if p.target in existing:
                replaced.append(p.target)
        for d in created_dbs:
            db.execute(conn, sqlcat.drop_database(d, if_exists=True))
    return replaced
