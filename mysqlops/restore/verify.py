"""Restore tests: verification and certificates."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mysqlops import layout
from mysqlops.adapters import builds, clients, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_dir
from mysqlops.adapters.storage import Store
from mysqlops.errors import (
    ConfigError,
    MysqlopsError,
    RestoreError,
)
from mysqlops.manifest import BackupManifest, Check, RestoreCertificate, TableStat, validate_backup_manifest
from mysqlops.model import Location, ServerSpec
from mysqlops.restore import redump
from mysqlops.restore.fetch import check_key
from mysqlops.restore.load import default_workers
from mysqlops.restore.logical import restore_backup
from mysqlops.runs import RunContext
from mysqlops.tablesum import content_checksum, table_checksums
from mysqlops.tools.client import DumpOptions, Program, dump_argv
from mysqlops.units import human_bytes

SCRATCH_PARENT = "/tmp"  # noqa: S108 - scratch servers: a short path for their unix socket (107 bytes)


# --------------------------------------------------------------------------- verification
def redump_content_hash(spec: ServerSpec, database: str, program: Program, flavor: str | None = None) -> str:
    """Dump ``database`` again with the backup's options and return its content hash, normalised
    for the backup's ``flavor`` as the backup's own hash was (:mod:`mysqlops.streams.dumpscan`)."""
    scanner = redump.scan_redump(
        spec, dump_argv(program, database, DumpOptions()), f"re-dump of {database}", flavor
    )
    stats = scanner.sections.get(database)
    if stats is None:
        raise MysqlopsError(f"re-dump of {database!r} has no section for it")
    return stats.content_sha256


class EarlyChecksums:
    """Per-table checksums taken as soon as each table is loaded (``restore_backup(on_table=...)``,
    called from the loading threads), while other tables still load: the tables the manifest
    recorded rows and checksums for (``TableStat``), FLOAT columns left out as recorded."""

    def __init__(self, manifest: BackupManifest, target: ServerSpec) -> None:
        self.target = target
        self.expected = {(f.database, s.table): s for f in manifest.files if f.database for s in f.tables}
        self.got: dict[tuple[str, str], TableStat] = {}
        self._lock = threading.Lock()

    def __call__(self, database: str, table: str) -> None:
        stat = self.expected.get((database, table))
        if stat is None:
            return
        with db.session(self.target) as conn:
            rows, checksum = content_checksum(conn, database, table, stat.lossy_columns)
        with self._lock:
            self.got[(database, table)] = TableStat(table, rows, checksum, stat.lossy_columns)


def verify_restored(
    manifest: BackupManifest,
    target: ServerSpec,
    names: Mapping[str, str],
    dump_program: Program,
    early: Mapping[tuple[str, str], TableStat] | None = None,
    copy: Mapping[str, redump.CopyContent] | None = None,
    redumps: redump.TableRedumps | None = None,
) -> tuple[list[Check], list[str]]:
    """Compare the restored databases with what the manifest recorded. Returns checks and the
    lossy-by-format notes. ``early``: per-table checksums already taken while loading
    (:class:`EarlyChecksums`); only the tables missing there are checksummed now. ``copy`` and
    ``redumps``: the content of the copy per piece and the rows re-dumped table by table
    while loading (:mod:`mysqlops.restore.redump`): the re-dump hash is then compared piece by
    piece (the rest re-dumped now); without them, or when the copy's whole hash is not the
    manifest's, one whole re-dump per database."""
    checks: list[Check] = []
    lossy_notes: list[str] = []
    with db.session(target) as conn:
        present = set(db.user_databases(conn))
        for f in manifest.files:
            if f.database is None or f.database not in names:
                continue
            name = names[f.database]
            if name not in present:
                checks.append(Check(f"database {name} present", False, "missing after restore"))
                continue
            checks.append(Check(f"database {name} present", True))
            counts = db.object_counts(conn, name)
            if f.counts is not None:
                diffs = f.counts.differences(counts)
                checks.append(
                    Check(f"{name}: object counts", not diffs, "; ".join(diffs) or str(counts.as_dict()))
                )
            if f.lossy_columns:
                lossy_notes.append(
                    f"{name}: FLOAT columns {', '.join(f.lossy_columns)} are rounded to 6 significant digits by "
                    "the logical dump format (lossy by format); other columns compared exactly"
                )
            if f.tables:
                lossy_by_table: dict[str, list[str]] = {}
                for stat in f.tables:
                    lossy_by_table[stat.table] = list(stat.lossy_columns)
                done = {t: st for (d, t), st in (early or {}).items() if d == name}
                if any(stat.table not in done for stat in f.tables):
                    restored = {**table_checksums(conn, name, lossy_by_table), **done}
                else:
                    restored = done
                for stat in f.tables:
                    got = restored.get(stat.table)
                    ok = got is not None and got.rows == stat.rows and got.checksum == stat.checksum
                    detail = (
                        f"rows {stat.rows} checksum {stat.checksum}"
                        + (" (taken as soon as the table was loaded)" if stat.table in done else "")
                        if ok
                        else (
                            f"expected rows {stat.rows} checksum {stat.checksum}, got "
                            + (f"rows {got.rows} checksum {got.checksum}" if got else "no table")
                        )
                    )
                    checks.append(Check(f"{name}.{stat.table}: rows and checksum", ok, detail))
            elif f.content_sha256:
                whole = (copy or {}).get(name)
                if name != f.database:
                    checks.append(Check(f"{name}: content hash", True, "skipped: database was renamed"))
                elif redumps is not None and whole is not None and whole.content_sha256 == f.content_sha256:
                    rest = redump.redump_rest(target, name, dump_program, manifest.flavor)
                    redumps.wait()  # the rows of the last tables, re-dumped meanwhile
                    rows = {k: v for k, v in redumps.got.items() if k[0] == name}
                    early_n = sum(1 for k in redumps.early if k[0] == name)
                    piecewise = redump.compare_pieces(name, whole, {**rest, **rows}, redumps.errors, early_n)
                    if not piecewise[0].passed:
                        # the verdict is the whole re-dump's: a piece that differs only by the dump's
                        # layout (a tool that splits its output otherwise) never fails a good copy
                        redumped = redump_content_hash(target, name, dump_program, manifest.flavor)
                        if redumped == f.content_sha256:
                            piecewise = [
                                Check(
                                    f"{name}: re-dump content hash",
                                    True,
                                    f"sha256 {redumped[:16]}… equals the backup's (whole re-dump; piece by piece: "
                                    f"{piecewise[0].detail[:300]})",
                                )
                            ]
                    checks += piecewise
                else:
                    redumped = redump_content_hash(target, name, dump_program, manifest.flavor)
                    ok = redumped == f.content_sha256
                    checks.append(
                        Check(
                            f"{name}: re-dump content hash",
                            ok,
                            f"sha256 {redumped[:16]}… {'equals' if ok else 'differs from'} the backup's {f.content_sha256[:16]}…",
                        )
                    )
    return checks, lossy_notes


