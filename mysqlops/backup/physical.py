"""Physical backups: ``mariabackup`` (MariaDB) / ``xtrabackup`` (MySQL, when ``program`` names
it), full and incremental. MySQL without ``program``: the server's CLONE plugin, full backups
only (:mod:`mysqlops.backup.clone`).

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

import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mysqlops import catalog, redact
from mysqlops.adapters import clients, process, reaper
from mysqlops.adapters.localfs import private_tempdir, tree_bytes
from mysqlops.backup.clone import run_clone_backup
from mysqlops.backup.instance import LOG_BIN_OFF, StreamRun, destination_problems, inspect_source
from mysqlops.backup.logical import BackupResult
from mysqlops.backup.preflight import _tool_version
from mysqlops.errors import ConfigError, IntegrityError, MysqlopsError, PreflightFailed
from mysqlops.manifest import BackupManifest
from mysqlops.model import BackupKind, BackupMethod, BackupStatus, BinlogCoordinates, Flavor, Location
from mysqlops.streams.keys import key_id
from mysqlops.tools.client import client_option_file
from mysqlops.tools.physical import backup_argv, option_groups, stream_format
from mysqlops.units import human_bytes

if TYPE_CHECKING:
    from mysqlops.backup.request import BackupRequest
    from mysqlops.runs import RunContext

LogFn = Callable[[str], None]  # (mysqlops.restore.physical imports it from here)
Copies = list[tuple[Location, BackupManifest]]
CHECKPOINTS_FILE = "xtrabackup_checkpoints"
INFO_FILE = "xtrabackup_info"
# mariabackup 11.x names its files mariadb_backup_*; 10.x and xtrabackup xtrabackup_*
CHECKPOINTS_FILES = ("mariadb_backup_checkpoints", CHECKPOINTS_FILE)
INFO_FILES = ("mariadb_backup_info", INFO_FILE)
BINLOG_INFO_FILES = ("mariadb_backup_binlog_info", "xtrabackup_binlog_info")


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


def is_clone(manifest: BackupManifest) -> bool:
    """A physical backup made with MySQL's CLONE plugin (a tar of the copy, no LSN, no prepare)."""
    return manifest.extra.get("physical_tool") == "clone"


def newest_physical(scan: catalog.LocationScan, server: str) -> BackupManifest | None:
    """The newest complete physical backup (full or incremental) of ``server`` at a location."""
    found = [
        m
        for m in scan.backups
        if m.server == server
        and m.method is BackupMethod.PHYSICAL
        and m.status is BackupStatus.COMPLETE
        and (m.lsn_to is not None or is_clone(m))
    ]
    return max(found, key=lambda m: m.backup_id) if found else None


def read_first(directory: str, names: Sequence[str]) -> str:
    """The text of the first of ``names`` present (and not empty) in ``directory``, else ''."""
    return next((t for t in (_read_text(os.path.join(directory, n)) for n in names) if t), "")


def _tool_name(tool: str | Sequence[str]) -> str:
    """The backup tool's base name for messages (past a build's loader prefix)."""
    return os.path.basename(tool) if isinstance(tool, str) else process.program_name(tool)


