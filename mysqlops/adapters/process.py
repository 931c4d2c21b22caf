"""The only place in mysqlops that starts child processes.

Rules (docs/ARCHITECTURE.md, "Child processes"):
- argv tuples only, never a shell;
- every child in its own session/process group, killed as a group on timeout, cancel or error;
- a pipeline fails if any member fails; every exit code is checked;
- stderr is captured (bounded tail) for error messages, through a caller's filter when given
  (row data a SQL client echoes must not reach a log);
- credentials only through a ``--defaults-extra-file=/dev/fd/N`` inserted as the FIRST option,
  where N is an anonymous in-memory file (memfd, 0600, sealed) passed only to the child that
  needs it (``pass_fds``): it has no name on any file system and disappears with the last
  process holding it, so not even ``kill -9`` leaves the password on disk; never ``-pSECRET``,
  never ``MYSQL_PWD``;
- children get a minimal environment (no inherited secrets such as AWS keys or MYSQL_PWD).

One concept over ~500 lines: the runner (one child, a pipeline, a background server) and the
bookkeeping that lets every child be killed; split, the rules above would be kept in two places.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from mysqlops.errors import EnvironmentProblem, ProcessError, ProcessTimeout

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
#: a child started by :func:`start_background`, and the error of a wait that timed out: other
#: modules name them through here (no module but this one imports subprocess)
Child = subprocess.Popen
TimeoutExpired = subprocess.TimeoutExpired
_STDERR_TAIL_BYTES = 16 * 1024
_SAFE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "USER", "LOGNAME")
_live_groups: dict[int, tuple[str, ...]] = {}  # process group id -> argv of its leader
_live_lock = threading.Lock()


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for children: no inherited credentials."""
    env = {k: os.environ[k] for k in _SAFE_ENV_KEYS if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["TZ"] = "UTC"
    for key, value in (extra or {}).items():
        if ("PWD" in key.upper() and key.upper() != "PWD") or "PASSWORD" in key.upper():
            raise ProcessError(f"refusing to pass {key} through a child's environment; use an option file")
        env[key] = value
    return env


def require_program(*names: str, package_hint: str = "") -> str:
    """Absolute path of the first program found, or an error naming the package to install."""
    for name in names:
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
        if path:
            return path
    hint = f" Install it: apt-get install {package_hint}" if package_hint else ""
    raise EnvironmentProblem(f"none of {', '.join(names)} is installed or on PATH.{hint}")


def secret_memfd(content: str, name: str = "mysqlops-client.cnf") -> int:
    """An anonymous in-memory file holding ``content``: mode 0600, sealed against any change,
    close-on-exec. The caller owns the descriptor (close it once the child has it).

    Why memfd and not a pipe (borgmatic passes a pipe): a pipe can be read once, and
    mariabackup reads its option files once per option group (a pipe leaves it without
    ``[client]``). Why 0600: a memfd is created 0777, and every MySQL/MariaDB client ignores
    a world-writable option file ("World-writable config file ... is ignored").
    Children read it through ``/dev/fd/N`` (:func:`fd_path`).
    """
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (AttributeError, OSError) as exc:
        raise EnvironmentProblem(
            f"memfd_create is not available ({exc}): mysqlops passes credentials to the MySQL "
            "client tools only through an in-memory file and needs Linux 3.17 or later"
        ) from exc
    try:
        data = content.encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.lseek(fd, 0, os.SEEK_SET)
        os.fchmod(fd, 0o600)
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def secret_pipe(content: str) -> int:
    """The read end of a pipe that holds ``content`` (at most 64 KiB) and is closed for
    writing: for a reader that reads once and keeps running, such as a server's
    ``--init-file``, nothing remains readable after it has read it. Close-on-exec; the
    caller owns the descriptor."""
    data = content.encode("utf-8")
    if len(data) > 60_000:
        raise ProcessError("a secret pipe holds at most 60,000 bytes")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def fd_path(fd: int) -> str:
    """The path a child uses to open a descriptor it inherited."""
    return f"/dev/fd/{fd}"


# options of the dynamic loader (ld.so) that take a value: a server build fetched from another
# Debian suite runs as ``ld-linux-x86-64.so.2 --library-path DIRS PROGRAM ARGS...``
_LOADER_VALUE_OPTIONS = frozenset(
    {"--library-path", "--argv0", "--preload", "--audit", "--glibc-hwcaps-mask"}
)


def is_loader(path: str) -> bool:
    """Whether ``path`` names the dynamic loader (``ld-linux-*.so.*``, ``ld.so``)."""
    base = os.path.basename(path)
    return base.startswith("ld-linux") or base in ("ld.so", "ld64.so.1", "ld64.so.2")


def program_index(argv: Sequence[str]) -> int:
    """Index of the program in ``argv``: 0, or the first word after a loader prefix
    (``ld-linux-x86-64.so.2 --library-path DIRS /path/mysqldump ...`` -> 3)."""
    if not argv or not is_loader(argv[0]):
        return 0
    i = 1
    while i < len(argv) and argv[i].startswith("--"):
        i += 2 if argv[i] in _LOADER_VALUE_OPTIONS else 1
    if i >= len(argv):
        raise ProcessError(f"loader argv names no program: {' '.join(argv)}")
    return i


def program_name(argv: Sequence[str]) -> str:
    """The base name of the program ``argv`` runs (past a loader prefix), for messages."""
    return os.path.basename(argv[program_index(argv)]) if argv else ""


def with_defaults_file(argv: Sequence[str], path: str) -> tuple[str, ...]:
    """Insert ``--defaults-extra-file=path`` as the program's first option (the client requires
    it first); past a loader prefix, right after the program."""
    if not argv:
        raise ProcessError("empty argv")
    for arg in argv:
        if arg.startswith(("-p", "--password")) and arg not in ("-p", "--password"):
            raise ProcessError("refusing an argv with a password option; credentials go in the option file")
    i = program_index(argv) + 1
    return (*argv[:i], f"--defaults-extra-file={path}", *argv[i:])


class _StderrTail:
    """Drains a child's stderr in a thread, keeping the last bytes for error messages."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for chunk in iter(
                lambda: stream.read1(8192) if hasattr(stream, "read1") else stream.read(8192), b""
            ):
                self._chunks.append(chunk)
                self._size += len(chunk)
                while self._size > _STDERR_TAIL_BYTES and len(self._chunks) > 1:
                    self._size -= len(self._chunks.popleft())
        with contextlib.suppress(OSError):
            stream.close()

    def text(self, timeout: float = 5.0) -> str:
        self._thread.join(timeout)
        return b"".join(self._chunks)[-_STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()


@dataclass
class _Member:
    argv: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    stderr: _StderrTail
    returncode: int | None = None


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str
    seconds: float


PIPE_BYTES = 1 << 20


def _widen_pipe(pipe: IO[bytes]) -> None:
    """Give a pipe 1 MiB of capacity instead of Linux's 64 KiB: a dump of gigabytes then
    crosses it in 1 MiB reads (16x fewer wake-ups on both sides), and the writer can run ahead
    while the reader hashes and compresses. Best effort: the default still works."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def live_children() -> list[tuple[int, tuple[str, ...]]]:
    """Process groups this process started that still have a live (not zombie) member:
    (pgid, argv of the command that started the group)."""
    from mysqlops.adapters.reaper import processes

    with _live_lock:
        groups = dict(_live_groups)
    alive = {p.pgid for p in processes()}
    return [(pgid, argv) for pgid, argv in groups.items() if pgid in alive]


def kill_all_children() -> int:
    """Kill every process group this process started that is still alive (atexit, tests)."""
    with _live_lock:
        groups = list(_live_groups)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return len(groups)


@dataclass
class Pipeline:
    """Run ``argv1 | argv2 | ...`` with optional Python-side stdin/stdout ends.

    Use as a context manager. ``stdin=PIPE`` gives ``.stdin`` (write to the first member),
    ``stdout=PIPE`` gives ``.stdout`` (read from the last member); or pass a file object / None.
    ``credentials`` is the option-file text for each member (one string for all, or a list
    with None where a member needs none). On leaving the block with an exception, or on
    timeout, every member's process group is killed. Call :meth:`wait` to finish: it checks
    every exit code and raises :class:`ProcessError` naming the members that failed.
    """

    commands: Sequence[Sequence[str]]
    credentials: str | Sequence[str | None] | None = None
    stdin: Any = None
    stdout: Any = None
    timeout: float | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    ok_returncodes: Sequence[int] = (0,)
    name: str = ""
    # applied to every member's stderr before it reaches a result or an error message: e.g.
    # mysqlops.redact.client_stderr, so that row data a client echoes never reaches a log
    stderr_filter: Callable[[str], str] | None = None
    _members: list[_Member] = field(default_factory=list, init=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False)
    _timer: threading.Timer | None = field(default=None, init=False)
    _timed_out: bool = field(default=False, init=False)
    _cancelled: bool = field(default=False, init=False)
    _started: float = field(default=0.0, init=False)
    _waited: bool = field(default=False, init=False)

    def __enter__(self) -> Pipeline:
        if not self.commands:
            raise ProcessError("a pipeline needs at least one command")
        creds: list[str | None]
        if self.credentials is None or isinstance(self.credentials, str):
            creds = [self.credentials] * len(self.commands)
        else:
            creds = list(self.credentials)
        if len(creds) != len(self.commands):
            raise ProcessError("one credentials entry per pipeline member")
        env = child_environment(self.env)
        self._started = time.monotonic()
        try:
            prev_stdout: Any = self.stdin
            for index, (argv, cred) in enumerate(zip(self.commands, creds, strict=True)):
                full = tuple(argv)
                secret_fd: int | None = None
                if cred is not None:
                    secret_fd = secret_memfd(cred)
                    full = with_defaults_file(full, fd_path(secret_fd))
                last = index == len(self.commands) - 1
                try:
                    proc = subprocess.Popen(
                        full,
                        stdin=prev_stdout,
                        stdout=self.stdout if last else PIPE,
                        stderr=PIPE,
                        env=env,
                        cwd=self.cwd,
                        start_new_session=True,
                        close_fds=True,
                        pass_fds=() if secret_fd is None else (secret_fd,),
                    )
                except FileNotFoundError as exc:
                    raise EnvironmentProblem(f"program {full[0]!r} not found: {exc.strerror}") from exc
                finally:
                    if secret_fd is not None:
                        os.close(secret_fd)  # only this child holds the credentials now
                with _live_lock:
                    _live_groups[proc.pid] = full
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        _widen_pipe(pipe)
                if index > 0 and prev_stdout is not None and hasattr(prev_stdout, "close"):
                    prev_stdout.close()  # only the next member holds the read end now
                assert proc.stderr is not None
                self._members.append(_Member(full, proc, _StderrTail(proc.stderr)))
                prev_stdout = proc.stdout if not last else None
        except BaseException:
            self._abort()
            raise
        if self.timeout:
            self._timer = threading.Timer(self.timeout, self._on_timeout)
            self._timer.daemon = True
            self._timer.start()
        return self

    @property
    def stdin_pipe(self) -> IO[bytes]:
        pipe = self._members[0].proc.stdin
        if pipe is None:
            raise ProcessError("pipeline was started without stdin=PIPE")
        return pipe

    @property
    def stdout_pipe(self) -> IO[bytes]:
        pipe = self._members[-1].proc.stdout
        if pipe is None:
            raise ProcessError("pipeline was started without stdout=PIPE")
        return pipe

    @property
    def pids(self) -> list[int]:
        return [m.proc.pid for m in self._members]

    def _on_timeout(self) -> None:
        self._timed_out = True
        for member in self._members:
            _kill_group(member.proc)

    def cancel(self) -> None:
        """Kill every member's process group now (e.g. on flow cancellation)."""
        self._cancelled = True
        for member in self._members:
            _kill_group(member.proc)

    def _abort(self) -> None:
        for member in self._members:
            _kill_group(member.proc)
        for member in self._members:
            for pipe in (member.proc.stdin, member.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError, ValueError):
                        pipe.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.proc.wait(timeout=10)
        self._finish()

    def _finish(self) -> None:
        if self._timer:
            self._timer.cancel()
        with _live_lock:
            for member in self._members:
                _live_groups.pop(member.proc.pid, None)
        self._stack.close()

    def wait(self) -> list[Result]:
        """Close our stdin end, wait for all members, check every exit code."""
        self._waited = True
        first = self._members[0].proc
        if first.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                first.stdin.close()
        results: list[Result] = []
        failures: list[str] = []
        for member in self._members:
            member.returncode = member.proc.wait()
            # the whole group: helpers a client may have forked must not outlive it
            _kill_group(member.proc)
        elapsed = time.monotonic() - self._started
        for member in self._members:
            err = member.stderr.text()
            if self.stderr_filter is not None:
                err = self.stderr_filter(err)
            rc = member.returncode if member.returncode is not None else -1
            results.append(Result(member.argv, rc, b"", err, elapsed))
            if rc not in self.ok_returncodes:
                failures.append(
                    f"{_describe(member.argv)} exited with {_rc_text(rc)}"
                    + (f": {_tail(err)}" if err else "")
                )
        self._finish()
        label = f"{self.name}: " if self.name else ""
        if self._timed_out:
            raise ProcessTimeout(
                f"{label}timed out after {self.timeout:.0f}s and was killed: {'; '.join(failures) or 'no output'}",
                returncode=None,
            )
        if self._cancelled:
            raise ProcessError(f"{label}cancelled; the process group was killed")
        if failures:
            rc_first = next(r.returncode for r in results if r.returncode not in self.ok_returncodes)
            raise ProcessError(
                label + "; ".join(failures), returncode=rc_first, stderr_tail=results[-1].stderr
            )
        return results

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # an error, or leaving the block without wait(): never leave a child behind
        if exc_type is not None or not self._waited:
            self._abort()


def run(
    argv: Sequence[str],
    *,
    credentials: str | None = None,
    input: bytes | None = None,
    timeout: float | None = 600,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    ok_returncodes: Sequence[int] = (0,),
    name: str = "",
    stderr_filter: Callable[[str], str] | None = None,
) -> Result:
    """Run one command to completion, capturing stdout; raise on a bad exit code or timeout."""
    started = time.monotonic()
    holder: dict[str, bytes] = {}
    with Pipeline(
        [argv],
        credentials=credentials,
        stdin=PIPE if input is not None else DEVNULL,
        stdout=PIPE,
        timeout=timeout,
        env=env,
        cwd=cwd,
        ok_returncodes=ok_returncodes,
        name=name or program_name(argv),
        stderr_filter=stderr_filter,
    ) as pipe:
        reader = threading.Thread(
            target=lambda: holder.__setitem__("out", pipe.stdout_pipe.read()), daemon=True
        )
        reader.start()
        if input is not None:
            with contextlib.suppress(BrokenPipeError):
                pipe.stdin_pipe.write(input)
        results = pipe.wait()
        reader.join()
    r = results[0]
    return Result(r.argv, r.returncode, holder.get("out", b""), r.stderr, time.monotonic() - started)


def start_background(
    argv: Sequence[str],
    *,
    log_path: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start a long-running child (a sandbox server) in its own session, output to ``log_path``.

    ``pass_fds``: descriptors the child inherits (e.g. a :func:`secret_pipe` for
    ``--init-file=/dev/fd/N``); no other descriptor is passed. The caller owns the child and
    must stop it (see :mod:`mysqlops.adapters.sandbox`); it is also killed by
    :func:`kill_all_children`.
    """
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                tuple(argv),
                stdin=DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_environment(env),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                pass_fds=tuple(pass_fds),
            )
        except FileNotFoundError as exc:
            raise EnvironmentProblem(f"program {argv[0]!r} not found: {exc.strerror}") from exc
    with _live_lock:
        _live_groups[proc.pid] = tuple(argv)
    return proc


def forget_group(pid: int) -> None:
    """A background child was stopped by its owner: stop tracking it."""
    with _live_lock:
        _live_groups.pop(pid, None)


def _describe(argv: Sequence[str]) -> str:
    return program_name(argv)


def _rc_text(rc: int) -> str:
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-rc).name}"
    return f"code {rc}"


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
