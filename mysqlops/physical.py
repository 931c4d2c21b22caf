"""Physical backups: ``mariabackup`` (MariaDB) / ``xtrabackup`` (MySQL), full and incremental.

Backup: ``mariabackup --backup --stream=mbstream`` → compression → sha256 → ONE staging file
(``backup.mbstream.zst``) → upload to every location with read-back verification → manifest
last (method ``physical``; ``lsn_from``/``lsn_to`` from ``xtrabackup_checkpoints``, which
``--extra-lsndir`` leaves on local disk; binlog coordinates from ``xtrabackup_info``).
An incremental is streamed with ``--incremental-lsn=<base.lsn_to>`` (a streamed backup has no
local base directory) and records ``parent_id`` = the base backup.

Restore: every backup of the chain (full first, then incrementals in order) is fetched with
its sha256 checked, falling back to the next location on a bad copy, BEFORE anything is
extracted; each stream is decompressed into ``mbstream -x``; then ``--prepare`` on the full
and once per incremental (``--incremental-dir``). A broken chain (missing parent, LSN gap)
fails before preparing.

LIMITATION: the backup tool connects to the server (credentials through the option file) AND
reads the InnoDB/Aria/MyISAM files of the datadir directly. :func:`run_physical_backup` must
therefore run on the database host, as a user that can read the datadir, with the same major
version of mariabackup/xtrabackup as the server. mariabackup (10.11, measured) always reads the
datadir the server reports in ``@@datadir``, whatever ``--datadir`` says: ``datadir_hint`` only
helps xtrabackup (MySQL); for MariaDB a hint that differs from ``@@datadir`` is reported as a
warning and ``@@datadir`` itself must be readable here.
The backup account needs RELOAD, PROCESS, LOCK TABLES and BINLOG MONITOR (MariaDB) /
REPLICATION CLIENT + BACKUP_ADMIN (MySQL). The staging directory must hold the compressed
stream. A physical backup always covers the whole instance (every database, the grant tables).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from mysqlops import catalog, ids
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, reaper, sandbox
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.adapters.storage import Store
from mysqlops.backup import (
    READ_CHUNK,
    BackupResult,
    StagedFile,
    _free_bytes,
    _own_version,
    _Sink,
    _tool_version,
    _upload_everywhere,
)
from mysqlops.checksum import CHUNK, iter_chunks
from mysqlops.commands import ClientTools, client_option_file
from mysqlops.compression import Codec, codec_from_label
from mysqlops.crypto import Decryptor, Keyring, key_id
from mysqlops.dialect import dialect_for
from mysqlops.errors import (
    ConfigError,
    IntegrityError,
    MysqlopsError,
    PreflightFailed,
    RestoreError,
    StorageError,
)
from mysqlops.manifest import (
    BackupFile,
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
    BinlogCoordinates,
    Flavor,
    Location,
    ServerSpec,
    ServerVersion,
)
from mysqlops.restore import check_key, fetch_backup_files, make_certificate
from mysqlops.tablesum import table_checksums

LogFn = Callable[[str], None]
Copies = list[tuple[Location, BackupManifest]]
CHECKPOINTS_FILE = "xtrabackup_checkpoints"
INFO_FILE = "xtrabackup_info"
BINLOG_INFO_FILES = ("mariadb_backup_binlog_info", "xtrabackup_binlog_info")


# --------------------------------------------------------------------------- argv builders
def stream_format(flavor: Flavor) -> str:
    return "mbstream" if flavor is Flavor.MARIADB else "xbstream"


def option_groups(flavor: Flavor) -> tuple[str, ...]:
    """Option-file groups the backup tool reads credentials from (it ignores ``[client]``
    in its server-group pass, and ``[mysqld]`` would also configure the server options)."""
    return ("mariabackup",) if flavor is Flavor.MARIADB else ("xtrabackup",)


def backup_argv(
    flavor: Flavor,
    *,
    target_dir: str,
    extra_lsndir: str,
    datadir: str | None = None,
    incremental_lsn: int | None = None,
    parallel: int = 1,
    program: str | None = None,
    extra: Sequence[str] = (),
) -> tuple[str, ...]:
    """``mariabackup --backup --stream=mbstream`` (or ``xtrabackup ... --stream=xbstream``).

    The stream goes to stdout; ``--extra-lsndir`` keeps ``xtrabackup_checkpoints`` and
    ``xtrabackup_info`` on local disk; ``--target-dir`` only holds temporary files.
    """
    tools = ClientTools.for_flavor(flavor)
    argv = [
        program or tools.backup,
        "--backup",
        f"--stream={stream_format(flavor)}",
        f"--target-dir={target_dir}",
        f"--extra-lsndir={extra_lsndir}",
    ]
    if datadir:
        argv.append(f"--datadir={datadir}")
    if incremental_lsn is not None:
        if int(incremental_lsn) < 0:
            raise ConfigError(f"incremental LSN must be >= 0, got {incremental_lsn}")
        argv.append(f"--incremental-lsn={int(incremental_lsn)}")
    if parallel > 1:
        argv.append(f"--parallel={int(parallel)}")
    return (*argv, *extra)


def extract_argv(flavor: Flavor, directory: str, *, program: str | None = None) -> tuple[str, ...]:
    """``mbstream -x -C dir`` / ``xbstream -x -C dir``: unpack a stream read from stdin."""
    return (program or ClientTools.for_flavor(flavor).stream, "-x", "-C", directory)


def prepare_argv(
    flavor: Flavor,
    target_dir: str,
    *,
    incremental_dir: str | None = None,
    final: bool = True,
    program: str | None = None,
) -> tuple[str, ...]:
    """``--prepare`` of a full backup, or applying one incremental onto it.

    xtrabackup (MySQL) needs ``--apply-log-only`` on every step but the last; mariabackup
    10.2+ does not (and deprecates the option), so it is never passed for MariaDB.
    """
    argv = [program or ClientTools.for_flavor(flavor).backup, "--prepare", f"--target-dir={target_dir}"]
    if incremental_dir:
        argv.append(f"--incremental-dir={incremental_dir}")
    if flavor is Flavor.MYSQL and not final:
        argv.append("--apply-log-only")
    return tuple(argv)


# --------------------------------------------------------------------------- metadata parsing
@dataclass(frozen=True)
class Checkpoints:
    backup_type: str
    from_lsn: int
    to_lsn: int
    last_lsn: int | None = None


def parse_checkpoints(text: str) -> Checkpoints:
    """``xtrabackup_checkpoints`` (``key = value`` lines)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        return Checkpoints(
            backup_type=values.get("backup_type", ""),
            from_lsn=int(values["from_lsn"]),
            to_lsn=int(values["to_lsn"]),
            last_lsn=int(values["last_lsn"]) if values.get("last_lsn") else None,
        )
    except (KeyError, ValueError) as exc:
        raise IntegrityError(f"xtrabackup_checkpoints is malformed ({exc!r}): {text[:200]!r}") from None


