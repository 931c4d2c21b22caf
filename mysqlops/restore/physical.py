"""Physical restores: a chain fetched, verified, extracted and prepared into a datadir.

:func:`restore_physical` is the engine (also under the restore tests of
:mod:`mysqlops.restore.physical_proof`): every file of the chain downloaded and sha256-checked
first, then ``mbstream -x`` (``tar -x`` for a CLONE copy) and ``--prepare`` with the backup's
own series' tool. :func:`run_physical` is the operator's entry point (the ``restore-physical``
flow): on the database host, into the empty datadir of a stopped server, the prepared datadir
appearing whole at its place or not at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops import catalog
from mysqlops.adapters import clients, process, reaper
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.backup.physical import CHECKPOINTS_FILES, is_clone, parse_checkpoints, read_first
from mysqlops.errors import ConfigError, IntegrityError, RestoreError
from mysqlops.manifest import BackupManifest, validate_backup_manifest
from mysqlops.model import Flavor, Location, ServerVersion
from mysqlops.restore.chain import physical_chain, validate_chain
from mysqlops.restore.fetch import check_key, fetch_backup_files
from mysqlops.runs import RunContext
from mysqlops.streams.checksum import CHUNK, iter_chunks
from mysqlops.streams.compression import codec_from_label
from mysqlops.streams.crypto import Decryptor, Keyring
from mysqlops.tools.physical import TAR_FORMAT, prepare_argv, unpack_argv


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
    ctx: RunContext | None = None,
    *,
    report: ChainReport | None = None,
) -> str:
    """Fetch, verify, extract and prepare a chain (full first, then incrementals in order)
    into ``target_dir`` (created; must not exist or be empty). Returns the prepared datadir.

    Every file of the chain is downloaded and sha256-checked (falling back to the next
    location) before anything is extracted; on any failure ``target_dir`` is removed again.
    ``report`` (optional) receives durations, the location each backup came from and the
    unusable copies met on the way. ``ctx``: the staging directory of the fetched copies, the
    keyring of encrypted backups (a backup whose key id is not in it fails before anything is
    fetched or created), the reporter and the timeout of each child process.
    """
    ctx = ctx if ctx is not None else RunContext()
    say, keyring, timeout = ctx.reporter.info, ctx.keyring, ctx.timeout
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
    staging = private_tempdir(ctx.staging_dir, "mysqlops-prestore-")
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


# --------------------------------------------------------------------------- the operator's restore
@dataclass(frozen=True)
class PhysicalRestoreRequest:
    """A physical chain (``backup_id``, ``latest``: the newest physical backup of ``server``,
    the name its backups are recorded under) restored into ``datadir``: the datadir of a
    stopped server on the machine this runs on, absent or empty."""

    datadir: str
    locations: tuple[Location, ...]
    server: str
    backup_id: str = "latest"

    def check(self) -> None:
        """Judged before any location is read or the disk touched."""
        if not self.locations:
            raise ConfigError("no backup location given: pass at least one BackupLocation block name")
        if not self.server:
            raise ConfigError("a physical restore needs server=<the backed-up server's name>")
        if not self.datadir or not os.path.isabs(self.datadir):
            raise ConfigError(
                f"datadir must be an absolute path on the database host, e.g. /var/lib/mysql; got {self.datadir!r}"
            )
        if os.path.normpath(self.datadir) == "/":
            raise ConfigError("datadir / is not a server's data directory: name the datadir itself")


WORK_PREFIX = "mysqlops-datadir-"  # the marked work directory of run_physical


def own_filesystem(datadir: str) -> bool:
    """``datadir`` exists and is a filesystem of its own (a mount point): it cannot be replaced
    by a rename, so the chain is prepared inside it and its entries moved in."""
    if not os.path.isdir(datadir) or os.path.islink(datadir):
        return False
    return os.path.ismount(datadir) or os.stat(datadir).st_dev != os.stat(os.path.dirname(datadir)).st_dev


def _chown_tree(top: str, uid: int, gid: int) -> None:
    os.chown(top, uid, gid)
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(base, name), uid, gid, follow_symlinks=False)


def target_problems(datadir: str, ignore: str = "") -> list[str]:
    """Why ``datadir`` cannot receive a physical restore now (empty: it can). A physical restore
    never writes over data and never under a running server. ``ignore``: an entry that does
    not count (run_physical's own work directory inside a mounted datadir)."""
    problems: list[str] = []
    parent = os.path.dirname(datadir)
    if not os.path.isdir(parent):
        problems.append(f"the parent directory {parent} of datadir {datadir} does not exist: create it first")
    if os.path.islink(datadir):
        problems.append(
            f"datadir {datadir} is a symbolic link: give the directory it points to "
            f"({os.path.realpath(datadir)}) as datadir"
        )
    elif os.path.exists(datadir):
        if not os.path.isdir(datadir):
            problems.append(f"datadir {datadir} exists and is not a directory")
        else:
            mounted = own_filesystem(datadir)  # its lost+found belongs to the filesystem
            skip = {ignore, "lost+found"} if mounted else {ignore}
            entries = sorted(e for e in os.listdir(datadir) if e not in skip)
            if entries:
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                aside = (
                    "move its contents elsewhere (it is a mount point)"
                    if mounted
                    else f"move the old datadir aside (mv {datadir} {datadir}.old)"
                )
                problems.append(
                    f"datadir {datadir} is not empty ({len(entries)} entries: {shown}): a physical restore "
                    f"never writes over data. Stop the server, {aside} and run the restore again"
                )
    for user in reaper.users_of(datadir):
        problems.append(
            f"{user} uses {datadir} (a server running on it?): stop it before restoring into its datadir"
        )
    return problems


@dataclass(frozen=True)
class PhysicalRestoreOutcome:
    """What :func:`run_physical` did."""

    datadir: str
    server: str
    chain: tuple[str, ...]  # backup ids, full first
    flavor: str
    server_version: str
    owner_uid: int
    locations_used: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def backup_id(self) -> str:
        return self.chain[-1]

    def next_steps(self) -> str:
        chown = (
            f"chown -R mysql:mysql {self.datadir} (the files belong to uid {self.owner_uid}), then "
            if self.owner_uid == 0
            else ""
        )
        return (
            f"{chown}start a {self.flavor} {self.server_version} server (same series) with "
            f"datadir={self.datadir}"
        )

    def summary(self) -> dict[str, Any]:
        """What the restore-physical flow returns."""
        return {
            "backup_id": self.backup_id,
            "datadir": self.datadir,
            "server": self.server,
            "chain": list(self.chain),
            "locations_used": dict(self.locations_used),
            "problems": list(self.problems),
            "durations": dict(self.durations),
            "next_steps": self.next_steps(),
        }

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"backup_id": b, "location": self.locations_used.get(b, ""), "datadir": self.datadir}
            for b in self.chain
        ]


