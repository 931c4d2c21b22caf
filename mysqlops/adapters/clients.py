"""The client programs (``mysql``/``mariadb``, ``mysqldump``/``mariadb-dump``,
``mysqlbinlog``/``mariadb-binlog``) that match a server, by absolute path.

Every child process mysqlops runs against a server (dump, load, binlog fetch and replay,
seeding, the re-dump of a restore test) takes its program from :func:`for_server`:

1. the server build of the server's flavor and series (:mod:`mysqlops.adapters.builds`: a
   directory named by ``MYSQLOPS_SERVER_BUILD_<BUILD>``, the system's own server when it is that
   build, or a build in the cache), run through its loader when it needs one;
2. otherwise the flavor's programs on PATH (by absolute path), which :func:`check` compares with
   the server before anything runs (a MariaDB ``mysqldump`` first on PATH against MySQL fails
   late with ``unknown variable 'source-data=2'``).

A build is not fetched from the network for a client unless asked (``fetch_missing``): a
backup should not start a 50 MB download; the error of :func:`check` names the command that
fetches it. A ``MYSQLOPS_SERVER_BUILD_<BUILD>`` directory that does not work is an error, never
a silent fallback to PATH. Scratch servers (restore tests, the PITR proof) use
:func:`for_build` on their own build; the re-dump that verifies a restore uses the backup's build.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from mysqlops.adapters import builds, process
from mysqlops.adapters.builds import ServerBuild
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.model import Flavor, ServerVersion
from mysqlops.tools.client import ClientTools, client_mismatch

ROLES = ("client", "dump", "binlog")


@dataclass(frozen=True)
class Clients:
    """The client programs for one server: argv prefixes (loader included for a fetched build)."""

    flavor: Flavor
    mysql: tuple[str, ...]
    dump: tuple[str, ...]
    binlog: tuple[str, ...]
    build: ServerBuild | None = None

    def program(self, role: str) -> tuple[str, ...]:
        return {"client": self.mysql, "mysql": self.mysql, "dump": self.dump, "binlog": self.binlog}[role]

    @property
    def origin(self) -> str:
        return self.build.describe() if self.build else "programs on PATH"

    def record(self) -> dict[str, str]:
        """What a manifest records: the build (flavor, series, exact version) or ``PATH``."""
        if self.build is None:
            return {"client_build": "PATH"}
        rec = self.build.record()
        return {
            "client_build": rec["build"],
            "client_version": rec["version"],
            "client_package": rec["package_version"],
            "client_source": rec["source"],
        }


def for_build(build: ServerBuild) -> Clients:
    """The clients of one server build (a scratch server's own)."""
    names = ClientTools.for_flavor(build.flavor)

    def prog(role: str, fallback: str) -> tuple[str, ...]:
        return build.client_argv(role) if build.has(role) else (_on_path(fallback),)

    return Clients(
        build.flavor,
        prog("client", names.mysql),
        prog("dump", names.dump),
        prog("binlog", names.binlog),
        build,
    )


_memo: dict[tuple[Flavor, int, int, bool], Clients] = {}
_lock = threading.Lock()


def for_server(version: ServerVersion, *, fetch_missing: bool = False) -> Clients:
    """The clients to use against a server of ``version`` (see the module doc)."""
    key = (version.flavor, version.major, version.minor, fetch_missing)
    with _lock:
        hit = _memo.get(key)
    if hit is not None:
        return hit
    name = builds.build_name_for(version)
    try:
        build = builds.resolve(name, fetch_missing=fetch_missing)
    except (MysqlopsError, ConfigError):
        if os.environ.get(builds.parse_build_name(name).env_var):
            raise  # a directory the user named for this build is broken: say so, never fall back
        build = None
    if build is not None:
        found = for_build(build)
    else:
        names = ClientTools.for_flavor(version.flavor)
        found = Clients(
            version.flavor, (_on_path(names.mysql),), (_on_path(names.dump),), (_on_path(names.binlog),)
        )
    with _lock:
        _memo[key] = found
    return found


def forget() -> None:
    """Drop memoized choices (after builds were fetched or the environment changed)."""
    with _lock:
        _memo.clear()
    builds.forget_resolved()


def _on_path(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin") or name


def _install_text(version: ServerVersion, pkg: str, binaries: str, series_suffix: str = "") -> str:
    """Install ``pkg`` of the server's series, point the build's variable at ``binaries``, or
    fetch the build: the three ways out when a tool of the right series is missing."""
    name = builds.build_name_for(version)
    env = builds.parse_build_name(name).env_var
    return (
        f"install {pkg} of series {version.series}{series_suffix}, point {env} at a directory of {binaries}, "
        f"or fetch the build: python -m mysqlops builds fetch {name}"
    )


def fix_text(version: ServerVersion) -> str:
    """What to do when no fitting client is there."""
    pkg = "mariadb-client" if version.flavor is Flavor.MARIADB else "mysql-client"
    text = _install_text(version, pkg, f"{builds.build_name_for(version)} binaries", " (or newer)")
    return text[0].upper() + text[1:]


def version_text(program: Sequence[str]) -> str:
    """``--version`` output of a client program ('' when it cannot run)."""
    try:
        r = process.run(
            [*program, "--version"], timeout=30, name=f"{process.program_name(program)} --version"
        )
    except MysqlopsError:
        return ""
    return (r.stdout.decode("utf-8", "replace") + "\n" + r.stderr).strip()


def check(
    clients: Clients, server: ServerVersion, roles: Sequence[str] = ROLES
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of using ``clients`` against ``server``: each program exists and is
    of the server's flavor (a MySQL client not older than the server's series)."""
    problems: list[str] = []
    warnings: list[str] = []
    fix = fix_text(server)
    for role in roles:
        argv = clients.program(role)
        path = argv[process.program_index(argv)]
        if not os.path.isabs(path) or not os.path.isfile(path):
            problems.append(f"no {role} client {path} is installed or on PATH. {fix}")
            continue
        text = version_text(argv)
        if not text:
            problems.append(
                f"the {role} client {path} does not run ({' '.join(argv)} --version failed). {fix}"
            )
            continue
        problem, warning = client_mismatch(role, os.path.realpath(path), text, server, fix)
        if problem:
            problems.append(problem)
        if warning:
            warnings.append(warning)
    return problems, warnings


# --------------------------------------------------------------------------------------------
# the physical backup tool (mariabackup + mbstream) of a server's own build


@dataclass(frozen=True)
class PhysicalTools:
    """``mariabackup``/``mbstream`` (``xtrabackup``/``xbstream``) for one server: argv prefixes,
    loader included for a fetched build. A physical backup is bound to the server's series
    (prepare applies that series' redo log), so the server build's own tools come first."""

    flavor: Flavor
    backup: tuple[str, ...]
    stream: tuple[str, ...]
    build: ServerBuild | None = None

    def record(self, version_line: str) -> dict[str, str]:
        """What a physical manifest's ``tools`` records: the tool's version and its build."""
        rec: dict[str, str] = {"backup": version_line or "unknown"}
        if self.build is None:
            rec["backup_build"] = "PATH"
            return rec
        b = self.build.record()
        rec.update(
            backup_build=b["build"],
            backup_build_version=b["version"],
            backup_build_package=b["package_version"],
            backup_build_source=b["source"],
        )
        return rec


def physical_tools(version: ServerVersion) -> PhysicalTools:
    """The backup and stream programs to use for a server of ``version``: the server build's
    own (see :func:`for_server` for how the build is found), else the flavor's programs on PATH."""
    name = builds.build_name_for(version)
    try:
        build: ServerBuild | None = builds.resolve(name, fetch_missing=False)
    except (MysqlopsError, ConfigError):
        if os.environ.get(builds.parse_build_name(name).env_var):
            raise  # a directory the user named for this build is broken: say so, never fall back
        build = None
    names = ClientTools.for_flavor(version.flavor)
    if build is not None and build.has("backup") and build.has("stream"):
        return PhysicalTools(version.flavor, build.client_argv("backup"), build.client_argv("stream"), build)
    return PhysicalTools(version.flavor, (_on_path(names.backup),), (_on_path(names.stream),))


def physical_fix_text(version: ServerVersion) -> str:
    """What to do when no backup tool of the server's series is there."""
    pkg = "mariadb-backup" if version.flavor is Flavor.MARIADB else "percona-xtrabackup"
    return _install_text(version, pkg, f"{builds.build_name_for(version)} binaries that holds it")


def check_physical(tools: PhysicalTools, server: ServerVersion) -> tuple[list[str], str]:
    """(problems, version line) of using ``tools`` for a server of ``server``'s series: both
    programs exist and run, and the backup tool is of the server's flavor and series."""
    problems: list[str] = []
    fix = physical_fix_text(server)
    line = ""
    for role, argv in (("backup", tools.backup), ("stream", tools.stream)):
        path = argv[process.program_index(argv)]
        if not os.path.isabs(path) or not os.path.isfile(path):
            problems.append(f"no physical {role} tool {path} is installed or on PATH: {fix}")
            continue
        if role == "stream":
            continue  # mbstream prints no server version; it comes from the same build/package
        text = version_text(argv)
        line = next((ln for ln in text.splitlines() if ln.strip()), "")
        if not line:
            problems.append(f"the backup tool {path} does not run ({' '.join(argv)} --version failed): {fix}")
            continue
        try:
            # "/path/to/mariabackup based on MariaDB server 11.8.3-MariaDB ...": not the path's digits
            found = ServerVersion.parse(line.split(" based on ", 1)[-1])
        except ConfigError:
            problems.append(f"cannot tell the version of the backup tool {path} ({line!r}): {fix}")
            continue
        if found.flavor is not server.flavor or found.series != server.series:
            problems.append(
                f"the backup tool {path} is {found.flavor.value} {found.series}, the server is "
                f"{server.flavor.value} {server.series}: a physical backup needs the tool of the "
                f"server's own series; {fix}"
            )
    return problems, line