_BINLOG_POS_RE = re.compile(
    r"filename\s+'(?P<file>[^']+)',\s*position\s+'?(?P<pos>\d+)'?"
    r"(?:,\s*GTID of the last change\s+'(?P<gtid>[^']*)')?"
)


def parse_binlog_info(info_text: str = "", binlog_info_text: str = "") -> BinlogCoordinates | None:
    """Binlog coordinates of the backup's consistent point.

    ``binlog_info_text``: ``mariadb_backup_binlog_info``/``xtrabackup_binlog_info``
    (``file<TAB>position[<TAB>gtid]``); ``info_text``: ``xtrabackup_info``, whose
    ``binlog_pos = filename 'f', position 'p', GTID of the last change 'g'`` line is used when
    the former is not available. None when binary logging is off.
    """
    for line in binlog_info_text.splitlines():
        parts = line.strip().split("\t") if "\t" in line else line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            gtid = parts[2].strip() if len(parts) > 2 and parts[2].strip() else None
            return BinlogCoordinates(parts[0].strip(), int(parts[1]), gtid)
    for line in info_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "binlog_pos":
            m = _BINLOG_POS_RE.search(value)
            if m:
                return BinlogCoordinates(m.group("file"), int(m.group("pos")), m.group("gtid") or None)
    return None


