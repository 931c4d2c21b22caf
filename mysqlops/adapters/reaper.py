"""Leftovers of killed runs: find them, prove their owner is gone, remove them.

A process killed with SIGKILL runs no ``finally``. What it leaves: staging directories (dumps,
possibly unencrypted), the scratch servers of its restore tests (a running ``mariadbd`` on a
datadir of hundreds of MB) and the ephemeral Prefect API server Prefect started for it.

Everything mysqlops creates for one run carries an **owner marker** (:data:`MARKER`, written
before anything else goes in): the creating process's PID and start time (field 22 of
``/proc/PID/stat``, so a reused PID is never taken for the owner), the boot id, the PID
namespace and the host name. :func:`reap` lists the roots it is given (the staging directory, ``$TMPDIR``, ``/tmp``),
and for every marked directory whose owner is gone it

1. kills the servers running on it: only processes of this user whose command line names a
   ``--datadir=`` inside that directory (a reused PID running something else is never hit),
   their whole process group (each sandbox server leads its own);
2. claims the directory with an atomic rename (two reapers never both remove it, and a reaper
   killed halfway leaves a claimed name the next one finishes), then removes it;
3. reports what it removed (path, purpose, owner, bytes, servers killed).

Ephemeral Prefect API servers (``python -m uvicorn ... prefect.server.api.server:create_app``
with ``PREFECT__SERVER_EPHEMERAL=1``, started by Prefect when a flow is called from Python
with no API URL) inherit the :data:`OWNER_ENV` label the flows package sets on import; one
whose labelled owner is gone and that is not the child of a living process started after
that owner is stopped (SIGTERM, then SIGKILL).

Never touched: anything of another user; directories whose owner is alive; directories
marked on another host or in another PID namespace (a shared staging disk, a container: only
there can its PIDs be judged), reported as such; unmarked directories (reported when they look like ours), except credentials
directories of mysqlops versions that still wrote option files (``mysqlops-cred-*``), which
hold a password and nothing else and are removed once older than an hour.

No Prefect import here (the core stays Prefect-free); the flows add the flow-run sweep.

One concept over ~500 lines: marking what a run owns and judging whether its owner is gone are
the two halves of one safety rule (never remove what a live process owns), kept in one place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from mysqlops import jsondoc
from mysqlops.errors import ManifestError
from mysqlops.jsondoc import json_as
from mysqlops.units import human_bytes

MARKER = ".mysqlops-owner"
OWNER_ENV = "MYSQLOPS_OWNER"
# a label a harness (the test session) sets for itself and its children: recorded in every
# owner marker, so that it can tell what it created from what another session on the host made
SESSION_ENV = "MYSQLOPS_SESSION"
CLAIM_PREFIX = ".mysqlops-reaping-"
LEGACY_CREDENTIALS_PREFIX = "mysqlops-cred-"
OURS_PREFIXES = ("mysqlops-", "myops-phys-")
LEGACY_MIN_AGE_SECONDS = 3600.0
PREFECT_EPHEMERAL_APP = "prefect.server.api.server:create_app"
_KILL_WAIT_SECONDS = 15.0

OwnerState = Literal["alive", "gone", "elsewhere"]


# --------------------------------------------------------------------------- owners
@dataclass(frozen=True)
class Owner:
    """A process, identified across PID reuse, reboots, PID namespaces (containers) and hosts."""

    pid: int
    start: int  # clock ticks after boot (field 22 of /proc/PID/stat)
    boot_id: str
    host: str
    pidns: str = ""  # inode of the PID namespace: PIDs of another container mean nothing here

    def label(self) -> str:
        return f"{self.pid}:{self.start}:{self.boot_id}:{self.pidns}:{self.host}"

    @classmethod
    def parse(cls, label: str) -> Owner | None:
        parts = label.split(":", 4)
        if len(parts) != 5:
            return None
        try:
            return cls(int(parts[0]), int(parts[1]), parts[2], parts[4], parts[3])
        except ValueError:
            return None


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _boot_id() -> str:
    try:
        return _read("/proc/sys/kernel/random/boot_id").strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").rstrip("]")
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces)."""
    try:
        text = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    try:
        return text.rsplit(")", 1)[1].split()
    except IndexError:
        return None