def certificate_key(manifest: BackupManifest, location: str, tested_at: datetime) -> str:
    return layout.certificate_key(manifest.server, manifest.backup_id, tested_at, location)


def make_certificate(
    manifest: BackupManifest,
    location: str,
    checks: Sequence[Check],
    durations: Mapping[str, float],
    target_version: str,
    lossy: Sequence[str],
    tested_at: datetime | None = None,
    source_version: str | None = None,
) -> RestoreCertificate:
    tested_at = tested_at or datetime.now(UTC)
    return RestoreCertificate(
        backup_id=manifest.backup_id,
        server=manifest.server,
        location=location,
        tested_at=tested_at,
        passed=bool(checks) and all(c.passed for c in checks),
        checks=tuple(checks),
        durations=dict(durations),
        source_version=source_version or f"{manifest.flavor} {manifest.server_version}",
        target_version=target_version,
        recovery_point_seconds=max(0.0, (tested_at - manifest.finished_at).total_seconds()),
        lossy=tuple(lossy),
        fingerprint=manifest.fingerprint,
    )


def _dump_program(
    manifest: BackupManifest, binary: builds.ServerBuild, log: Callable[[str], None]
) -> Program:
    """The dump tool of the BACKUP's build: its re-dump hash is comparable with the backup's
    (another series' tool lays a dump out differently: an upgrade rehearsal re-dumps the new
    server with the old tool)."""
    own = scratch_build_name(manifest)
    tool_build = binary
    if binary.name != own:
        try:
            tool_build = builds.resolve(own, log=log)
        except MysqlopsError as exc:
            log(f"no {own} dump tool for the re-dump ({exc}); using {binary.name}'s")
    return clients.for_build(tool_build).dump


