"""Restore logical backups, and prove them: restore tests into scratch servers.

Restore path, per database file: download the stored (compressed) copy into a private
staging directory while computing its sha256 → compare with the manifest (a missing,
truncated or corrupt copy is reported and the next location is tried; nothing has touched
the target yet) → stream decompress → rewrite the database name if renamed → the real
``mariadb``/``mysql`` client. No uncompressed copy is ever written to disk. If loading
fails, every database this run created is dropped again: nothing half-restored is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mysqlops import ids
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, reaper
from mysqlops.adapters.localfs import private_dir, private_tempdir
from mysqlops.adapters.storage import Store
from mysqlops.checksum import CHUNK, CountingHash, iter_chunks
from mysqlops.commands import ClientTools, DumpOptions, client_option_file, dump_argv, mysql_argv
from mysqlops.compression import codec_from_label
from mysqlops.crypto import Decryptor, Keyring
from mysqlops.dialect import quote_identifier as q
from mysqlops.dumpscan import DumpScanner
from mysqlops.errors import ConfigError, IntegrityError, MysqlopsError, RestoreError, StorageError
from mysqlops.manifest import BackupFile, BackupManifest, Check, RestoreCertificate, validate_backup_manifest
from mysqlops.model import Location, ServerSpec
from mysqlops.tablesum import table_checksums

ProgressFn = Callable[[int, int, float], None]  # loaded raw bytes, total raw bytes, elapsed seconds
SCRATCH_PARENT = "/tmp"  # noqa: S108 - scratch servers: a short path for their unix socket (107 bytes)


# --------------------------------------------------------------------------- stream rewriting
class RenameRewriter:
    """Rewrites ``CREATE DATABASE ... `old` `` and ``USE `old`;`` lines of a dump stream.

    Only those structural lines name the database in mysqldump output (table statements are
    unqualified). Bodies of triggers/routines/events that name the database explicitly keep
    the original name: :attr:`foreign_mentions` counts such lines so the caller can warn.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = {q(k).encode(): q(v).encode() for k, v in mapping.items()}
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        if not self.mapping:
            return data
        data = self._carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > 1 << 20:
                self._carry = b""
                return data
            self._carry = data
            return b""
        block, self._carry = data[: cut + 1], data[cut + 1 :]
        return self._rewrite(block)

    def finish(self) -> bytes:
        out, self._carry = self._rewrite(self._carry), b""
        return out

    def _rewrite(self, block: bytes) -> bytes:
        if b"CREATE DATABASE" not in block and b"USE `" not in block:
            return block
        lines = block.split(b"\n")
        for i, line in enumerate(lines):
            if line.startswith(b"CREATE DATABASE ") or line.startswith(b"USE `"):
                for old, new in self.mapping.items():
                    if old in line:
                        lines[i] = line.replace(old, new, 1)
                        break
        return b"\n".join(lines)


def check_key(manifest: BackupManifest, keyring: Keyring | None) -> None:
    """Fail before touching anything when an encrypted backup's key is not available."""
    kid = manifest.encryption_key_id
    if kid and (keyring is None or kid not in keyring):
        raise RestoreError(
            f"backup {manifest.backup_id} is encrypted with key id {kid}, which is not in the given keys "
            f"({', '.join(keyring.ids) if keyring else 'none given'}): pass the encryption key Secret block "
            "that was current when it was made"
        )


# --------------------------------------------------------------------------- fetching
@dataclass
class FetchedFile:
    database: str | None
    path: str
    location: str
    seconds: float