def run_physical_backup(
    request: BackupRequest, ctx: RunContext, *, base: BackupManifest | None = None
) -> BackupResult:
    """One physical backup (full, or incremental on ``base`` with ``request.incremental``) of
    ``request.server`` at every location; ``request.method`` is not read (this is the physical
    engine), ``request.parallel`` is mariabackup's ``--parallel``.

    ``base`` defaults (for ``incremental=True``) to the newest physical backup of the server
    in the catalog of the FIRST location. See the module docstring for where this must run.
    With ``ctx.keyring`` the stream is encrypted (AES-256-GCM, chunked) after compression,
    before it reaches the staging disk; the manifest records the key id only.
    """
    spec, locations, codec = request.server, request.locations, request.codec
    incremental, program, datadir_hint = request.incremental, request.program, request.datadir_hint
    say = ctx.reporter.info
    encryption_key = ctx.encryption_key
    if encryption_key is not None:
        key_id(encryption_key)  # a bad key fails first
    if not locations:
        raise ConfigError("no backup location given: pass at least one BackupLocation block name")
    names = [loc.name for loc in locations]
    if len(set(names)) != len(names):
        raise ConfigError(f"location names must be distinct, got {names}")
    reaper.reap([ctx.staging_dir], log=say)  # what killed runs left, before the space check
    if base is not None and not incremental:
        raise ConfigError("a base backup was given for a full backup: pass incremental=True or no base")
    source = inspect_source(spec, datadir_hint)
    flavor = source.version.flavor
    if flavor is Flavor.MYSQL and program is None:
        return run_clone_backup(request, ctx, source)  # MySQL: the server's CLONE plugin
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
    tool_record: dict[str, str] = {}
    tool: str | tuple[str, ...]
    if program is not None:  # the caller's own program (xtrabackup for MySQL): as given
        tool = program
        try:
            tool = process.require_program(
                program,
                package_hint="mariadb-backup" if flavor is Flavor.MARIADB else "percona-xtrabackup-80",
            )
        except MysqlopsError as exc:
            problems.append(str(exc))
        tool_record = {"backup": _tool_version(tool)}
    else:  # the server build's own mariabackup, checked against the server's series
        physical = clients.physical_tools(source.version)
        tool = physical.backup
        tool_problems, version_line = clients.check_physical(physical, source.version)
        problems += tool_problems
        tool_record = physical.record(version_line)
        origin = physical.build.describe() if physical.build is not None else "programs on PATH"
        say(f"backup tool: {version_line or process.program_name(tool)} ({origin})")
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
    destination_problems(
        request,
        ctx,
        problems,
        lambda: tree_bytes(source.datadir) // 2 + 64 * 2**20,
        "the compressed stream",
    )
    if problems:
        raise PreflightFailed(problems)
    if not source.log_bin:
        warnings.append(LOG_BIN_OFF)

    kind = BackupKind.INCREMENTAL if incremental else BackupKind.FULL
    staging_root = private_tempdir(ctx.staging_dir, "mysqlops-physical-")
    try:
        run = StreamRun(
            request, ctx, source, staging_root, f"backup.{stream_format(flavor)}{codec.extension}", warnings
        )
        lsndir = os.path.join(staging_root, "lsn")
        tmpdir = os.path.join(staging_root, "tmp")
        os.mkdir(lsndir, 0o700)
        os.mkdir(tmpdir, 0o700)
        argv = backup_argv(
            flavor,
            target_dir=tmpdir,
            extra_lsndir=lsndir,
            datadir=source.datadir,
            incremental_lsn=base.lsn_to if base is not None else None,
            parallel=request.parallel,
            program=tool,
        )
        say(
            f"{kind.value} physical backup {run.backup_id} of {spec.name} ({source.datadir})"
            + (f" on {base.backup_id} from LSN {base.lsn_to}" if base is not None else "")
        )
        t0 = time.monotonic()
        run.stream(
            argv,
            f"{_tool_name(tool)} --backup of {spec.name}",
            credentials=client_option_file(spec, groups=option_groups(flavor)),
            stderr_filter=redact.password_clauses,  # its privilege errors print SHOW GRANTS
        )
        run.durations["backup"] = round(time.monotonic() - t0, 3)
        checkpoints_text = read_first(lsndir, CHECKPOINTS_FILES)
        if not checkpoints_text:
            raise IntegrityError(
                f"{_tool_name(tool)} exited 0 but left no {' or '.join(CHECKPOINTS_FILES)} in --extra-lsndir: "
                "the backup cannot be trusted"
            )
        cp = parse_checkpoints(checkpoints_text)
        if base is not None and cp.from_lsn != base.lsn_to:
            raise IntegrityError(
                f"incremental starts at LSN {cp.from_lsn}, its base {base.backup_id} ends at {base.lsn_to}"
            )
        info_text = read_first(lsndir, INFO_FILES)
        binlog_text = read_first(lsndir, BINLOG_INFO_FILES)
        say(
            f"streamed {human_bytes(run.staged.raw.size)} ({human_bytes(run.staged.stored.size)} stored), "
            f"LSN {cp.from_lsn}..{cp.to_lsn}; uploading to {', '.join(names)}"
        )
        return run.publish(
            coordinates=parse_binlog_info(info_text, binlog_text),
            tools=tool_record,
            kind=kind,
            parent_id=base.backup_id if base is not None else None,
            lsn_from=cp.from_lsn,
            lsn_to=cp.to_lsn,
            extra={
                "stream_format": stream_format(flavor),
                "backup_type": cp.backup_type,
                "last_lsn": cp.last_lsn,
                "parallel": request.parallel,
            },
        )
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
