"""Throwaway MariaDB/MySQL servers for practice clusters, tests, the demo and restore tests.

Each server gets its own directory (datadir, socket, pid file, error log; a 0600 client option
file for practice servers only), a free port on 127.0.0.1, a unique ``server_id``, binary
logging and GTID settings suited to replication, and a generated root password set by
``--init-file=/dev/fd/N`` (a pipe, never a file) before the first connection is accepted.
Scratch servers (restore tests) carry an owner marker: a killed owner's server is stopped
and removed by the next run (:mod:`mysqlops.adapters.reaper`). Teardown stops by PID (SIGTERM, then SIGKILL of the process group),
removes the directory unless asked to keep it, and always runs; servers still alive at
interpreter exit are stopped by an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from mysqlops.adapters import builds, process, reaper
from mysqlops.adapters.builds import ServerBuild
from mysqlops.adapters.mysql import execute, query, session
from mysqlops.adapters.sandbox_setup import (
    STATE_DOC,
    SandboxServer,
    _files_dir,
    _initialize,
    _log_tail,
    _pid_is_server,
    _server_options,
)
from mysqlops.errors import ManifestError, SandboxError
from mysqlops.model import Flavor, ServerSpec
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.accounts import root_init_file
from mysqlops.tools.client import client_option_file

STATE_FILE = "sandbox.json"
_running: dict[int, SandboxServer] = {}
_running_lock = threading.Lock()


# the former name of a server build (the server program plus how to run it)
ServerBinary = ServerBuild


def find_server_binary(build: str | None = None) -> ServerBuild:
    """The server build sandboxes run: ``build`` (``mariadb-10.11``, ``mariadb-11.8``,
    ``mysql-9.7``; default :data:`~mysqlops.adapters.builds.DEFAULT_BUILD`), resolved by
    :mod:`mysqlops.adapters.builds`: a user's binaries, the system's server when it is that
    build, else the cached (or freshly fetched) build from Debian's archive."""
    return builds.resolve(build or builds.DEFAULT_BUILD)


def _as_build(build: str | ServerBuild | None, binary: ServerBuild | None = None) -> ServerBuild:
    if isinstance(build, ServerBuild):
        return build
    if binary is not None and build is None:
        return binary
    return find_server_binary(build)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _launch(
    binary: ServerBuild,
    directory: str,
    name: str,
    server_id: int,
    port: int | None,
    tuned: bool,
    gtid: bool,
    init_sql: str,
    password: str,
    extra_options: Sequence[str],
    timeout: float,
    scratch: bool = False,
) -> SandboxServer:
    """Start the server of a prepared directory and wait until it accepts logins; a port taken
    between pick and bind gets another one.

    The init SQL (it sets the root password) reaches the server as ``--init-file=/dev/fd/N``,
    the read end of a pipe only this server inherits: it reads it once at start-up and nothing
    is left, on disk or in the pipe, even if this process is killed. A practice server gets a
    0600 ``client.cnf`` for its user; a ``scratch`` server (restore tests) gets none."""
    last_error = ""
    if binary.flavor is Flavor.MYSQL:
        os.makedirs(_files_dir(directory), mode=0o700, exist_ok=True)
    for _attempt in range(3):
        server = SandboxServer(
            name=name,
            directory=directory,
            port=port or free_port(),
            server_id=server_id,
            pid=0,
            flavor=binary.flavor,
            version=binary.version_text,
            root_password=password,
            tuned=tuned,
            build=binary.name,
            client=binary.client_argv("client") if binary.has("client") else (),
        )
        init_fd = process.secret_pipe(init_sql)
        try:
            argv = [
                *_server_options(binary, server, tuned, gtid),
                f"--init-file={process.fd_path(init_fd)}",
                *extra_options,
            ]
            proc = process.start_background(
                argv, log_path=os.path.join(directory, "stdout.log"), pass_fds=(init_fd,)
            )
        finally:
            os.close(init_fd)
        server = replace(server, pid=proc.pid)
        with _running_lock:
            _running[proc.pid] = server
        try:
            _wait_ready(server, proc, timeout)
        except SandboxError as exc:
            last_error = str(exc)
            _stop_pid(server, proc)
            if port is None and "already in use" in last_error.lower():
                continue
            raise
        if not scratch:
            _write_private(server.option_file, client_option_file(server.spec()))
        _save_state(server)
        return server
    raise SandboxError(last_error)