def fetch_verified(store: Store, key: str, expected: BackupFile, dest: str) -> float:
    """Download ``key`` to ``dest`` (a new 0600 file: never an existing file or a symbolic
    link, ``O_EXCL | O_NOFOLLOW``), checking size and sha256; remove it on mismatch."""
    started = time.monotonic()
    digest = CountingHash()
    created = False
    try:
        with store.open_read(key) as src:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            created = True
            with os.fdopen(fd, "wb") as out:
                for chunk in iter_chunks(src, CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
    except BaseException:
        if created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
        raise
    problem = ""
    if digest.size != expected.stored_bytes:
        problem = f"is {digest.size} bytes, the manifest says {expected.stored_bytes} (truncated or corrupt)"
    elif digest.hexdigest() != expected.stored_sha256:
        problem = "fails its sha256 check (corrupt copy)"
    if problem:
        os.unlink(dest)
        raise IntegrityError(f"location {store.location.name!r}: {key} {problem}")
    return time.monotonic() - started


def fetch_backup_files(
    copies: Sequence[tuple[Location, BackupManifest]],
    files: Sequence[BackupFile],
    staging: str,
    log: Callable[[str], None],
) -> tuple[list[FetchedFile], list[str]]:
    """Each file from the first location (in preference order) holding a good copy.

    Returns the fetched files and the problems met on the way (corrupt/missing copies). Every
    manifest and file name is validated again here (``validate_backup_manifest``): a name that
    could leave ``staging`` or the backup's directory is refused before anything is read.
    """
    for _location, manifest in copies:
        validate_backup_manifest(manifest)
    names = [ids.check_data_file_name(f.path) for f in files]
    if len(set(names)) != len(names):
        raise RestoreError(f"the files to restore name one file twice ({sorted(names)}): refused")
    problems: list[str] = []
    fetched: list[FetchedFile] = []
    for f in files:
        for location, manifest in copies:
            key = f"{ids.backup_dir(manifest.server, manifest.backup_id)}/{f.path}"
            dest = os.path.join(staging, f.path)
            try:
                seconds = fetch_verified(Store(location), key, f, dest)
            except (IntegrityError, StorageError) as exc:
                problems.append(str(exc))
                log(f"copy at {location.name} unusable: {exc}; trying the next location")
                continue
            fetched.append(FetchedFile(f.database, dest, location.name, seconds))
            break
        else:
            raise RestoreError(
                f"no good copy of {f.path} at any location: " + " | ".join(problems[-len(copies) :])
            )
    return fetched, problems


# --------------------------------------------------------------------------- loading
def load_file(
    path: str,
    compression: str,
    target: ServerSpec,
    program: str,
    rename: Mapping[str, str],
    on_bytes: Callable[[int], None] | None = None,
    timeout: float | None = None,
    keyring: Keyring | None = None,
) -> None:
    """Stream-decrypt (when encrypted) and decompress ``path`` (with renames) into the real
    client on ``target``."""
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    rewriter = RenameRewriter(rename)
    with (
        process.Pipeline(
            [mysql_argv(program)],
            credentials=client_option_file(target),
            stdin=process.PIPE,
            stdout=process.DEVNULL,
            timeout=timeout,
            name=f"load of {os.path.basename(path)}",
        ) as pipe,
        open(path, "rb") as src,
    ):
        sink = pipe.stdin_pipe
        try:
            for chunk in iter_chunks(src, CHUNK):
                plain = decryptor.update(chunk) if decryptor is not None else chunk
                raw = dec.decompress(plain)
                if raw:
                    sink.write(rewriter.feed(raw))
                    if on_bytes:
                        on_bytes(len(raw))
            if decryptor is not None:
                rest = decryptor.finalize()  # raises on truncation/tampering: the load is rolled back
                if rest:
                    sink.write(rewriter.feed(dec.decompress(rest)))
            tail = dec.finish()
            sink.write(rewriter.feed(tail) + rewriter.finish())
        except BrokenPipeError:
            pass  # the client died: wait() reports its error
        pipe.wait()


def _database_state(conn: db.Connection, database: str) -> str:
    """'absent', 'empty' or 'nonempty'."""
    exists = db.scalar(
        conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", [database]
    )
    if not exists:
        return "absent"
    objects = db.scalar(
        conn,
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s)"
        " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s)"
        " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s)",
        [database] * 3,
    )
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