# --------------------------------------------------------------------------- backup
def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def _tree_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def newest_physical(scan: catalog.LocationScan, server: str) -> BackupManifest | None:
    """The newest complete physical backup (full or incremental) of ``server`` at a location."""
    found = [
        m
        for m in scan.backups
        if m.server == server
        and m.method is BackupMethod.PHYSICAL
        and m.status is BackupStatus.COMPLETE
        and m.lsn_to is not None
    ]
    return max(found, key=lambda m: m.backup_id) if found else None


@dataclass(frozen=True)
class _Source:
    version: ServerVersion
    datadir: str
    databases: tuple[str, ...]
    identity: dict[str, Any]
    log_bin: bool


def _inspect_source(spec: ServerSpec, datadir_hint: str | None) -> _Source:
    with db.session(spec) as conn:
        version = db.server_version(conn)
        row = db.query(
            conn, "SELECT @@datadir AS d, @@hostname AS h, @@port AS p, @@server_id AS s, @@log_bin AS lb"
        )[0]
        databases = tuple(db.user_databases(conn, dialect_for(version).system_schemas()))
    identity = {"hostname": str(row["h"]), "port": int(row["p"]), "server_id": int(row["s"])}
    reported = str(row["d"]).rstrip("/") or "/"
    identity["datadir"] = reported
    # mariabackup cds into the server-reported datadir whatever --datadir says
    datadir = reported if version.flavor is Flavor.MARIADB or not datadir_hint else datadir_hint
    return _Source(version, datadir.rstrip("/") or "/", databases, identity, bool(int(row["lb"] or 0)))


