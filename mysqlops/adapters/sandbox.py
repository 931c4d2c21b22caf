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
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mysqlops.adapters import process, reaper
from mysqlops.adapters.mysql import session
from mysqlops.commands import client_option_file
from mysqlops.errors import EnvironmentProblem, SandboxError
from mysqlops.model import Flavor, ServerSpec, ServerVersion

STATE_FILE = "sandbox.json"
_TUNED_OPTIONS = (
    "--innodb-flush-log-at-trx-commit=0",
    "--sync-binlog=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=512M",
    "--innodb-log-file-size=512M",
    "--skip-log-bin",
)
_running: dict[int, SandboxServer] = {}
_running_lock = threading.Lock()


@dataclass(frozen=True)
class ServerBinary:
    path: str
    flavor: Flavor
    version: ServerVersion
    install_db: str | None  # mariadb-install-db for MariaDB; None for MySQL (--initialize-insecure)


def find_server_binary() -> ServerBinary:
    """Detect the installed server (MariaDB preferred) and its version from ``--version``."""
    candidates = [("mariadbd", Flavor.MARIADB), ("mysqld", None)]
    for name, _ in candidates:
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/usr/libexec")
        if not path:
            continue
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
        version = ServerVersion.parse(out.stdout or out.stderr)
        if version.flavor is Flavor.MARIADB:
            install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
            if not install:
                raise EnvironmentProblem(
                    "mariadb-install-db is missing. Install it: apt-get install mariadb-server"
                )
            return ServerBinary(path, Flavor.MARIADB, version, install)
        return ServerBinary(path, Flavor.MYSQL, version, None)
    raise EnvironmentProblem(
        "no MySQL/MariaDB server binary (mariadbd or mysqld) found. Install it: "
        "apt-get install mariadb-server mariadb-client (or mysql-server for MySQL)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class SandboxServer:
    """A running throwaway server."""

    name: str
    directory: str
    port: int
    server_id: int
    pid: int
    flavor: Flavor
    version: str
    root_password: str = field(repr=False)
    tuned: bool = False

    @property
    def datadir(self) -> str:
        return os.path.join(self.directory, "data")

    @property
    def socket(self) -> str:
        return os.path.join(self.directory, "mysqld.sock")

    @property
    def error_log(self) -> str:
        return os.path.join(self.directory, "error.log")

    @property
    def option_file(self) -> str:
        """0600 client option file: ``mariadb --defaults-extra-file=<this>`` logs in as root."""
        return os.path.join(self.directory, "client.cnf")

    @property
    def server_version(self) -> ServerVersion:
        return ServerVersion.parse(f"{self.version}-{self.flavor.value}")

    def spec(self, user: str = "root", password: str | None = None, name: str | None = None) -> ServerSpec:
        """A TCP connection spec (root with the generated password by default)."""
        return ServerSpec(
            name=name or self.name,
            host="127.0.0.1",
            port=self.port,
            user=user,
            password=self.root_password if user == "root" and password is None else password,
        )

    def alive(self) -> bool:
        return _pid_is_server(self.pid, self.datadir)


def _pid_is_server(pid: int, datadir: str) -> bool:
    """True when ``pid`` is alive and really is the server of ``datadir`` (not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().decode("utf-8", "replace")
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        return False
    return datadir in cmdline


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _server_options(binary: ServerBinary, server: SandboxServer, tuned: bool, gtid: bool) -> list[str]:
    d = server.directory
    user = os.environ.get("USER") or _current_user()
    opts = [
        binary.path,
        "--no-defaults",
        f"--datadir={server.datadir}",
        f"--socket={server.socket}",
        f"--port={server.port}",
        "--bind-address=127.0.0.1",
        f"--pid-file={os.path.join(d, 'mysqld.pid')}",
        f"--log-error={server.error_log}",
        f"--server-id={server.server_id}",
        f"--user={user}",
        "--skip-name-resolve",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        "--max-allowed-packet=256M",
        "--innodb-buffer-pool-size=64M",
        f"--tmpdir={d}",
    ]
    if binary.flavor is Flavor.MARIADB:
        opts += ["--event-scheduler=OFF"]
    else:
        opts += ["--mysqlx=OFF"]
    if tuned:
        opts += list(_TUNED_OPTIONS)
        if binary.flavor is Flavor.MYSQL:
            opts.remove("--skip-log-bin")
            opts += ["--disable-log-bin"]
    else:
        opts += [
            f"--log-bin={os.path.join(server.datadir, 'mysql-bin')}",
            "--binlog-format=ROW",
            "--sync-binlog=1",
        ]
        if binary.flavor is Flavor.MARIADB:
            opts += ["--log-slave-updates=1", "--gtid-strict-mode=1" if gtid else "--gtid-strict-mode=0"]
        else:
            opts += ["--log-replica-updates=ON"]
            if gtid:
                opts += ["--gtid-mode=ON", "--enforce-gtid-consistency=ON"]
    return opts


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _init_sql(password: str) -> str:
    pw = _sql_string(password)
    return (
        "SET SESSION sql_log_bin=0;\n"  # never write the password into the binary log
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};\n"
        f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY {pw};\n"
        f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {pw};\n"
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n"
    )


def _initialize(binary: ServerBinary, datadir: str, directory: str) -> None:
    user = os.environ.get("USER") or _current_user()
    if binary.install_db:
        argv: tuple[str, ...] = (
            binary.install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--user={user}",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
            "--skip-name-resolve",
            f"--tmpdir={directory}",  # never share /tmp with other bootstraps
        )
    else:
        argv = (
            binary.path,
            "--no-defaults",
            "--initialize-insecure",
            f"--datadir={datadir}",
            f"--user={user}",
        )
    try:
        process.run(argv, timeout=120, cwd=directory, env={"TMPDIR": directory}, name="initialize datadir")
    except process.ProcessError as exc:
        raise SandboxError(f"initializing {datadir} failed: {exc}") from exc


def _launch(
    binary: ServerBinary,
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
    for _attempt in range(3):
        server = SandboxServer(
            name=name,
            directory=directory,
            port=port or free_port(),
            server_id=server_id,
            pid=0,
            flavor=binary.flavor,
            version=f"{binary.version.major}.{binary.version.minor}.{binary.version.patch}",
            root_password=password,
            tuned=tuned,
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
    binary: ServerBinary | None = None,
    scratch: bool = False,
) -> SandboxServer:
    """Create and start one server under ``base_dir/name``; wait until it accepts logins.

    ``scratch`` (restore tests): the directory carries an owner marker, so if this process is
    killed the next run's reaper (:mod:`mysqlops.adapters.reaper`) stops the server and removes
    it, and no ``client.cnf`` is written (the password stays in memory). Practice servers
    (``sandbox up``) keep a 0600 ``client.cnf`` for their user and no marker: they outlive
    the command that started them on purpose.
    On failure the error log tail is in the exception and the directory is removed.
    """
    binary = binary or find_server_binary()
    directory = os.path.abspath(os.path.join(os.fspath(base_dir), name))
    if os.path.exists(directory):
        raise SandboxError(
            f"{directory} already exists: stop that sandbox first (sandbox down) or pick another name"
        )
    os.makedirs(directory, mode=0o700)
    os.chmod(directory, 0o700)
    password = secrets.token_urlsafe(18)
    try:
        if scratch:
            reaper.mark(directory, "scratch server")
        datadir = os.path.join(directory, "data")
        _initialize(binary, datadir, directory)
        return _launch(
            binary,
            directory,
            name,
            server_id,
            port,
            tuned,
            gtid,
            _init_sql(password),
            password,
            extra_options,
            timeout,
            scratch,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _wait_ready(server: SandboxServer, proc: subprocess.Popen[bytes], timeout: float) -> None:
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
                    cur.execute("SELECT 1")
                return
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last = str(exc)
        time.sleep(0.05)
    raise SandboxError(
        f"server {server.name} not ready after {timeout:.0f}s ({last}); error log tail:\n{_log_tail(server.error_log)}"
    )


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no error log)"


def _stop_pid(server: SandboxServer, proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
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
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        else:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
    process.forget_group(pid)
    with _running_lock:
        _running.pop(pid, None)


def stop_server(server: SandboxServer, *, remove: bool = True, timeout: float = 30) -> None:
    """Stop a sandbox server by PID and (by default) delete its directory."""
    _stop_pid(server, None, timeout)
    if remove:
        shutil.rmtree(server.directory, ignore_errors=True)
    else:
        _save_state(server, running=False)


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


def _save_state(server: SandboxServer, running: bool = True) -> None:
    doc = {k: v for k, v in asdict(server).items() if k != "root_password"}
    doc["flavor"] = server.flavor.value
    doc["running"] = running
    path = os.path.join(server.directory, STATE_FILE)
    _write_private(path, json.dumps(doc, indent=2))


def load_servers(base_dir: str | os.PathLike[str]) -> list[SandboxServer]:
    """Sandboxes recorded under ``base_dir`` (the CLI's ``status``/``down``)."""
    servers = []
    base = Path(base_dir)
    if not base.is_dir():
        return []
    for state in sorted(base.glob(f"*/{STATE_FILE}")):
        doc = json.loads(state.read_text())
        password = _password_from_option_file(state.parent / "client.cnf")
        doc.pop("running", None)
        doc["flavor"] = Flavor(doc["flavor"])
        servers.append(SandboxServer(root_password=password, **doc))
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
) -> list[SandboxServer]:
    """A primary and ``replicas`` replica servers (not yet replicating); all or nothing."""
    binary = find_server_binary()
    started: list[SandboxServer] = []
    names = [f"{prefix}primary"] + [f"{prefix}replica{i}" for i in range(1, replicas + 1)]
    try:
        for offset, name in enumerate(names):
            started.append(
                start_server(
                    base_dir,
                    name,
                    server_id=first_server_id + offset,
                    tuned=tuned,
                    extra_options=extra_options,
                    binary=binary,
                )
            )
    except BaseException:
        for server in started:
            stop_server(server)
        raise
    return started


def stop_servers(servers: Iterable[SandboxServer], remove: bool = True) -> None:
    for server in servers:
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
    binary: ServerBinary | None = None,
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
    binary = binary or find_server_binary()
    directory = os.path.abspath(os.path.join(os.fspath(base_dir), name))
    if os.path.exists(directory):
        raise SandboxError(f"{directory} already exists: stop that sandbox first or pick another name")
    source = os.path.abspath(os.fspath(datadir))
    if not os.path.isdir(source):
        raise SandboxError(f"datadir {source} does not exist or is not a directory")
    os.makedirs(directory, mode=0o700)
    os.chmod(directory, 0o700)
    password = secrets.token_urlsafe(18)
    try:
        if scratch:
            reaper.mark(directory, "scratch server")
        shutil.move(source, os.path.join(directory, "data"))
        pw = _sql_string(password)
        init_sql = (
            "SET SESSION sql_log_bin=0;\n"  # never write the password into the binary log
            f"CREATE USER IF NOT EXISTS 'root'@'localhost' IDENTIFIED BY {pw};\n"
            + _init_sql(password)
            + "GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost' WITH GRANT OPTION;\n"
        )
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
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