def server_identity(conn: db.Connection) -> dict[str, Any]:
    row = db.query(conn, "SELECT @@hostname AS h, @@port AS p, @@server_id AS s, @@datadir AS d")[0]
    return {
        "hostname": str(row["h"]),
        "port": int(row["p"]),
        "server_id": int(row["s"]),
        "datadir": str(row["d"]),
    }


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
    log: Callable[[str], None] | None = None,
    load_timeout: float | None = 24 * 3600,
    keyring: Keyring | None = None,
    reap_leftovers: bool = True,
) -> RestoreResult:
    """Restore one backup (its copies in location preference order) into ``target``.
    Encrypted backups need ``keyring`` holding the key whose id the manifest records.
    ``reap_leftovers``: first remove what killed runs left (:mod:`mysqlops.adapters.reaper`)."""
    say = log or (lambda _m: None)
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
    program = process.require_program(
        ClientTools.for_flavor(version.flavor).mysql, "mysql", package_hint="mariadb-client"
    )
    if reap_leftovers:
        reaper.reap([staging_dir], log=say)
    staging = private_tempdir(staging_dir, "mysqlops-restore-")
    durations: dict[str, float] = {}
    created: list[str] = []
    try:
        t0 = time.monotonic()
        fetched, problems = fetch_backup_files(copies, files, staging, say)
        durations["download"] = round(time.monotonic() - t0, 3)
        total = sum(f.raw_bytes for f in files)
        loaded = [0]
        t1 = time.monotonic()

        def on_bytes(n: int) -> None:
            loaded[0] += n
            if progress:
                progress(loaded[0], total, time.monotonic() - t1)

        with db.session(target) as conn:
            for source_db, state in states.items():
                if state == "nonempty":  # overwrite=True, and every copy passed its sha256 check
                    say(f"dropping existing {targets[source_db]!r} on {target.name} (overwrite=True)")
                    db.execute(conn, f"DROP DATABASE {q(targets[source_db])}")
                if state in ("nonempty", "absent"):
                    created.append(targets[source_db])
        for ff in fetched:
            assert ff.database is not None
            load_file(
                ff.path,
                manifest.compression,
                target,
                program,
                {ff.database: targets[ff.database]} if targets[ff.database] != ff.database else {},
                on_bytes,
                load_timeout,
                keyring if manifest.encryption_key_id else None,
            )
            say(f"loaded {ff.database!r} as {targets[ff.database]!r} from {ff.location}")
        durations["load"] = round(time.monotonic() - t1, 3)
        created.clear()  # success: keep them
        warnings = []
        for d, t in targets.items():
            if t != d:
                warnings.append(
                    f"{d!r} restored as {t!r}: triggers, routines, events or views whose bodies name {d!r} "
                    "explicitly still refer to the original database"
                )
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
                    db.execute(conn, f"DROP DATABASE IF EXISTS {q(name)}")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- verification
def redump_content_hash(spec: ServerSpec, database: str, program: str) -> str:
    """Dump ``database`` again with the backup's options and return its content hash."""
    scanner = DumpScanner()
    with process.Pipeline(
        [dump_argv(program, database, DumpOptions())],
        credentials=client_option_file(spec),
        stdout=process.PIPE,
        name=f"re-dump of {database}",
    ) as pipe:
        for chunk in iter(lambda: pipe.stdout_pipe.read(CHUNK), b""):
            scanner.feed(chunk)
        scanner.finish()
        pipe.wait()
    stats = scanner.sections.get(database)
    if stats is None:
        raise MysqlopsError(f"re-dump of {database!r} has no section for it")
    return stats.content_sha256


def verify_restored(
    manifest: BackupManifest, target: ServerSpec, names: Mapping[str, str], dump_program: str
) -> tuple[list[Check], list[str]]:
    """Compare the restored databases with what the manifest recorded. Returns checks and the
    lossy-by-format notes."""
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
                restored = table_checksums(conn, name, lossy_by_table)
                for stat in f.tables:
                    got = restored.get(stat.table)
                    ok = got is not None and got.rows == stat.rows and got.checksum == stat.checksum
                    detail = (
                        f"rows {stat.rows} checksum {stat.checksum}"
                        if ok
                        else (
                            f"expected rows {stat.rows} checksum {stat.checksum}, got "
                            + (f"rows {got.rows} checksum {got.checksum}" if got else "no table")
                        )
                    )
                    checks.append(Check(f"{name}.{stat.table}: rows and checksum", ok, detail))
            elif f.content_sha256:
                redumped = redump_content_hash(target, name, dump_program) if name == f.database else None
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
    return (
        f"{ids.backup_dir(manifest.server, manifest.backup_id)}/{ids.CERTIFICATE_PREFIX}"
        f"{tested_at:%Y%m%dT%H%M%SZ}-{location}.json"
    )


