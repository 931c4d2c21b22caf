"""Physical backups of MySQL through the CLONE plugin (``CLONE LOCAL DATA DIRECTORY``).

Debian carries no xtrabackup for MySQL 8.4/9.x; the server's own CLONE plugin makes a
consistent physical copy of every InnoDB table (and the data dictionary, the grant tables)
while the server runs. The copy is made BY THE SERVER, on the server's host, into a directory
that must not exist yet: here ``<staging>/mysqlops-clone-XXXX/data`` (the parent is private,
0700, and carries the owner marker, so a killed run's copy is removed by the next run's
reaper). Then it takes the same road as a mariabackup stream: ``tar`` of the copy →
compression → optional encryption → sha256 → ONE staging file (``backup.tar.zst``) → upload to
every location with read-back verification → manifest last (method ``physical``,
``extra.physical_tool = "clone"``, ``extra.stream_format = "tar"``). The copy needs no
prepare step: a MySQL server of the same build starts on it directly (InnoDB recovery runs
at the first start).

Coordinates. ``performance_schema.clone_status`` gives the binlog file, position and GTID set
of the copy for a remote clone; for a LOCAL clone MySQL (9.7.4, measured) leaves them empty.
Then ``performance_schema.log_status`` (one consistent read of binlog position and
``gtid_executed``; BACKUP_ADMIN) is read just before and just after the clone: the manifest
records the BEFORE point (a lower bound of the copy: replaying binlogs from it with GTID
auto-skip never misses a transaction) and ``extra.clone.coordinates_exact`` says whether
nothing was committed during the clone (before == after: the point is exact).

Requirements (checked before anything is written, each with the statement that fixes it):
the clone plugin ACTIVE (``INSTALL PLUGIN clone SONAME 'mysql_clone.so'``), BACKUP_ADMIN for
the backup account, every table of the user databases in InnoDB (CLONE copies InnoDB data only:
a MyISAM/CSV/MEMORY table would be restored EMPTY, so such a server is refused, naming them), the datadir visible here (the server is on this host) and owned by this
process's user (the server writes the copy into our private directory, which we then read),
room for the uncompressed copy plus the compressed stream. Only full backups: the
incremental part of MySQL backups is binlog archiving (``archive-binlogs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mysqlops.adapters import mysql as db
from mysqlops.adapters import process
from mysqlops.adapters.localfs import private_tempdir, tree_bytes
from mysqlops.backup.instance import LOG_BIN_OFF, Source, StreamRun, destination_problems
from mysqlops.backup.logical import BackupResult
from mysqlops.errors import IntegrityError, MysqlopsError, PreflightFailed
from mysqlops.model import BinlogCoordinates, ServerSpec
from mysqlops.sql import clone as clone_sql
from mysqlops.sql.quoting import quote_identifier
from mysqlops.streams.keys import key_id
from mysqlops.tools.physical import TAR_FORMAT, tar_create_argv
from mysqlops.units import human_bytes

if TYPE_CHECKING:
    from mysqlops.backup.request import BackupRequest
    from mysqlops.runs import RunContext

ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142


@dataclass(frozen=True)
class LogStatus:
    """One read of ``performance_schema.log_status``: binlog position and gtid_executed."""

    file: str
    position: int
    gtid_executed: str

    def coordinates(self) -> BinlogCoordinates | None:
        if not self.file:
            return None
        return BinlogCoordinates(self.file, self.position, self.gtid_executed or None)


def parse_log_status(local: Any) -> LogStatus:
    """The ``LOCAL`` column of ``performance_schema.log_status`` (JSON text or a dict)."""
    data = json.loads(local) if isinstance(local, (str, bytes)) else dict(local or {})
    gtid = " ".join(str(data.get("gtid_executed") or "").split())
    return LogStatus(
        str(data.get("binary_log_file") or ""), int(data.get("binary_log_position") or 0), gtid.strip()
    )


def clone_status_coordinates(row: dict[str, Any] | None) -> BinlogCoordinates | None:
    """Coordinates from a ``performance_schema.clone_status`` row, when the server filled them."""
    if not row or not row.get("BINLOG_FILE"):
        return None
    gtid = " ".join(str(row.get("GTID_EXECUTED") or "").split()) or None
    return BinlogCoordinates(str(row["BINLOG_FILE"]), int(row.get("BINLOG_POSITION") or 0), gtid)


def _read_log_status(conn: db.Connection) -> LogStatus:
    rows = db.query(conn, clone_sql.LOG_STATUS)
    return parse_log_status(rows[0]["l"] if rows else None)


def clone_preflight(conn: db.Connection, spec: ServerSpec, source: Source) -> list[str]:
    """What stops a CLONE backup of ``spec`` from here, each with the statement that fixes it."""
    problems: list[str] = []
    rows = db.query(conn, clone_sql.PLUGIN_STATUS)
    status = str(rows[0]["s"]) if rows else ""
    if status != "ACTIVE":
        plugin_dir = str(db.scalar(conn, clone_sql.PLUGIN_DIR) or "")
        library = os.path.join(plugin_dir, clone_sql.CLONE_PLUGIN_LIBRARY)
        if plugin_dir and os.path.isdir(plugin_dir) and not os.path.exists(library):
            problems.append(
                f"the clone plugin is not installed and the server's plugin_dir {plugin_dir} has no "
                f"{clone_sql.CLONE_PLUGIN_LIBRARY}: install the MySQL server package that ships it, then run "
                f"(as an administrator) {clone_sql.INSTALL_PLUGIN}"
            )
        else:
            state = f"is {status}" if status else "is not installed"
            problems.append(
                f"the clone plugin {state} on {spec.name}: a physical backup of MySQL uses CLONE LOCAL "
                f"DATA DIRECTORY; run (as an administrator) {clone_sql.INSTALL_PLUGIN} or add "
                f"plugin-load-add={clone_sql.CLONE_PLUGIN_LIBRARY} to [mysqld]"
            )
    try:
        _read_log_status(conn)
    except db.Error as exc:
        code = exc.args[0] if exc.args else None
        if code in (ER_SPECIFIC_ACCESS_DENIED, ER_TABLEACCESS_DENIED):
            problems.append(
                f"the backup account {spec.user!r} lacks BACKUP_ADMIN (CLONE LOCAL and the consistent "
                f"binlog position of performance_schema.log_status need it): "
                + clone_sql.grant_backup_admin(spec.user)
            )
        else:
            raise
    if source.databases:
        rows = db.query(conn, clone_sql.tables_not_innodb(len(source.databases)), list(source.databases))
        if rows:
            names = [
                f"{quote_identifier(str(r['d']))}.{quote_identifier(str(r['t']))} ({r['e']})" for r in rows
            ]
            problems.append(
                f"CLONE copies InnoDB data only: {len(names)} table(s) would be EMPTY in the backup: "
                + ", ".join(names[:20])
                + (f" and {len(names) - 20} more" if len(names) > 20 else "")
                + ". Convert them (ALTER TABLE ... ENGINE=InnoDB) or back this server up with method='logical'"
            )
    if not os.path.isdir(source.datadir):
        problems.append(
            f"the server's datadir {source.datadir} is not on this host: CLONE LOCAL writes the copy on "
            "the server's host, so a physical backup of MySQL must run there"
        )
    else:
        owner = os.stat(source.datadir).st_uid
        if owner != os.geteuid():
            problems.append(
                f"the server's datadir is owned by uid {owner}, this process runs as uid {os.geteuid()}: the "
                "server writes the clone into this process's private staging directory, which this "
                "process then reads; run the backup as the server's OS user (e.g. sudo -u mysql)"
            )
    try:
        process.require_program("tar", package_hint="tar")
    except MysqlopsError as exc:
        problems.append(f"the clone copy is packed with tar: {exc}")
    return problems


def run_clone_backup(request: BackupRequest, ctx: RunContext, source: Source) -> BackupResult:
    """A full physical backup of the MySQL server ``request.server`` through CLONE (module
    docstring); ``source``: what :func:`mysqlops.backup.instance.inspect_source` read of it."""
    spec, codec = request.server, request.codec
    say = ctx.reporter.info
    encryption_key = ctx.encryption_key
    if encryption_key is not None:
        key_id(encryption_key)  # a bad key fails first
    names = [loc.name for loc in request.locations]
    problems: list[str] = []
    if request.incremental:
        problems.append(
            "MySQL physical backups are made with CLONE, which copies the whole instance: there is no "
            "incremental clone; take full physical backups and archive binary logs (archive-binlogs) for "
            "the changes in between"
        )
    with db.session(spec) as conn:
        problems += clone_preflight(conn, spec, source)

    def needed() -> int:
        datadir_bytes = tree_bytes(source.datadir)
        return datadir_bytes + datadir_bytes // 2 + 64 * 2**20

    destination_problems(request, ctx, problems, needed, "the uncompressed clone and its compressed stream")
    if problems:
        raise PreflightFailed(problems)
    warnings: list[str] = []
    if not source.log_bin:
        warnings.append(LOG_BIN_OFF)
    version = source.version
    staging_root = private_tempdir(ctx.staging_dir, "mysqlops-clone-")
    try:
        run = StreamRun(request, ctx, source, staging_root, f"backup.{TAR_FORMAT}{codec.extension}", warnings)
        copy_dir = os.path.join(staging_root, "data")
        say(
            f"full physical backup {run.backup_id} of {spec.name}: CLONE LOCAL DATA DIRECTORY into {copy_dir}"
        )
        t0 = time.monotonic()
        clone_row, before, after = _clone(spec, copy_dir, ctx.timeout)
        run.durations["clone"] = round(time.monotonic() - t0, 3)
        if not os.path.isdir(copy_dir):
            raise IntegrityError(
                f"CLONE LOCAL reported success but {copy_dir} does not exist here: the server runs on "
                "another host (or in another mount namespace); run the backup on the server's host"
            )
        exact_row = clone_status_coordinates(clone_row)
        coordinates = exact_row or before.coordinates()
        exact = exact_row is not None or (before == after)
        if coordinates is not None and not exact:
            warnings.append(
                "transactions committed during the clone: the recorded binlog coordinates are those just "
                "before it (a lower bound); replay binlogs from them with GTID auto-skip (the restored "
                "server's gtid_executed holds what the copy contains)"
            )
        t1 = time.monotonic()
        run.stream(tar_create_argv(copy_dir), f"tar of the clone of {spec.name}")
        run.durations["pack"] = round(time.monotonic() - t1, 3)
        run.durations["backup"] = round(time.monotonic() - t0, 3)
        clone_bytes = tree_bytes(copy_dir)
        shutil.rmtree(copy_dir, ignore_errors=True)  # the stream holds it now: free the space early
        say(
            f"cloned {human_bytes(clone_bytes)} in {run.durations['clone']:.1f}s, packed "
            f"{human_bytes(run.staged.raw.size)} ({human_bytes(run.staged.stored.size)} stored); "
            f"uploading to {', '.join(names)}"
        )
        return run.publish(
            coordinates=coordinates,
            tools={"backup": f"clone plugin of MySQL {version}"},
            extra={
                "physical_tool": "clone",
                "stream_format": TAR_FORMAT,
                "clone_bytes": clone_bytes,
                "clone": {
                    "coordinates_exact": exact,
                    "from": "clone_status" if exact_row is not None else "log_status",
                    "gtid_executed_before": before.gtid_executed,
                    "gtid_executed_after": after.gtid_executed,
                    "binlog_before": f"{before.file}:{before.position}" if before.file else None,
                    "binlog_after": f"{after.file}:{after.position}" if after.file else None,
                },
            },
        )
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _clone(
    spec: ServerSpec, copy_dir: str, timeout: float | None
) -> tuple[dict[str, Any] | None, LogStatus, LogStatus]:
    """Run the clone; returns the clone_status row and log_status just before and after.

    When the statement does not finish (an exception, a signal, the timeout), the clone is
    killed on the server (KILL QUERY from a second session), so it stops writing into the
    staging directory that is about to be removed."""
    read_timeout = int(timeout) if timeout else None
    with db.session(spec, read_timeout=read_timeout) as conn:
        conn_id = int(db.scalar(conn, clone_sql.CONNECTION_ID))
        before = _read_log_status(conn)
        finished = False
        try:
            db.execute(conn, clone_sql.clone_local(copy_dir))
            finished = True
        except db.Error as exc:
            raise MysqlopsError(f"CLONE LOCAL DATA DIRECTORY on {spec.name} failed: {exc}") from exc
        finally:
            if not finished:
                with contextlib.suppress(Exception), db.session(spec, connect_timeout=10) as killer:
                    db.execute(killer, clone_sql.kill_query(conn_id))
        after = _read_log_status(conn)
        try:
            rows = db.query(conn, clone_sql.CLONE_STATUS)
        except db.Error:
            rows = []  # no SELECT on performance_schema: log_status gives the coordinates
    row = rows[0] if rows else None
    if row is not None and str(row.get("STATE")) not in ("Completed", ""):
        raise MysqlopsError(
            f"clone on {spec.name} ended {row.get('STATE')}: {row.get('ERROR_NO')} {row.get('ERROR_MESSAGE')}"
        )
    return row, before, after