def run_physical_backup(
    spec: ServerSpec,
    locations: Sequence[Location],
    codec: Codec,
    *,
    incremental: bool = False,
    base: BackupManifest | None = None,
    staging_dir: str | None = None,
    now: datetime | None = None,
    datadir_hint: str | None = None,
    log: LogFn | None = None,
    parallel: int = 1,
    tags: Sequence[str] = (),
    timeout: float | None = 24 * 3600,
    program: str | None = None,
    encryption_key: bytes | None = None,
) -> BackupResult:
    """One physical backup (full, or incremental on ``base``) of ``spec`` at every location.

    ``base`` defaults (for ``incremental=True``) to the newest physical backup of the server
    in the catalog of the FIRST location. See the module docstring for where this must run.
    ``encryption_key`` (32 bytes): the stream is encrypted (AES-256-GCM, chunked) after
    compression, before it reaches the staging disk; the manifest records the key id only.
    """
    say = log or (lambda _m: None)
    kid = key_id(encryption_key) if encryption_key is not None else None  # a bad key fails first
    if not locations:
        raise ConfigError("no backup location given: pass at least one BackupLocation block name")
    names = [loc.name for loc in locations]
    if len(set(names)) != len(names):
        raise ConfigError(f"location names must be distinct, got {names}")
    reaper.reap([staging_dir], log=say)  # what killed runs left, before the space check
    if base is not None and not incremental:
        raise ConfigError("a base backup was given for a full backup: pass incremental=True or no base")
    source = _inspect_source(spec, datadir_hint)
    flavor = source.version.flavor
    problems: list[str] = []
    warnings: list[str] = []
    if not os.path.isdir(source.datadir) or not os.access(source.datadir, os.R_OK | os.X_OK):
        problems.append(
            f"the server's datadir {source.datadir} is not readable here: a physical backup reads the "
            "datadir files directly, so it must run on the database host as a user that can read them"
            + (
                ""
                if flavor is Flavor.MARIADB
                else " (or pass datadir_hint when the path differs here, e.g. in a container)"
            )
        )
    if datadir_hint and os.path.realpath(datadir_hint) != os.path.realpath(source.datadir):
        warnings.append(
            f"datadir_hint {datadir_hint} is ignored: mariabackup reads the datadir the server reports "
            f"({source.datadir})"
        )
    tool = program or ClientTools.for_flavor(flavor).backup
    try:
        tool = process.require_program(
            tool, package_hint="mariadb-backup" if flavor is Flavor.MARIADB else "percona-xtrabackup-80"
        )
    except MysqlopsError as exc:
        problems.append(str(exc))
    if incremental and base is None:
        scan = catalog.scan_location(locations[0])
        if scan.errors:
            problems.append(f"cannot read the catalog of {locations[0].name!r}: {'; '.join(scan.errors)}")
        base = newest_physical(scan, spec.name)
        if base is None and not scan.errors:
            problems.append(
                f"incremental backup requested but location {locations[0].name!r} has no physical backup of "
                f"{spec.name!r} to base it on: make a full physical backup first"
            )
    if base is not None:
        if base.method is not BackupMethod.PHYSICAL or base.lsn_to is None:
            problems.append(f"base backup {base.backup_id} is not a physical backup with an LSN")
        if base.server != spec.name:
            problems.append(
                f"base backup {base.backup_id} belongs to server {base.server!r}, not {spec.name!r}"
            )
        if base.flavor != flavor.value:
            problems.append(f"base backup {base.backup_id} is {base.flavor}, the server is {flavor.value}")
    for loc in locations:
        try:
            Store(loc, retries=2).check_writable()
        except StorageError as exc:
            problems.append(str(exc))
    staging = staging_dir or tempfile.gettempdir()
    free = _free_bytes(staging)
    needed = (0 if problems else _tree_bytes(source.datadir)) // 2 + 64 * 2**20
    if free is not None and not problems and free < needed:
        problems.append(
            f"staging directory {staging} has {free / 2**20:.0f} MiB free, the compressed stream may need "
            f"about {needed / 2**20:.0f} MiB: free space or set staging_dir on a larger disk"
        )
    if problems:
        raise PreflightFailed(problems)
    if not source.log_bin:
        warnings.append(
            "binary logging is off on this server: the backup records no binlog coordinates, so "
            "point-in-time recovery from it is impossible (add log_bin to [mysqld])"
        )

    started_at = now or datetime.now(UTC)
    backup_id = ids.new_backup_id(started_at)
    kind = BackupKind.INCREMENTAL if incremental else BackupKind.FULL
    durations: dict[str, float] = {}
    staging_root = private_tempdir(staging_dir, "mysqlops-physical-")
    try:
        lsndir = os.path.join(staging_root, "lsn")
        tmpdir = os.path.join(staging_root, "tmp")
        os.mkdir(lsndir, 0o700)
        os.mkdir(tmpdir, 0o700)
        name = f"backup.{stream_format(flavor)}{codec.extension}"
        staged = StagedFile("", os.path.join(staging_root, name))
        argv = backup_argv(
            flavor,
            target_dir=tmpdir,
            extra_lsndir=lsndir,
            datadir=source.datadir,
            incremental_lsn=base.lsn_to if base is not None else None,
            parallel=parallel,
            program=tool,
        )
        say(
            f"{kind.value} physical backup {backup_id} of {spec.name} ({source.datadir})"
            + (f" on {base.backup_id} from LSN {base.lsn_to}" if base is not None else "")
        )
        t0 = time.monotonic()
        sink = _Sink(staged, codec, encryption_key)
        try:
            with process.Pipeline(
                [argv],
                credentials=client_option_file(spec, groups=option_groups(flavor)),
                stdout=process.PIPE,
                timeout=timeout,
                name=f"{os.path.basename(tool)} --backup of {spec.name}",
            ) as pipe:
                out = pipe.stdout_pipe
                while True:
                    chunk = out.read1(READ_CHUNK) if hasattr(out, "read1") else out.read(READ_CHUNK)
                    if not chunk:
                        break
                    sink.write(chunk)
                pipe.wait()
        finally:
            sink.close()
        durations["backup"] = round(time.monotonic() - t0, 3)
        checkpoints_text = _read_text(os.path.join(lsndir, CHECKPOINTS_FILE))
        if not checkpoints_text:
            raise IntegrityError(
                f"{os.path.basename(tool)} exited 0 but left no {CHECKPOINTS_FILE} in --extra-lsndir: "
                "the backup cannot be trusted"
            )
        cp = parse_checkpoints(checkpoints_text)
        if base is not None and cp.from_lsn != base.lsn_to:
            raise IntegrityError(
                f"incremental starts at LSN {cp.from_lsn}, its base {base.backup_id} ends at {base.lsn_to}"
            )
        info_text = _read_text(os.path.join(lsndir, INFO_FILE))
        binlog_text = next(
            (t for t in (_read_text(os.path.join(lsndir, f)) for f in BINLOG_INFO_FILES) if t), ""
        )
        coordinates = parse_binlog_info(info_text, binlog_text)
        backup_file = BackupFile(
            path=name,
            database=None,
            raw_bytes=staged.raw.size,
            raw_sha256=staged.raw.hexdigest(),
            stored_bytes=staged.stored.size,
            stored_sha256=staged.stored.hexdigest(),
            durations={"backup": durations["backup"]},
        )
        version = source.version
        manifest = BackupManifest(
            backup_id=backup_id,
            server=spec.name,
            location="",
            kind=kind,
            method=BackupMethod.PHYSICAL,
            flavor=flavor.value,
            server_version=f"{version.major}.{version.minor}.{version.patch}",
            databases=source.databases,
            files=(backup_file,),
            started_at=started_at,
            finished_at=datetime.now(UTC),
            compression=codec.label,
            coordinates=coordinates,
            durations=durations,
            tools={"backup": _tool_version(tool), "mysqlops": _own_version()},
            tags=tuple(tags),
            warnings=tuple(warnings),
            encryption_key_id=kid,
            parent_id=base.backup_id if base is not None else None,
            lsn_from=cp.from_lsn,
            lsn_to=cp.to_lsn,
            extra={
                "stream_format": stream_format(flavor),
                "backup_type": cp.backup_type,
                "last_lsn": cp.last_lsn,
                "datadir": source.datadir,
                "server_identity": source.identity,
                "parallel": parallel,
            },
        )
        say(
            f"streamed {staged.raw.size / 2**20:.1f} MiB ({staged.stored.size / 2**20:.1f} MiB stored), "
            f"LSN {cp.from_lsn}..{cp.to_lsn}; uploading to {', '.join(names)}"
        )
        results = _upload_everywhere(manifest, [staged], locations, durations)
        first_ok = next((r.location for r in results if r.ok), "")
        return BackupResult(
            replace(manifest, location=first_ok, durations=dict(durations)), results, warnings
        )
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


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
        if m.lsn_from is None or m.lsn_to is None:
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
) -> None:
    """Stream-decrypt (with ``keyring``) and decompress ``path`` into ``mbstream -x -C
    directory``. A decryption failure (tampering, truncation) raises
    :class:`~mysqlops.errors.EncryptionError`; the caller removes what was extracted."""
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    with (
        process.Pipeline(
            [extract_argv(flavor, directory)],
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


def _check_tool_series(flavor: Flavor, server_version: str) -> str:
    """The local backup tool must be of the backup's server series (prepare is version-bound)."""
    program = process.require_program(
        ClientTools.for_flavor(flavor).backup,
        package_hint="mariadb-backup" if flavor is Flavor.MARIADB else "percona-xtrabackup-80",
    )
    line = _tool_version(program)
    try:
        tool = ServerVersion.parse(line)
        backup = ServerVersion.parse(server_version)
    except ConfigError:
        return line
    if tool.series != backup.series:
        raise RestoreError(
            f"the backup was made from a {backup.series} server but the local {os.path.basename(program)} is "
            f"{tool.series}: prepare it with the {backup.series} tool (install the matching package)"
        )
    return line


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
    _check_tool_series(flavor, manifests[0].server_version)
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
            )
            os.unlink(path)  # the compressed copy is not needed any more
            cp = parse_checkpoints(_read_text(os.path.join(directory, CHECKPOINTS_FILE)))
            if (cp.from_lsn, cp.to_lsn) != (manifest.lsn_from, manifest.lsn_to):
                raise IntegrityError(
                    f"backup {manifest.backup_id}: the stream's LSN range {cp.from_lsn}..{cp.to_lsn} differs "
                    f"from its manifest's {manifest.lsn_from}..{manifest.lsn_to}"
                )
            dirs.append(directory)
        timings["extract"] = round(time.monotonic() - t1, 3)
        t2 = time.monotonic()
        last = len(dirs) - 1
        for index, directory in enumerate(dirs):
            argv = prepare_argv(
                flavor,
                target,
                incremental_dir=directory if index > 0 else None,
                final=index == last,
            )
            say(f"prepare {manifests[index].kind.value} {manifests[index].backup_id}")
            process.run(argv, timeout=timeout, name=f"prepare of {manifests[index].backup_id}")
            if index > 0:
                shutil.rmtree(directory, ignore_errors=True)
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