def make_certificate(
    manifest: BackupManifest,
    location: str,
    checks: Sequence[Check],
    durations: Mapping[str, float],
    target_version: str,
    lossy: Sequence[str],
    tested_at: datetime | None = None,
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
        source_version=f"{manifest.flavor} {manifest.server_version}",
        target_version=target_version,
        recovery_point_seconds=max(0.0, (tested_at - manifest.finished_at).total_seconds()),
        lossy=tuple(lossy),
        fingerprint=manifest.fingerprint,
    )


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
) -> RestoreCertificate:
    """Restore the copy of ``manifest`` stored at ``location`` into a scratch sandbox server
    of the same flavor and series, verify it against the manifest, measure the time, and
    write a restore certificate next to the manifest at that location. The scratch server
    is always torn down; it lives in ``sandbox_dir`` or, by default, in a new owner-marked
    directory under /tmp (short: unix socket paths), so that if this process is killed the
    next run stops the server and removes its datadir. Starts by removing what killed runs
    left behind (:mod:`mysqlops.adapters.reaper`). A manifest that fails validation (a file
    name that could leave the staging directory, a duplicate, a bad server name or id) is
    refused before anything is started, read or written: no certificate."""
    from mysqlops.adapters import sandbox

    validate_backup_manifest(manifest)
    say = log or (lambda _m: None)
    reaper.reap([staging_dir, sandbox_dir], log=say)
    checks: list[Check] = []
    lossy: list[str] = []
    durations: dict[str, float] = {}
    started = time.monotonic()
    binary = sandbox.find_server_binary()
    series = ".".join(manifest.server_version.split(".")[:2])
    target_version = str(binary.version)
    same_kind = binary.flavor.value == manifest.flavor and binary.version.series == series
    key_ok = True
    if manifest.encryption_key_id:
        try:
            check_key(manifest, keyring)
            checks.append(Check("encryption key available", True, f"key id {manifest.encryption_key_id}"))
        except RestoreError as exc:
            key_ok = False  # no scratch server for a copy that cannot be decrypted
            checks.append(Check("encryption key available", False, str(exc)))
    checks.append(
        Check(
            "scratch server flavor and series",
            same_kind,
            f"backup from {manifest.flavor} {manifest.server_version}, scratch server {binary.version}",
        )
    )
    if same_kind and key_ok:
        name = f"rt-{manifest.backup_id[-6:]}-{location.name}"[:40]
        scratch_root = contextlib.ExitStack()
        root = sandbox_dir or scratch_root.enter_context(private_dir(SCRATCH_PARENT, "mysqlops-rt-"))
        try:
            server = sandbox.start_server(
                root, name, server_id=900 + os.getpid() % 1000, tuned=True, binary=binary, scratch=True
            )
        except BaseException:
            scratch_root.close()
            raise
        try:
            spec = server.spec(name=f"scratch-{name}")
            try:
                result = restore_backup(
                    [(location, manifest)],
                    spec,
                    staging_dir=staging_dir,
                    log=say,
                    progress=progress,
                    keyring=keyring,
                    reap_leftovers=False,
                )
            except (RestoreError, IntegrityError, StorageError) as exc:
                checks.append(Check(f"sha256 of the copy at {location.name}", False, str(exc)))
            except MysqlopsError as exc:
                checks.append(Check(f"sha256 of the copy at {location.name}", True))
                checks.append(Check("load into the scratch server", False, str(exc)))
            else:
                durations.update(result.durations)
                checks.append(
                    Check(
                        f"sha256 of the copy at {location.name}",
                        True,
                        f"{len(result.locations_used)} file(s), {manifest.stored_bytes} bytes",
                    )
                )
                checks.append(Check("load into the scratch server", True, f"{result.raw_bytes} bytes of SQL"))
                t_verify = time.monotonic()
                dump_program = process.require_program(
                    ClientTools.for_flavor(binary.flavor).dump, "mysqldump"
                )
                more, lossy = verify_restored(manifest, spec, result.databases, dump_program)
                checks += more
                durations["verify"] = round(time.monotonic() - t_verify, 3)
        finally:
            try:
                sandbox.stop_server(server)
            finally:
                scratch_root.close()
    durations["total"] = round(time.monotonic() - started, 3)
    cert = make_certificate(manifest, location.name, checks, durations, target_version, lossy)
    if write_certificate:
        key = certificate_key(manifest, location.name, cert.tested_at)
        try:
            Store(location).put_bytes(cert.to_json().encode(), key)
        except MysqlopsError as exc:
            say(f"could not store the restore certificate at {location.name}: {exc}")
    return cert
