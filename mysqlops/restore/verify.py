"""Restore tests: verification and certificates."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from mysqlops import layout, redact
from mysqlops.adapters import builds, clients, process, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_dir
from mysqlops.adapters.storage import Store
from mysqlops.errors import (
    ConfigError,
    IntegrityError,
    MysqlopsError,
    RestoreError,
    StorageError,
)
from mysqlops.manifest import BackupManifest, Check, RestoreCertificate, TableStat, validate_backup_manifest
from mysqlops.model import Location, ServerSpec
from mysqlops.progress import ProgressFn
from mysqlops.restore.fetch import check_key
from mysqlops.restore.logical import restore_backup
from mysqlops.runs import Reporter, RunContext
from mysqlops.streams.checksum import CHUNK
from mysqlops.streams.dumpscan import DumpScanner
from mysqlops.streams.keys import Keyring
from mysqlops.tablesum import content_checksum, table_checksums
from mysqlops.tools.client import DumpOptions, Program, client_option_file, dump_argv
from mysqlops.units import human_bytes

SCRATCH_PARENT = "/tmp"  # noqa: S108 - scratch servers: a short path for their unix socket (107 bytes)


# --------------------------------------------------------------------------- verification
def redump_content_hash(spec: ServerSpec, database: str, program: Program, flavor: str | None = None) -> str:
    """Dump ``database`` again with the backup's options and return its content hash, normalised
    for the backup's ``flavor`` as the backup's own hash was (:mod:`mysqlops.streams.dumpscan`)."""
    scanner = DumpScanner(flavor=flavor)
    with process.Pipeline(
        [dump_argv(program, database, DumpOptions())],
        credentials=client_option_file(spec),
        stdout=process.PIPE,
        name=f"re-dump of {database}",
        stderr_filter=redact.client_stderr,
    ) as pipe:
        for chunk in iter(lambda: pipe.stdout_pipe.read(CHUNK), b""):
            scanner.feed(chunk)
        scanner.finish()
        pipe.wait()
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
) -> tuple[list[Check], list[str]]:
    """Compare the restored databases with what the manifest recorded. Returns checks and the
    lossy-by-format notes. ``early``: per-table checksums already taken while loading
    (:class:`EarlyChecksums`); only the tables missing there are checksummed now."""
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
                redumped = (
                    redump_content_hash(target, name, dump_program, manifest.flavor)
                    if name == f.database
                    else None
                )
                if redumped is None:
                    checks.append(Check(f"{name}: content hash", True, "skipped: database was renamed"))
                else:
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


def _restore_and_verify(
    location: Location,
    manifest: BackupManifest,
    server: sandbox.SandboxServer,
    binary: builds.ServerBuild,
    checks: list[Check],
    durations: dict[str, float],
    lossy: list[str],
    *,
    staging_dir: str | None,
    log: Callable[[str], None],
    progress: ProgressFn | None,
    keyring: Keyring | None,
) -> None:
    """Load the copy into the running scratch server and verify it (checks appended)."""
    spec = server.spec(name=f"scratch-{server.name}")
    early = EarlyChecksums(manifest, spec)
    try:
        result = restore_backup(
            [(location, manifest)],
            spec,
            RunContext(staging_dir=staging_dir, keyring=keyring, reporter=Reporter.from_log(log)),
            reap_leftovers=False,
            on_table=early if early.expected else None,
        )
    except (RestoreError, IntegrityError, StorageError) as exc:
        checks.append(Check(f"sha256 of the copy at {location.name}", False, str(exc)))
        return
    except MysqlopsError as exc:
        checks.append(Check(f"sha256 of the copy at {location.name}", True))
        checks.append(Check("load into the scratch server", False, str(exc)))
        return
    durations.update(result.durations)
    checks.append(
        Check(
            f"sha256 of the copy at {location.name}",
            True,
            f"{len(result.locations_used)} file(s), {human_bytes(manifest.stored_bytes)}",
        )
    )
    checks.append(Check("load into the scratch server", True, f"{human_bytes(result.raw_bytes)} of SQL"))
    t_verify = time.monotonic()
    # the re-dump runs with the dump tool of the BACKUP's build: its hash is comparable with the
    # backup's (another series' tool lays a dump out differently: an upgrade rehearsal re-dumps
    # the new server with the old tool)
    own = scratch_build_name(manifest)
    tool_build = binary
    if binary.name != own:
        try:
            tool_build = builds.resolve(own, log=log)
        except MysqlopsError as exc:
            log(f"no {own} dump tool for the re-dump ({exc}); using {binary.name}'s")
    try:
        more, notes = verify_restored(
            manifest, spec, result.databases, clients.for_build(tool_build).dump, early.got
        )
    except MysqlopsError as exc:  # a re-dump that cannot run is a failed check, not an escaped error
        more, notes = [Check("verify the restored databases", False, str(exc))], []
    checks += more
    lossy += notes
    durations["verify"] = round(time.monotonic() - t_verify, 3)


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
    *,
    sandbox_dir: str | None = None,
    staging_dir: str | None = None,
    log: Callable[[str], None] | None = None,
    write_certificate: bool = True,
    progress: ProgressFn | None = None,
    keyring: Keyring | None = None,
    scratch_series: str | None = None,
) -> RestoreCertificate:
    """Restore the copy of ``manifest`` stored at ``location`` into a scratch sandbox server
    of the backup's flavor and series (from the manifest; the build is fetched when this machine
    lacks it) or of ``scratch_series`` (an upgrade rehearsal, see :func:`scratch_build_name`), verify it against the manifest, measure the time, and
    write a restore certificate next to the manifest at that location. The scratch server
    is always torn down; it lives in ``sandbox_dir`` or, by default, in a new owner-marked
    directory under /tmp (short: unix socket paths), so that if this process is killed the
    next run stops the server and removes its datadir. Starts by removing what killed runs
    left behind (:mod:`mysqlops.adapters.reaper`). A manifest that fails validation (a file
    name that could leave the staging directory, a duplicate, a bad server name or id) is
    refused before anything is started, read or written: no certificate."""
    validate_backup_manifest(manifest)
    wanted = scratch_build_name(manifest, scratch_series)
    say = log or (lambda _m: None)
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
        scratch_root = contextlib.ExitStack()
        server = None
        try:
            try:
                binary = builds.resolve(wanted, log=say)
                target_version = f"{binary.name} ({binary.version})"
                root = sandbox_dir or scratch_root.enter_context(private_dir(SCRATCH_PARENT, "mysqlops-rt-"))
                server = sandbox.start_server(
                    root, name, server_id=900 + os.getpid() % 1000, tuned=True, binary=binary, scratch=True
                )
            except MysqlopsError as exc:
                checks.append(
                    Check("scratch server started", False, f"{wanted} for a backup from {source}: {exc}")
                )
            else:
                checks.append(
                    Check("scratch server started", True, f"{binary.describe()} for a backup from {source}")
                )
                _restore_and_verify(
                    location,
                    manifest,
                    server,
                    binary,
                    checks,
                    durations,
                    lossy,
                    staging_dir=staging_dir,
                    log=say,
                    progress=progress,
                    keyring=keyring,
                )
        finally:
            try:
                if server is not None:
                    sandbox.stop_server(server)
            finally:
                scratch_root.close()
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