def process_start(pid: int) -> int | None:
    """Start time of a live process, None when it is gone or a zombie (dead, not yet reaped)."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X", "x"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


_current: Owner | None = None


def current_owner() -> Owner:
    """This process as an owner (recomputed after a fork)."""
    global _current
    pid = os.getpid()
    if _current is None or _current.pid != pid:
        _current = Owner(pid, process_start(pid) or 0, _boot_id(), socket.gethostname(), _pid_namespace())
    return _current


def owner_state(owner: Owner) -> OwnerState:
    """``alive`` (that very process still runs), ``gone`` (it exited, was killed, or the
    machine rebooted since), or ``elsewhere``: marked on another host or in another PID
    namespace (a container sharing the directory), or without a known start time; such an
    owner cannot be judged here and its directories are left alone."""
    if owner.host != socket.gethostname() or owner.start <= 0:
        return "elsewhere"
    if owner.pidns and owner.pidns != _pid_namespace():
        return "elsewhere"
    if owner.boot_id and owner.boot_id != _boot_id():
        return "gone"
    return "alive" if process_start(owner.pid) == owner.start else "gone"


def owner_env_value() -> str:
    """The value of :data:`OWNER_ENV` for this process (children started with os.environ
    inherit it: that is how an ephemeral Prefect server names the process it serves)."""
    return current_owner().label()


# --------------------------------------------------------------------------- markers
@dataclass(frozen=True)
class MarkerDoc:
    """The owner marker as stored: fields declared once (:mod:`mysqlops.jsondoc`). Markers of
    older versions (no schema key) are read the same way: the reaper must understand what a
    killed run of any version left."""

    pid: int = field(metadata=json_as(jsondoc.INT))
    start: int = field(metadata=json_as(jsondoc.INT))
    boot_id: str = field(metadata=json_as(jsondoc.TEXT))
    host: str = field(metadata=json_as(jsondoc.TEXT))
    pidns: str = field(default="", metadata=json_as(jsondoc.TEXT))
    purpose: str = field(default="", metadata=json_as(jsondoc.TEXT))
    session: str = field(default="", metadata=json_as(jsondoc.TEXT))
    created: str = field(default="", metadata=json_as(jsondoc.TEXT))  # ISO time, for people


MARKER_SCHEMA = "mysqlops.owner/1"
_MARKER_DOC = jsondoc.Document(MarkerDoc, MARKER_SCHEMA, "owner marker", older=(None,))


def mark(path: str, purpose: str) -> None:
    """Write the owner marker of this process into the directory ``path`` (atomically: a
    marker is complete or absent)."""
    owner = current_owner()
    doc = MarkerDoc(
        pid=owner.pid,
        start=owner.start,
        boot_id=owner.boot_id,
        host=owner.host,
        pidns=owner.pidns,
        purpose=purpose,
        session=os.environ.get(SESSION_ENV, ""),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    tmp = os.path.join(path, f"{MARKER}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_MARKER_DOC.dumps(doc))
        os.rename(tmp, os.path.join(path, MARKER))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Marked:
    path: str
    owner: Owner
    purpose: str
    session: str = ""


def read_marker(path: str) -> Marked | None:
    """The owner marker of ``path`` when it is a directory of this user with a marker of this
    user; None otherwise (also for a symlink: never followed)."""
    uid = os.getuid()
    try:
        st = os.lstat(path)
        mst = os.lstat(os.path.join(path, MARKER))
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        return None
    if not stat.S_ISREG(mst.st_mode) or mst.st_uid != uid or mst.st_size > 4096:
        return None
    try:
        doc: MarkerDoc = _MARKER_DOC.loads(_read(os.path.join(path, MARKER)))
    except (OSError, ManifestError):
        return None
    owner = Owner(doc.pid, doc.start, doc.boot_id, doc.host, doc.pidns)
    return Marked(path, owner, doc.purpose, doc.session)


# --------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    start: int
    argv: tuple[str, ...]


def processes() -> Iterator[Proc]:
    """Live processes of this user."""
    uid = os.getuid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = _stat_fields(pid)
        if not fields or fields[0] in ("Z", "X", "x") or not raw:
            continue
        try:
            ppid, pgid, start = int(fields[1]), int(fields[2]), int(fields[19])
        except (IndexError, ValueError):
            continue
        argv = tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))
        yield Proc(pid, ppid, pgid, start, argv)


def _inside(path: str, directory: str) -> bool:
    for a, b in ((path, directory), (os.path.realpath(path), os.path.realpath(directory))):
        a, b = os.path.abspath(a), os.path.abspath(b)
        if a == b or a.startswith(b.rstrip("/") + "/"):
            return True
    return False


def servers_on(directory: str) -> list[Proc]:
    """Processes of this user whose command line names a ``--datadir=`` inside ``directory``:
    the only processes the reaper ever kills for a directory."""
    found = []
    for proc in processes():
        for arg in proc.argv[1:]:
            if arg.startswith("--datadir=") and _inside(arg.split("=", 1)[1], directory):
                found.append(proc)
                break
    return found


def users_of(directory: str) -> list[str]:
    """Processes of any user that name a ``--datadir=`` inside ``directory`` on their command
    line, or whose working directory is inside it (readable for this user's processes, or
    all when root): ``"pid 123 (mariadbd)"`` each. A server chdirs to its datadir, so one
    started from an option file is found too. Only read, never signalled."""
    found = []
    try:
        names = [n for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []
    for name in names:
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                argv = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        hit = any(a.startswith("--datadir=") and _inside(a.split("=", 1)[1], directory) for a in argv[1:])
        if not hit:
            with contextlib.suppress(OSError):
                hit = _inside(os.readlink(f"/proc/{name}/cwd"), directory)
        if hit and int(name) != os.getpid():
            found.append(f"pid {name} ({os.path.basename(argv[0]) if argv else '?'})")
    return found


def _wait_gone(proc: Proc, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_start(proc.pid) != proc.start:
            return True
        time.sleep(0.02)
    return process_start(proc.pid) != proc.start


def kill(proc: Proc, *, group: bool = True, term_first: float = 0.0) -> bool:
    """Kill ``proc`` if it is still that very process (same start time): its whole process
    group when it leads one (``group``), after a SIGTERM grace of ``term_first`` seconds.
    True once it is gone."""
    if process_start(proc.pid) != proc.start:
        return True
    try:
        if term_first > 0:
            os.kill(proc.pid, signal.SIGTERM)
            if _wait_gone(proc, term_first):
                return True
        if group and proc.pgid == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        elif process_start(proc.pid) == proc.start:
            os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _wait_gone(proc, _KILL_WAIT_SECONDS)


# --------------------------------------------------------------------------- reaping
@dataclass(frozen=True)
class Removed:
    path: str
    purpose: str
    owner_pid: int
    bytes: int
    servers_killed: tuple[int, ...] = ()

    def describe(self) -> str:
        servers = (
            f", killed its server(s) pid {', '.join(map(str, self.servers_killed))}"
            if self.servers_killed
            else ""
        )
        return (
            f"removed {self.path} ({self.purpose}, {human_bytes(self.bytes)}) left by "
            f"process {self.owner_pid}, which is gone{servers}"
        )


@dataclass
class ReapReport:
    """What one :func:`reap` did. ``removed`` and ``prefect_servers`` are leftovers of killed
    runs (worth a warning); ``unowned`` and ``elsewhere`` were left alone."""

    removed: list[Removed] = field(default_factory=list)
    prefect_servers: list[int] = field(default_factory=list)
    unowned: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def found_leftovers(self) -> bool:
        return bool(self.removed or self.prefect_servers)

    def lines(self) -> list[str]:
        out = [r.describe() for r in self.removed]
        out += [
            f"stopped orphaned ephemeral Prefect API server pid {pid} (the process it served is gone)"
            for pid in self.prefect_servers
        ]
        out += [
            f"left alone {p}: no owner marker (made by an older mysqlops, or by hand); remove it "
            "if no mysqlops run uses it"
            for p in self.unowned
        ]
        out += [f"left alone {p}: marked by a process on another host" for p in self.elsewhere]
        out += [f"could not clean up: {e}" for e in self.errors]
        return out


def default_roots(*extra: str | None) -> list[str]:
    """Where runs keep scratch state: the given directories (a flow's ``staging_dir``),
    ``$TMPDIR`` and ``/tmp``; existing ones only, each once."""
    out: list[str] = []
    seen: set[str] = set()
    for root in (*extra, tempfile.gettempdir(), "/tmp"):  # noqa: S108 - only listed, by owner marker
        if not root or not os.path.isdir(root):
            continue
        real = os.path.realpath(root)
        if real not in seen:
            seen.add(real)
            out.append(root)
    return out


def _disk_bytes(path: str) -> int:
    total = 0
    for top, dirs, files in os.walk(path):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


def _remove_tree(path: str, report: ReapReport) -> bool:
    """Claim ``path`` by renaming it, then remove it; False when another reaper got it first."""
    claimed = os.path.join(os.path.dirname(path), CLAIM_PREFIX + secrets.token_hex(6))
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return False
    except OSError as exc:
        report.errors.append(f"{path}: {exc.strerror}")
        return False
    errors: list[str] = []

    def onerror(_func: object, failed: str, exc_info: tuple[object, BaseException, object]) -> None:
        errors.append(f"{failed}: {exc_info[1]}")

    shutil.rmtree(claimed, onerror=onerror)
    report.errors += errors[:5]
    return True


def reap_directory(marked: Marked, report: ReapReport) -> None:
    """Kill the servers running on an orphaned directory, then remove it."""
    killed: list[int] = []
    for proc in servers_on(marked.path):
        if kill(proc, group=True):
            killed.append(proc.pid)
        else:
            report.errors.append(
                f"{marked.path}: server pid {proc.pid} on it could not be stopped; directory kept"
            )
            return
    size = _disk_bytes(marked.path)
    if _remove_tree(marked.path, report):
        report.removed.append(Removed(marked.path, marked.purpose, marked.owner.pid, size, tuple(killed)))


def _age_seconds(path: str) -> float:
    try:
        return time.time() - os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _scan_root(root: str, report: ReapReport) -> None:
    uid = os.getuid()
    try:
        entries = list(os.scandir(root))
    except OSError as exc:
        report.errors.append(f"cannot list {root}: {exc.strerror}")
        return
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        path = entry.path
        if entry.name.startswith(CLAIM_PREFIX):
            # a reaper was killed while removing it: finish the job (nothing else uses the name)
            if _age_seconds(path) > 60:
                shutil.rmtree(path, ignore_errors=True)
            continue
        marked = read_marker(path)
        if marked is not None:
            state = owner_state(marked.owner)
            if state == "gone":
                reap_directory(marked, report)
            elif state == "elsewhere":
                report.elsewhere.append(path)
            continue
        if not entry.name.startswith(OURS_PREFIXES) or _age_seconds(path) < LEGACY_MIN_AGE_SECONDS:
            continue  # not ours, or so young its marker may be on its way
        if entry.name.startswith(LEGACY_CREDENTIALS_PREFIX):
            # an option file of an older mysqlops: a password and nothing else; its client
            # read it at start-up long ago
            size = _disk_bytes(path)
            if _remove_tree(path, report):
                report.removed.append(Removed(path, "credentials (older mysqlops)", 0, size))
        else:
            report.unowned.append(path)


def orphaned_prefect_servers() -> list[Proc]:
    """Ephemeral Prefect API servers whose labelled owner is gone (see the module docstring)."""
    procs = list(processes())
    by_pid = {p.pid: p for p in procs}
    found = []
    for proc in procs:
        if PREFECT_EPHEMERAL_APP not in proc.argv:
            continue
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if b"PREFECT__SERVER_EPHEMERAL=1" not in env:
            continue  # `prefect server start`: a real server, never ours to stop
        label = next((e.split(b"=", 1)[1] for e in env if e.startswith(OWNER_ENV.encode() + b"=")), None)
        owner = Owner.parse(label.decode("utf-8", "replace")) if label else None
        if owner is None or owner_state(owner) != "gone":
            continue
        parent = by_pid.get(proc.ppid)
        if parent is not None and parent.pid != 1 and parent.start > owner.start:
            continue  # a living process started after the owner may have started it: its own
        found.append(proc)
    return found


def reap_prefect_servers(report: ReapReport) -> None:
    for proc in orphaned_prefect_servers():
        if kill(proc, group=False, term_first=5.0):
            report.prefect_servers.append(proc.pid)
        else:
            report.errors.append(f"orphaned ephemeral Prefect server pid {proc.pid} could not be stopped")


def reap(
    roots: Iterable[str | None] = (),
    *,
    defaults: bool = True,
    prefect: bool = True,
    log: Callable[[str], None] | None = None,
) -> ReapReport:
    """Remove what killed runs left behind under ``roots`` (plus ``$TMPDIR`` and ``/tmp``
    when ``defaults``) and stop orphaned ephemeral Prefect servers (when ``prefect``).
    Never raises for what it finds: problems are in the report's ``errors``. ``log`` gets
    one line per leftover removed and per error (what was left alone is only in the report)."""
    report = ReapReport()
    given = [r for r in roots if r]
    for root in default_roots(*given) if defaults else [r for r in given if os.path.isdir(r)]:
        _scan_root(root, report)
    if prefect:
        reap_prefect_servers(report)
    if log is not None:
        for line in report.lines():
            if not line.startswith("left alone"):
                log(f"leftover of a killed run: {line}" if not line.startswith("could not") else line)
    return report