def _restore_and_verify(
    copy: redump.FetchedCopy,
    manifest: BackupManifest,
    server: sandbox.SandboxServer,
    binary: builds.ServerBuild,
    checks: list[Check],
    durations: dict[str, float],
    lossy: list[str],
    ctx: RunContext,
) -> None:
    """Load the fetched copy into the running scratch server and verify it (checks appended):
    per-table checksums (backups with table stats) and per-table re-dumps of the rows
    (:class:`~mysqlops.restore.redump.TableRedumps`) run as each table is loaded."""
    spec = server.spec(name=f"scratch-{server.name}")
    early = EarlyChecksums(manifest, spec)
    try:
        program = _dump_program(manifest, binary, ctx.reporter.info)
    except MysqlopsError as exc:
        checks.append(Check("verify the restored databases", False, f"no dump tool for the re-dump: {exc}"))
        return
    per_db = {d: sum(1 for p in c.pieces if p[1] == "data") for d, c in copy.content.items()}
    redumps = (
        redump.TableRedumps(
            spec,
            program,
            manifest.flavor,
            per_db,
            busy=default_workers() - 1,
            sizes={k: v for c in copy.content.values() for k, v in c.sizes.items()},
        )
        if copy.content
        else None
    )

    def on_table(database: str, table: str) -> None:
        if early.expected:
            early(database, table)
        if redumps is not None:
            redumps(database, table)

    try:
        result = restore_backup(
            [(copy.location, manifest)],
            spec,
            ctx,
            reap_leftovers=False,
            on_table=on_table if early.expected or redumps is not None else None,
        )
    except MysqlopsError as exc:
        if redumps is not None:
            redumps.close()
        checks.append(Check("load into the scratch server", False, str(exc)))
        return
    durations.update({k: v for k, v in result.durations.items() if k != "download"})
    checks.append(Check("load into the scratch server", True, f"{human_bytes(result.raw_bytes)} of SQL"))
    t_verify = time.monotonic()
    try:
        if redumps is not None:  # the rows of tables no load reported, and the last ones, meanwhile
            loaded = {k for k in redumps.got} | {k for k in redumps.errors}
            redumps.drain(
                [
                    (p[0], p[2])
                    for c in copy.content.values()
                    for p in c.pieces
                    if p[1] == "data" and p not in loaded
                ],
                workers=default_workers(),
            )
        more, notes = verify_restored(
            manifest, spec, result.databases, program, early.got, copy.content, redumps
        )
    except MysqlopsError as exc:  # a re-dump that cannot run is a failed check, not an escaped error
        more, notes = [Check("verify the restored databases", False, str(exc))], []
    finally:
        if redumps is not None:
            redumps.close()
            ctx.reporter.info(
                f"rows re-dumped table by table: {len(redumps.batches)} re-dump(s), {redumps.seconds:.1f}s in all, "
                f"{len(redumps.early)} table(s) while the last ones loaded; (start s, seconds, tables, while "
                f"loading): {redumps.batches[:20]}"
            )
    checks += more
    lossy += notes
    durations["verify"] = round(time.monotonic() - t_verify, 3)


def _start_scratch(
    wanted: str, root: str, name: str, say: Callable[[str], None], box: dict[str, Any]
) -> None:
    """Thread body: resolve the build and start the scratch server; the outcome goes in ``box``."""
    try:
        binary = builds.resolve(wanted, log=say)
        box["binary"] = binary
        box["server"] = sandbox.start_server(
            root, name, server_id=900 + os.getpid() % 1000, tuned=True, binary=binary, scratch=True
        )
    except BaseException as exc:  # noqa: BLE001 - handed to the restore test's thread
        box["error"] = exc


def check_scratch_series(scratch_series: str | None) -> None:
    """Refuse a ``scratch_series`` that is not a build name, before anything runs."""
    if scratch_series:
        builds.parse_build_name(scratch_series)


def scratch_build_name(manifest: BackupManifest, scratch_series: str | None = None) -> str:
    """The server build a restore test of ``manifest`` runs on: the backup's own flavor and
    series, or ``scratch_series`` (an upgrade rehearsal: ``mariadb-11.8`` for a MariaDB 10.11
    backup). A build of another flavor, or an older series than the backup's, is refused."""
    own = builds.parse_build_name(f"{manifest.flavor}-{'.'.join(manifest.server_version.split('.')[:2])}")
    if not scratch_series:
        return own.name
    wanted = builds.parse_build_name(scratch_series)
    if wanted.flavor is not own.flavor or (wanted.major, wanted.minor) < (own.major, own.minor):
        raise ConfigError(
            f"scratch_series={scratch_series!r} cannot take backup {manifest.backup_id} of {manifest.flavor} "
            f"{manifest.server_version}: use a {own.flavor.value} build of series {own.series} or newer "
            f"(an upgrade rehearsal), e.g. {own.name}, or leave scratch_series empty"
        )
    return wanted.name