def start_server(
    base_dir: str | os.PathLike[str],
    name: str,
    *,
    server_id: int,
    port: int | None = None,
    tuned: bool = False,
    gtid: bool = True,
    extra_options: Sequence[str] = (),
    timeout: float = 60,
    build: str | ServerBuild | None = None,
    binary: ServerBuild | None = None,
    scratch: bool = False,
) -> SandboxServer:
    """Create and start one server under ``base_dir/name``; wait until it accepts logins.

    ``build`` names the server build (``mysql-9.7``, a :class:`ServerBuild`, or None for the
    default ``mariadb-10.11``); it is fetched into the cache when this machine lacks it.
    ``binary`` is the former name of the same parameter.
    ``scratch`` (restore tests): the directory carries an owner marker, so if this process is
    killed the next run's reaper (:mod:`mysqlops.adapters.reaper`) stops the server and removes
    it, and no ``client.cnf`` is written (the password stays in memory). Practice servers
    (``sandbox up``) keep a 0600 ``client.cnf`` for their user and no marker: they outlive
    the command that started them on purpose.
    On failure the error log tail is in the exception and the directory is removed.
    """
    binary = _as_build(build, binary)
    with _server_directory(base_dir, name, scratch) as (directory, password):
        _initialize(binary, os.path.join(directory, "data"), directory)
        init_sql = root_init_file(password)
        return _launch(
            binary,
            directory,
            name,
            server_id,
            port,
            tuned,
            gtid,
            init_sql,
            password,
            extra_options,
            timeout,
            scratch,
        )


