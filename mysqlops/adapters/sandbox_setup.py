"""What a sandbox server is (its directory, port, files and the root login) and how it is set up
before it starts: its options (tuned for tests, GTID on), the wrapper around a build's programs
and the datadir initialization."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

from mysqlops import jsondoc
from mysqlops.adapters import process
from mysqlops.adapters.builds import ServerBuild
from mysqlops.errors import SandboxError
from mysqlops.jsondoc import json_as
from mysqlops.model import Flavor, ServerSpec, ServerVersion


@dataclass(frozen=True)
class SandboxServer:
    """A running throwaway server. Its fields travel as its state file (``sandbox.json``, see
    :data:`STATE_DOC`), the root password excepted."""

    name: str = field(metadata=json_as(jsondoc.TEXT))
    directory: str = field(metadata=json_as(jsondoc.TEXT))
    port: int = field(metadata=json_as(jsondoc.INT))
    server_id: int = field(metadata=json_as(jsondoc.INT))
    pid: int = field(metadata=json_as(jsondoc.INT))
    flavor: Flavor = field(metadata=json_as(jsondoc.enum(Flavor)))
    version: str = field(metadata=json_as(jsondoc.TEXT))
    root_password: str = field(repr=False, metadata=json_as(stored=False))  # in client.cnf only
    tuned: bool = field(default=False, metadata=json_as(jsondoc.BOOL))
    # the server build's name (mysql-9.7, ...); "" in state files of older versions
    build: str = field(default="", metadata=json_as(jsondoc.TEXT))
    # argv prefix of the build's own client (loader included)
    client: tuple[str, ...] = field(default=(), metadata=json_as(jsondoc.tuple_of(jsondoc.TEXT)))

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


#: ``sandbox.json``: a sandbox's fields (never its password) and whether it ran when written;
#: state files of older versions (no schema key) are read the same way
STATE_DOC = jsondoc.Document(
    SandboxServer,
    "mysqlops.sandbox/1",
    "sandbox state",
    derived={"running": SandboxServer.alive},
    older=(None,),
)


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


_TUNED_OPTIONS = (
    "--innodb-flush-log-at-trx-commit=0",
    "--sync-binlog=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=512M",
    "--innodb-log-file-size=512M",
    "--skip-log-bin",
)


def _files_dir(directory: str) -> str:
    """The server's private ``secure_file_priv`` directory (MySQL refuses to start without one
    that exists; Debian's default /var/lib/mysql-files is not there for a sandbox)."""
    return os.path.join(directory, "files")


def _build_dirs(build: ServerBuild) -> list[str]:
    """``--basedir``/``--lc-messages-dir``/``--plugin-dir`` of a build that is not the system's:
    its compiled-in defaults point at /usr, where another version (or nothing) lives."""
    if build.source == "system":
        return []
    opts = [f"--basedir={build.basedir}"] if build.basedir else []
    if build.lc_messages_dir:
        opts.append(f"--lc-messages-dir={build.lc_messages_dir}")
    if build.plugin_dir:
        opts.append(f"--plugin-dir={build.plugin_dir}")
    return opts


def _tuned_options(build: ServerBuild) -> list[str]:
    """Scratch-server options (restore tests): durability off, a large redo log; valid on
    every build (MySQL >= 8.0.30 sizes its redo log with innodb_redo_log_capacity)."""
    opts = list(_TUNED_OPTIONS)
    if build.flavor is Flavor.MYSQL:
        opts[opts.index("--skip-log-bin")] = "--disable-log-bin"
        opts.append("--event-scheduler=OFF")  # MySQL starts it: restored events must not run while verified
        if build.version.at_least(8, 0, 30):
            opts[opts.index("--innodb-log-file-size=512M")] = "--innodb-redo-log-capacity=512M"
    return opts


def _server_options(binary: ServerBuild, server: SandboxServer, tuned: bool, gtid: bool) -> list[str]:
    d = server.directory
    user = os.environ.get("USER") or _current_user()
    opts = [
        *binary.server_argv(),
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
        *_build_dirs(binary),
    ]
    if binary.flavor is Flavor.MARIADB:
        opts += ["--event-scheduler=OFF"]
    else:
        opts += ["--mysqlx=OFF", f"--secure-file-priv={_files_dir(d)}"]
    if tuned:
        opts += _tuned_options(binary)
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


def _wrapper(path: str, argv: Sequence[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in argv) + ' "$@"\n')


def _install_db_basedir(build: ServerBuild, directory: str) -> str:
    """A basedir for ``mariadb-install-db`` of a build that runs through a loader.

    The script is a shell script: it runs directly, but it calls ``BASEDIR/sbin/mariadbd``,
    ``BASEDIR/bin/my_print_defaults`` and ``BASEDIR/bin/resolveip``, which need the build's
    loader. This basedir has small wrappers for those three and links to the build's
    ``share`` (bootstrap SQL, messages) and ``lib`` (plugins).
    """
    assert build.basedir is not None
    shim = os.path.join(directory, "install-db")
    for sub in ("bin", "sbin"):
        os.makedirs(os.path.join(shim, sub), mode=0o700)
    for sub in ("share", "lib"):
        os.symlink(os.path.join(build.basedir, sub), os.path.join(shim, sub))
    _wrapper(os.path.join(shim, "sbin", "mariadbd"), build.server_argv())
    for name in ("my_print_defaults", "resolveip"):
        program = os.path.join(build.basedir, "bin", name)
        if os.path.isfile(program):
            _wrapper(os.path.join(shim, "bin", name), build.argv(program))
    return shim


def _initialize(binary: ServerBuild, datadir: str, directory: str) -> None:
    user = os.environ.get("USER") or _current_user()
    shim = None
    if binary.flavor is Flavor.MARIADB:
        if not binary.install_db:
            raise SandboxError(
                f"server build {binary.describe()} has no mariadb-install-db to initialize a datadir: "
                "install it (apt-get install mariadb-server) or use a build directory that holds it"
            )
        basedir: list[str] = []
        if binary.loader:
            shim = _install_db_basedir(binary, directory)
            basedir = [f"--basedir={shim}"]
        elif binary.source != "system" and binary.basedir:
            basedir = [f"--basedir={binary.basedir}"]
        argv: tuple[str, ...] = (
            binary.install_db,
            "--no-defaults",
            *basedir,
            f"--datadir={datadir}",
            f"--user={user}",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
            "--skip-name-resolve",
            f"--tmpdir={directory}",  # never share /tmp with other bootstraps
        )
    else:
        argv = (
            *binary.server_argv(),
            "--no-defaults",
            "--initialize-insecure",
            f"--datadir={datadir}",
            f"--user={user}",
            *_build_dirs(binary),
            f"--secure-file-priv={_files_dir(directory)}",
            f"--log-error={os.path.join(directory, 'initialize.log')}",
        )
    try:
        process.run(argv, timeout=300, cwd=directory, env={"TMPDIR": directory}, name="initialize datadir")
    except process.ProcessError as exc:
        tail = _log_tail(os.path.join(directory, "initialize.log")) if binary.flavor is Flavor.MYSQL else ""
        raise SandboxError(
            f"initializing {datadir} with {binary.describe()} failed: {exc}"
            + (f"; error log tail:\n{tail}" if tail else "")
        ) from exc
    finally:
        if shim:
            shutil.rmtree(shim, ignore_errors=True)


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no error log)"
