"""Physical restores and restore tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mysqlops import catalog
from mysqlops.adapters import builds, clients, process, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.backup.physical import (
    CHECKPOINTS_FILES,
    Copies,
    LogFn,
    is_clone,
    newest_physical,
    parse_checkpoints,
    read_first,
)
from mysqlops.errors import (
    ConfigError,
    IntegrityError,
    MysqlopsError,
    RestoreError,
)
from mysqlops.manifest import (
    BackupManifest,
    Check,
    RestoreCertificate,
    TableStat,
    validate_backup_manifest,
)
from mysqlops.model import (
    BackupKind,
    BackupMethod,
    BackupStatus,
    Flavor,
    Location,
    ServerSpec,
    ServerVersion,
)
from mysqlops.restore.fetch import check_key, fetch_backup_files
from mysqlops.restore.verify import make_certificate
from mysqlops.streams.checksum import CHUNK, iter_chunks
from mysqlops.streams.compression import codec_from_label
from mysqlops.streams.crypto import Decryptor, Keyring
from mysqlops.tablesum import table_checksums
from mysqlops.tools.physical import TAR_FORMAT, prepare_argv, unpack_argv


# --------------------------------------------------------------------------- chains
def validate_chain(chain: Sequence[BackupManifest]) -> None:
    """A restorable chain: one physical full, then physical incrementals each based on the
    previous one (``parent_id``) and starting exactly where it ended (LSN). Raises
    :class:`RestoreError` naming the first break."""
    if not chain:
        raise RestoreError("empty backup chain: nothing to restore")
    for m in chain:
        if m.method is not BackupMethod.PHYSICAL:
            raise RestoreError(f"backup {m.backup_id} is a {m.method.value} backup, not physical")
        if m.status is not BackupStatus.COMPLETE:
            raise RestoreError(f"backup {m.backup_id} is not complete ({m.status.value})")
        if len(m.files) != 1:
            raise RestoreError(
                f"physical backup {m.backup_id} lists {len(m.files)} files, expected one stream"
            )
        if is_clone(m):
            if m.kind is not BackupKind.FULL or len(chain) != 1:
                raise RestoreError(
                    f"backup {m.backup_id} is a CLONE copy: it is restored alone, never as part of a chain"
                )
        elif m.lsn_from is None or m.lsn_to is None:
            raise RestoreError(f"physical backup {m.backup_id} has no LSN range in its manifest")
    first = chain[0]
    if first.kind is not BackupKind.FULL:
        raise RestoreError(
            f"the chain starts with {first.kind.value} backup {first.backup_id} (parent {first.parent_id}): "
            "its full base backup is missing"
        )
    for prev, cur in itertools.pairwise(chain):
        where = f"incremental {cur.backup_id}"
        if cur.kind is not BackupKind.INCREMENTAL:
            raise RestoreError(
                f"{cur.kind.value} backup {cur.backup_id} cannot follow {prev.backup_id} in a chain"
            )
        if cur.server != prev.server or cur.flavor != prev.flavor:
            raise RestoreError(
                f"{where} is of {cur.server}/{cur.flavor}, its base of {prev.server}/{prev.flavor}"
            )
        if cur.parent_id != prev.backup_id:
            raise RestoreError(
                f"{where} is based on {cur.parent_id}, but follows {prev.backup_id} in the chain"
            )
        if cur.lsn_from != prev.lsn_to:
            raise RestoreError(
                f"LSN gap: {where} starts at LSN {cur.lsn_from} but its base {prev.backup_id} ends at "
                f"{prev.lsn_to}; the chain is broken, restore from a newer full backup"
            )


def physical_chain(
    scans: Sequence[catalog.LocationScan], server: str, backup_id: str = "latest"
) -> list[Copies]:
    """Copies (in location order) of each backup of the chain ending at ``backup_id``:
    the full first, then the incrementals in order. ``latest``: the newest physical backup."""
    if backup_id == "latest":
        newest = [m for s in scans if (m := newest_physical(s, server)) is not None]
        if not newest:
            raise RestoreError(f"no physical backup of server {server!r} at any of the given locations")
        backup_id = max(m.backup_id for m in newest)
    chain: list[Copies] = []
    wanted: str | None = backup_id
    child: str | None = None
    while wanted is not None:
        try:
            copies = catalog.find_backup(scans, server, wanted)
        except MysqlopsError:
            if child is None:
                raise RestoreError(
                    f"backup {wanted!r} of {server!r} not found at {[s.location.name for s in scans]}"
                ) from None
            raise RestoreError(
                f"the base backup {wanted} of incremental {child} is missing at every location "
                f"({', '.join(s.location.name for s in scans)}): the chain cannot be restored"
            ) from None
        manifest = copies[0][1]
        if manifest.method is not BackupMethod.PHYSICAL:
            raise RestoreError(f"backup {wanted} is a {manifest.method.value} backup, not physical")
        chain.insert(0, copies)
        if len(chain) > 10_000:
            raise RestoreError(f"backup chain of {backup_id} does not end (parent cycle?)")
        if manifest.kind is BackupKind.FULL:
            break
        if manifest.parent_id is None:
            raise RestoreError(f"incremental {manifest.backup_id} has no parent_id in its manifest")
        child, wanted = manifest.backup_id, manifest.parent_id
    validate_chain([copies[0][1] for copies in chain])
    return chain


# --------------------------------------------------------------------------- restore
@dataclass
class ChainReport:
    """What :func:`restore_physical` did: seconds per stage, the location each backup of the
    chain was fetched from, and the unusable copies it skipped (corrupt, missing)."""

    durations: dict[str, float] = field(default_factory=dict)
    locations_used: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _extract(
    path: str,
    compression: str,
    flavor: Flavor,
    directory: str,
    timeout: float | None,
    keyring: Keyring | None = None,
    stream_format: str = "",
    program: Sequence[str] | None = None,
) -> None:
    """Stream-decrypt (with ``keyring``) and decompress ``path`` into ``mbstream -x -C
    directory`` (``tar -x`` for a CLONE copy). A decryption failure (tampering, truncation) raises
    :class:`~mysqlops.errors.EncryptionError`; the caller removes what was extracted."""
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    with (
        process.Pipeline(
            [unpack_argv(stream_format, flavor, directory, program=program)],
            stdin=process.PIPE,
            stdout=process.DEVNULL,
            timeout=timeout,
            name=f"extract {os.path.basename(path)}",
        ) as pipe,
        open(path, "rb") as src,
    ):
        sink = pipe.stdin_pipe
        try:
            for chunk in iter_chunks(src, CHUNK):
                raw = dec.decompress(decryptor.update(chunk) if decryptor is not None else chunk)
                if raw:
                    sink.write(raw)
            if decryptor is not None:
                raw = dec.decompress(decryptor.finalize())  # raises on truncation/tampering
                if raw:
                    sink.write(raw)
            tail = dec.finish()
            if tail:
                sink.write(tail)
        except BrokenPipeError:
            pass  # the extractor died: wait() reports its error
        pipe.wait()


def _check_tool_series(flavor: Flavor, server_version: str) -> clients.PhysicalTools:
    """The backup tool (and mbstream) of the backup's server series: the build's own, checked
    (prepare applies that series' redo log, so another series' tool cannot be trusted)."""
    try:
        parsed = ServerVersion.parse(server_version)
    except ConfigError as exc:
        raise RestoreError(
            f"the backup's manifest names no usable server version ({server_version!r})"
        ) from exc
    version = ServerVersion(flavor, parsed.major, parsed.minor, parsed.patch)
    tools = clients.physical_tools(version)
    problems, _line = clients.check_physical(tools, version)
    if problems:
        raise RestoreError(
            f"cannot prepare a backup of a {flavor.value} {version.series} server here: "
            + "; ".join(problems)
        )
    return tools


def restore_physical(
    copies_chain: Sequence[Sequence[tuple[Location, BackupManifest]]],
    target_dir: str,
    staging_dir: str | None = None,
    log: LogFn | None = None,
    *,
    timeout: float | None = 24 * 3600,
    report: ChainReport | None = None,
    keyring: Keyring | None = None,
) -> str:
    """Fetch, verify, extract and prepare a chain (full first, then incrementals in order)
    into ``target_dir`` (created; must not exist or be empty). Returns the prepared datadir.

    Every file of the chain is downloaded and sha256-checked (falling back to the next
    location) before anything is extracted; on any failure ``target_dir`` is removed again.
    ``report`` (optional) receives durations, the location each backup came from and the
    unusable copies met on the way. Encrypted backups are decrypted with ``keyring``; a backup
    whose key id is not in it fails before anything is fetched or created.
    """
    say = log or (lambda _m: None)
    report = report if report is not None else ChainReport()
    timings = report.durations
    if not copies_chain or any(not copies for copies in copies_chain):
        raise RestoreError("empty backup chain or a backup without copies: nothing to restore")
    manifests = [copies[0][1] for copies in copies_chain]
    for copies in copies_chain:
        for _location, copy in copies:
            validate_backup_manifest(copy)  # names that could leave staging are refused first
    validate_chain(manifests)
    for manifest in manifests:
        check_key(manifest, keyring)
    flavor = Flavor(manifests[0].flavor)
    clone = is_clone(manifests[0])
    tools: clients.PhysicalTools | None = None
    if clone:
        process.require_program("tar", package_hint="tar")  # a CLONE copy needs no prepare tool
    else:
        tools = _check_tool_series(flavor, manifests[0].server_version)
    target = os.path.abspath(target_dir)
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise RestoreError(f"restore target {target} exists and is not an empty directory")
    created = not os.path.exists(target)
    staging = private_tempdir(staging_dir, "mysqlops-prestore-")
    try:
        t0 = time.monotonic()
        fetched: list[str] = []
        for copies, manifest in zip(copies_chain, manifests, strict=True):
            directory = os.path.join(staging, manifest.backup_id)
            os.mkdir(directory, 0o700)
            files, problems = fetch_backup_files(list(copies), manifest.files, directory, say)
            report.problems += problems
            report.locations_used[manifest.backup_id] = files[0].location
            say(f"fetched {manifest.kind.value} {manifest.backup_id} from {files[0].location}")
            fetched.append(files[0].path)
        timings["download"] = round(time.monotonic() - t0, 3)
        os.makedirs(target, mode=0o700, exist_ok=True)
        t1 = time.monotonic()
        dirs: list[str] = []
        for index, (path, manifest) in enumerate(zip(fetched, manifests, strict=True)):
            directory = target if index == 0 else os.path.join(staging, f"inc-{index}")
            os.makedirs(directory, mode=0o700, exist_ok=True)
            _extract(
                path,
                manifest.compression,
                flavor,
                directory,
                timeout,
                keyring if manifest.encryption_key_id else None,
                TAR_FORMAT if clone else "",
                tools.stream if tools is not None else None,
            )
            os.unlink(path)  # the compressed copy is not needed any more
            if clone:
                if not os.path.isfile(os.path.join(directory, "mysql.ibd")):
                    raise IntegrityError(
                        f"backup {manifest.backup_id}: the unpacked CLONE copy has no mysql.ibd: not a MySQL datadir"
                    )
                dirs.append(directory)
                continue
            cp = parse_checkpoints(read_first(directory, CHECKPOINTS_FILES))
            if (cp.from_lsn, cp.to_lsn) != (manifest.lsn_from, manifest.lsn_to):
                raise IntegrityError(
                    f"backup {manifest.backup_id}: the stream's LSN range {cp.from_lsn}..{cp.to_lsn} differs "
                    f"from its manifest's {manifest.lsn_from}..{manifest.lsn_to}"
                )
            dirs.append(directory)
        timings["extract"] = round(time.monotonic() - t1, 3)
        t2 = time.monotonic()
        last = len(dirs) - 1
        for index, directory in enumerate([] if clone else dirs):  # a CLONE copy is ready as is
            argv = prepare_argv(
                flavor,
                target,
                incremental_dir=directory if index > 0 else None,
                final=index == last,
                program=tools.backup if tools is not None else None,
            )
            say(f"prepare {manifests[index].kind.value} {manifests[index].backup_id}")
            process.run(argv, timeout=timeout, name=f"prepare of {manifests[index].backup_id}")
            if index > 0:
                shutil.rmtree(directory, ignore_errors=True)
        if not clone:
            timings["prepare"] = round(time.monotonic() - t2, 3)
        return target
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for name in os.listdir(target) if os.path.isdir(target) else ():
                path = os.path.join(target, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- restore test
def scratch_build(manifest: BackupManifest) -> str:
    """The server build a physical copy starts on: the backup's own flavor and series (InnoDB
    files are not portable across series before an upgrade has run on them)."""
    return builds.build_name_for(ServerVersion.parse(manifest.server_version, manifest.flavor))


@dataclass
class PhysicalRestoreTest:
    backup_id: str
    server: str
    chain: list[str]  # backup ids, full first
    checks: list[Check]
    durations: dict[str, float]
    target_version: str
    certificate: RestoreCertificate
    locations_used: dict[str, str] = field(default_factory=dict)  # backup id -> location
    problems: list[str] = field(default_factory=list)  # unusable copies skipped

    @property
    def passed(self) -> bool:
        return self.certificate.passed


def _compare_tables(
    database: str, expected: Mapping[str, TableStat], restored: Mapping[str, TableStat]
) -> list[Check]:
    checks = []
    for table in sorted(set(expected) | set(restored)):
        want, got = expected.get(table), restored.get(table)
        name = f"{database}.{table}: rows and checksum"
        if want is None:
            checks.append(Check(name, False, "table exists after restore but not in the expected data"))
        elif got is None:
            checks.append(Check(name, False, f"missing after restore (expected rows {want.rows})"))
        else:
            ok = (want.rows, want.checksum) == (got.rows, got.checksum)
            detail = (
                f"rows {got.rows} checksum {got.checksum}"
                if ok
                else f"expected rows {want.rows} checksum {want.checksum}, got rows {got.rows} checksum {got.checksum}"
            )
            checks.append(Check(name, ok, detail))
    return checks


def restore_test_physical(
    copies_chain: Sequence[Sequence[tuple[Location, BackupManifest]]],
    *,
    source: ServerSpec | None = None,
    expected: Mapping[str, Mapping[str, TableStat]] | None = None,
    databases: Sequence[str] | None = None,
    staging_dir: str | None = None,
    log: LogFn | None = None,
    timeout: float | None = 24 * 3600,
    start_timeout: float = 300,
    keyring: Keyring | None = None,
) -> PhysicalRestoreTest:
    """Prepare the chain, start a scratch sandbox server on the prepared datadir and compare
    every table's row count and content checksum with ``expected`` ({database: {table:
    TableStat}}) or, when not given, with the ``source`` server now (meaningful only while
    the source has not changed since the last backup of the chain, e.g. a quiet replica).
    The scratch server is always stopped and every directory removed."""
    say = log or (lambda _m: None)
    if expected is None and source is None:
        raise ConfigError("restore_test_physical needs the source server or the expected table checksums")
    for copies in copies_chain:
        for _location, copy in copies:
            validate_backup_manifest(copy)  # a hostile manifest is refused: no test, no certificate
    last = copies_chain[-1][0][1] if copies_chain and copies_chain[-1] else None
    if last is None:
        raise RestoreError("empty backup chain: nothing to test")
    wanted = list(databases) if databases else list(last.databases)
    report = ChainReport()
    durations = report.durations
    checks: list[Check] = []
    target_version = "unknown"
    reaper.reap([staging_dir], log=say)
    root = private_tempdir(staging_dir, "myops-phys-")
    scratch_name = f"scratch-{secrets.token_hex(3)}"
    if len(os.path.join(root, scratch_name, "mysqld.sock")) > 107:
        shutil.rmtree(root, ignore_errors=True)
        raise ConfigError(
            f"staging_dir {staging_dir} is too long a path for the scratch server's unix socket "
            "(107 bytes at most): pick a shorter staging directory"
        )
    server = None
    try:
        t0 = time.monotonic()
        prepared = restore_physical(
            copies_chain,
            os.path.join(root, "prepared"),
            root,
            say,
            timeout=timeout,
            report=report,
            keyring=keyring,
        )
        checks.append(
            Check(
                "chain fetched, verified and prepared",
                True,
                ", ".join(f"{b} from {loc}" for b, loc in report.locations_used.items()),
            )
        )
        t1 = time.monotonic()
        server = sandbox.start_server_on_datadir(
            root,
            scratch_name,
            prepared,
            server_id=4_000_000_000 + secrets.randbelow(200_000_000),
            timeout=start_timeout,
            build=scratch_build(last),
        )
        durations["start"] = round(time.monotonic() - t1, 3)
        checks.append(
            Check("server starts on the prepared datadir", True, f"{server.flavor.value} {server.version}")
        )
        target_version = f"{server.flavor.value} {server.version}"
        t2 = time.monotonic()
        reference: dict[str, dict[str, TableStat]] = {}
        if expected is not None:
            reference = {d: dict(expected.get(d, {})) for d in wanted}
        else:
            assert source is not None
            with db.session(source, read_timeout=3600) as conn:
                present = set(db.user_databases(conn))
                for database in wanted:
                    reference[database] = table_checksums(conn, database) if database in present else {}
        with db.session(server.spec(), read_timeout=3600) as conn:
            restored_dbs = set(db.user_databases(conn))
            for database in wanted:
                if database not in restored_dbs:
                    checks.append(Check(f"database {database} present", False, "missing after restore"))
                    continue
                checks.append(Check(f"database {database} present", True))
                checks += _compare_tables(database, reference[database], table_checksums(conn, database))
        durations["verify"] = round(time.monotonic() - t2, 3)
        durations["total"] = round(time.monotonic() - t0, 3)
    except MysqlopsError as exc:
        checks.append(Check("physical restore", False, str(exc)[:2000]))
        say(f"physical restore test failed: {exc}")
    finally:
        if server is not None:
            sandbox.stop_server(server)
        shutil.rmtree(root, ignore_errors=True)
    location = copies_chain[-1][0][0].name
    certificate = make_certificate(last, location, checks, durations, target_version, ())
    return PhysicalRestoreTest(
        backup_id=last.backup_id,
        server=last.server,
        chain=[copies[0][1].backup_id for copies in copies_chain],
        checks=checks,
        durations=durations,
        target_version=target_version,
        certificate=certificate,
        locations_used=dict(report.locations_used),
        problems=list(report.problems),
    )