@contextlib.contextmanager
def _server_directory(
    base_dir: str | os.PathLike[str], name: str, scratch: bool
) -> Iterator[tuple[str, str]]:
    """A new 0700 ``base_dir/name`` (marked when ``scratch``) and a fresh root password; the
    directory is removed when the server in it fails to start."""
    directory = os.path.abspath(os.path.join(os.fspath(base_dir), name))
    if os.path.exists(directory):
        raise SandboxError(
            f"{directory} already exists: stop that sandbox first (sandbox down) or pick another name"
        )
    os.makedirs(directory, mode=0o700)
    os.chmod(directory, 0o700)
    try:
        if scratch:
            reaper.mark(directory, "scratch server")
        yield directory, secrets.token_urlsafe(18)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _wait_ready(server: SandboxServer, proc: process.Child[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    spec = ServerSpec(name=server.name, socket=server.socket, user="root", password=server.root_password)
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SandboxError(
                f"server {server.name} exited with code {proc.returncode} while starting; "
                f"error log tail:\n{_log_tail(server.error_log)}"
            )
        if os.path.exists(server.socket):
            try:
                with session(spec, connect_timeout=2) as conn, conn.cursor() as cur:
                    cur.execute(sqlcat.PING)
                return
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last = str(exc)
        time.sleep(0.05)
    raise SandboxError(
        f"server {server.name} not ready after {timeout:.0f}s ({last}); error log tail:\n{_log_tail(server.error_log)}"
    )


def _stop_pid(server: SandboxServer, proc: process.Child[bytes] | None, timeout: float = 30) -> None:
    """SIGTERM (clean InnoDB shutdown), wait, then SIGKILL the whole group."""
    pid = server.pid
    if pid <= 0:
        return
    if proc is not None or _pid_is_server(pid, server.datadir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    break
            elif not _pid_is_server(pid, server.datadir):
                break
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(process.TimeoutExpired):
                proc.wait(timeout=10)
        else:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
    process.forget_group(pid)
    with _running_lock:
        _running.pop(pid, None)


def _end_binlog_dumps(server: SandboxServer) -> None:
    """MySQL's shutdown waits ~8 s for a binlog dump thread whose replica is gone (measured on
    9.7); ending those threads first makes it take ~1 s. Best effort: a login that fails
    changes nothing, the SIGTERM that follows stops the server either way."""
    if server.flavor is not Flavor.MYSQL or not server.root_password:
        return
    spec = ServerSpec(name=server.name, socket=server.socket, user="root", password=server.root_password)
    with contextlib.suppress(Exception):
        with session(spec, connect_timeout=1, read_timeout=5) as conn:
            for row in query(conn, sqlcat.BINLOG_DUMP_THREADS):
                execute(conn, sqlcat.kill(row["id"]))


def stop_server(server: SandboxServer, *, remove: bool = True, timeout: float = 30) -> None:
    """Stop a sandbox server by PID and (by default) delete its directory."""
    if server.alive():
        _end_binlog_dumps(server)
    _stop_pid(server, None, timeout)
    if remove:
        shutil.rmtree(server.directory, ignore_errors=True)
    else:
        _save_state(server)


def running_servers() -> list[SandboxServer]:
    """Sandboxes this process started and has not stopped."""
    with _running_lock:
        return list(_running.values())


def stop_all() -> int:
    """Stop every sandbox this process started that is still running (atexit, test teardown)."""
    with _running_lock:
        servers = list(_running.values())
    for server in servers:
        stop_server(server, remove=False)
    return len(servers)


atexit.register(stop_all)


def _save_state(server: SandboxServer) -> None:
    _write_private(os.path.join(server.directory, STATE_FILE), STATE_DOC.dumps(server))


def load_servers(base_dir: str | os.PathLike[str]) -> list[SandboxServer]:
    """Sandboxes recorded under ``base_dir`` (the CLI's ``status``/``down``); a state file
    that cannot be read is a :class:`SandboxError` naming it."""
    servers = []
    base = Path(base_dir)
    if not base.is_dir():
        return []
    for state in sorted(base.glob(f"*/{STATE_FILE}")):
        password = _password_from_option_file(state.parent / "client.cnf")
        try:
            servers.append(STATE_DOC.loads(state.read_bytes(), root_password=password))
        except (OSError, ManifestError) as exc:
            raise SandboxError(
                f"sandbox state {state} cannot be read ({exc}): remove that sandbox's directory by hand"
            ) from None
    return servers


def _password_from_option_file(path: Path) -> str:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("password="):
                value = line.split("=", 1)[1].strip()
                if value.startswith('"'):
                    value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                return value
    except OSError:
        pass
    return ""


def start_cluster(
    base_dir: str | os.PathLike[str],
    replicas: int = 1,
    *,
    prefix: str = "",
    first_server_id: int = 1,
    tuned: bool = False,
    extra_options: Sequence[str] = (),
    build: str | ServerBuild | None = None,
) -> list[SandboxServer]:
    """A primary and ``replicas`` replica servers of one build (not yet replicating); all or nothing.

    The servers are initialized and started two at a time (a MySQL 9.7 datadir takes ~5 s to
    initialize, mostly waiting on the disk)."""
    binary = _as_build(build)
    names = [f"{prefix}primary"] + [f"{prefix}replica{i}" for i in range(1, replicas + 1)]

    def one(offset: int) -> SandboxServer:
        return start_server(
            base_dir,
            names[offset],
            server_id=first_server_id + offset,
            tuned=tuned,
            extra_options=extra_options,
            binary=binary,
        )

    started: list[SandboxServer] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=min(2, len(names))) as pool:
        futures = [pool.submit(one, offset) for offset in range(len(names))]
        for future in futures:
            try:
                started.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - all or nothing: collect, stop, re-raise
                errors.append(exc)
    if errors:
        for server in started:
            stop_server(server)
        raise errors[0]
    return started


def stop_servers(servers: Iterable[SandboxServer], remove: bool = True) -> None:
    """Stop servers, replicas before their primary (a stopped primary would make a replica
    that is still running log reconnect errors)."""
    for server in sorted(servers, key=lambda s: s.name.endswith("primary")):
        stop_server(server, remove=remove)


def start_server_on_datadir(
    base_dir: str | os.PathLike[str],
    name: str,
    datadir: str | os.PathLike[str],
    *,
    server_id: int,
    port: int | None = None,
    tuned: bool = False,
    extra_options: Sequence[str] = (),
    timeout: float = 120,
    build: str | ServerBuild | None = None,
    binary: ServerBuild | None = None,
    scratch: bool = True,
) -> SandboxServer:
    """Start a throwaway server on an existing (e.g. restored and prepared) datadir.

    ``datadir`` is MOVED to ``base_dir/name/data`` (a rename on one filesystem). Its grant
    tables are the source server's, so the root password is unknown here: an ``--init-file``
    creates/resets ``root``@``localhost`` and ``root``@``127.0.0.1`` with a fresh generated
    password before the first login. GTID strict mode is off (the data came from elsewhere).
    ``scratch`` as for :func:`start_server` (the default here: such servers are for tests).
    On failure the error log tail is in the exception and the directory is removed.
    """
    binary = _as_build(build, binary)
    source = os.path.abspath(os.fspath(datadir))
    if not os.path.isdir(source):
        raise SandboxError(f"datadir {source} does not exist or is not a directory")
    with _server_directory(base_dir, name, scratch) as (directory, password):
        shutil.move(source, os.path.join(directory, "data"))
        init_sql = root_init_file(password, create_localhost=True)
        return _launch(
            binary,
            directory,
            name,
            server_id,
            port,
            tuned,
            False,
            init_sql,
            password,
            extra_options,
            timeout,
            scratch,
        )