def run_physical(request: PhysicalRestoreRequest, ctx: RunContext) -> PhysicalRestoreOutcome:
    """Restore ``request``'s chain into its datadir (see :class:`PhysicalRestoreRequest`).

    The target is judged first (:func:`target_problems`: absent or empty, no process on it).
    The chain is fetched (sha256-checked, falling back to the next location), extracted and
    prepared in a marked work directory beside the datadir (same filesystem; the copies are
    staged there too unless ``ctx.staging_dir`` says otherwise), the target judged again, and
    the prepared datadir renamed into place: it appears whole or not at all. An existing empty
    datadir keeps its mode and, when this runs as root, its owner is given to every file (the
    server's user). A run killed on the way leaves only the marked work directory, which the
    next run's reaper removes. A datadir that is a mount point cannot be replaced: the work
    directory is made inside it and the prepared entries are moved in at the end (a run killed
    during those renames leaves a partial datadir, which the next run refuses as not empty)."""
    request.check()
    datadir = os.path.normpath(request.datadir)
    problems = target_problems(datadir)
    if problems:
        raise RestoreError("; ".join(problems))
    scans = catalog.scan(request.locations)
    wanted = None if request.backup_id == "latest" else request.backup_id
    for problem in catalog.unusable_copies(scans, request.server, wanted):
        ctx.reporter.warning(f"never restored from: {problem}")
    chain = physical_chain(scans, request.server, request.backup_id)
    last = chain[-1][0][1]
    mounted = own_filesystem(datadir)
    work = private_tempdir(datadir if mounted else os.path.dirname(datadir), WORK_PREFIX)
    report = ChainReport()
    try:
        staged = ctx if ctx.staging_dir else dataclasses.replace(ctx, staging_dir=work)
        prepared = restore_physical(chain, os.path.join(work, "datadir"), staged, report=report)
        problems = target_problems(datadir, ignore=os.path.basename(work))
        if problems:
            raise RestoreError("the datadir changed while the chain was prepared: " + "; ".join(problems))
        if os.path.isdir(datadir):
            st = os.stat(datadir)
            os.chmod(prepared, st.st_mode & 0o7777)  # the empty datadir's mode is kept
            if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
                _chown_tree(prepared, st.st_uid, st.st_gid)  # and its owner (the server's user)
        if mounted:  # a mount point cannot be replaced: its entries move in, one rename each
            for name in sorted(os.listdir(prepared)):
                os.rename(os.path.join(prepared, name), os.path.join(datadir, name))
        else:
            os.rename(prepared, datadir)  # replaces an empty directory atomically
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcome = PhysicalRestoreOutcome(
        datadir=datadir,
        server=request.server,
        chain=tuple(copies[0][1].backup_id for copies in chain),
        flavor=last.flavor,
        server_version=last.server_version,
        owner_uid=os.stat(datadir).st_uid,
        locations_used=dict(report.locations_used),
        problems=tuple(report.problems),
        durations=dict(report.durations),
    )
    ctx.reporter.info(f"restored {len(outcome.chain)} backup(s) into {datadir}: {outcome.next_steps()}")
    return outcome