# --------------------------------------------------------------------------- restore tests
def restore_test_copy(
    location: Location,
    manifest: BackupManifest,
    ctx: RunContext | None = None,
    *,
    sandbox_dir: str | None = None,
    write_certificate: bool = True,
    scratch_series: str | None = None,
) -> RestoreCertificate:
    """Restore the copy of ``manifest`` stored at ``location`` into a scratch sandbox server
    of the backup's flavor and series (from the manifest; the build is fetched when this machine
    lacks it) or of ``scratch_series`` (an upgrade rehearsal, see :func:`scratch_build_name`), verify it against the manifest, measure the time, and
    write a restore certificate next to the manifest at that location. The scratch server
    starts (in a thread) while the copy is downloaded into an owner-marked directory under
    ``staging_dir``, sha256-checked and hashed per table (:func:`~mysqlops.restore.redump.fetch_copy`); the load reads
    that verified copy, and each table's rows are re-dumped as the last tables load
    (:mod:`mysqlops.restore.redump`). The scratch server is always torn down (killed: its
    data are thrown away); it lives in ``sandbox_dir`` or, by default, in a new owner-marked
    directory under /tmp (short: unix socket paths), so that if this process is killed the
    next run stops the server and removes its datadir. Starts by removing what killed runs
    left behind (:mod:`mysqlops.adapters.reaper`). A manifest that fails validation (a file
    name that could leave the staging directory, a duplicate, a bad server name or id) is
    refused before anything is started, read or written: no certificate."""
    validate_backup_manifest(manifest)
    wanted = scratch_build_name(manifest, scratch_series)
    ctx = ctx or RunContext()
    say, staging_dir, keyring = ctx.reporter.info, ctx.staging_dir, ctx.keyring
    reaper.reap([staging_dir, sandbox_dir], log=say)
    checks: list[Check] = []
    lossy: list[str] = []
    durations: dict[str, float] = {}
    started = time.monotonic()
    target_version = wanted
    key_ok = True
    if manifest.encryption_key_id:
        try:
            check_key(manifest, keyring)
            checks.append(Check("encryption key available", True, f"key id {manifest.encryption_key_id}"))
        except RestoreError as exc:
            key_ok = False  # no scratch server for a copy that cannot be decrypted
            checks.append(Check("encryption key available", False, str(exc)))
    source = f"{manifest.flavor} {manifest.server_version}"
    if manifest.tools.get("client_build"):
        source += (
            f" (dumped with {manifest.tools['client_build']} {manifest.tools.get('client_version', '')})"
        )
    if key_ok:
        name = f"rt-{manifest.backup_id[-6:]}-{location.name}"[:40]
        box: dict[str, Any] = {}
        with contextlib.ExitStack() as stack:
            root = sandbox_dir or stack.enter_context(private_dir(SCRATCH_PARENT, "mysqlops-rt-"))
            copy_root = stack.enter_context(private_dir(staging_dir, "mysqlops-rt-copy-"))
            # the scratch server starts while the copy is downloaded, checked and hashed
            starter = threading.Thread(
                target=_start_scratch, args=(wanted, root, name, say, box), name="scratch-start", daemon=True
            )
            t_fetch = time.monotonic()
            starter.start()
            try:
                fetched: redump.FetchedCopy | MysqlopsError = redump.fetch_copy(
                    location, manifest, copy_root, keyring
                )
            except MysqlopsError as exc:
                fetched = exc
            finally:
                durations["download"] = round(time.monotonic() - t_fetch, 3)  # with its check and hashes
                starter.join()  # also when interrupted: a server that started is stopped below
                if box.get("server") is not None:  # its data are thrown away: no clean InnoDB shutdown
                    stack.callback(sandbox.stop_server, box["server"], timeout=0)
            durations["scratch_ready"] = round(time.monotonic() - t_fetch, 3)  # the server, started meanwhile
            binary: builds.ServerBuild | None = box.get("binary")
            if binary is not None:
                target_version = f"{binary.name} ({binary.version})"
            failed_start = box.get("error")
            if failed_start is not None and not isinstance(failed_start, MysqlopsError):
                raise failed_start  # not a failed check: an interrupt, a bug
            if failed_start is not None or binary is None:
                checks.append(
                    Check(
                        "scratch server started",
                        False,
                        f"{wanted} for a backup from {source}: {failed_start}",
                    )
                )
            else:
                checks.append(
                    Check("scratch server started", True, f"{binary.describe()} for a backup from {source}")
                )
            if isinstance(fetched, MysqlopsError):
                checks.append(Check(f"sha256 of the copy at {location.name}", False, str(fetched)))
            else:
                checks.append(
                    Check(
                        f"sha256 of the copy at {location.name}",
                        True,
                        f"{len(manifest.files)} file(s), {human_bytes(manifest.stored_bytes)}",
                    )
                )
                if "server" in box and binary is not None:
                    _restore_and_verify(
                        fetched,
                        manifest,
                        box["server"],
                        binary,
                        checks,
                        durations,
                        lossy,
                        ctx,
                    )
    durations["total"] = round(time.monotonic() - started, 3)
    cert = make_certificate(
        manifest, location.name, checks, durations, target_version, lossy, source_version=source
    )
    if write_certificate:
        key = certificate_key(manifest, location.name, cert.tested_at)
        try:
            Store(location).put_bytes(cert.to_json().encode(), key)
        except MysqlopsError as exc:
            say(f"could not store the restore certificate at {location.name}: {exc}")
    return cert
