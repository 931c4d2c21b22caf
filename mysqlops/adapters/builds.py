"""Server builds: a flavor + series (``mariadb-10.11``, ``mariadb-11.8``, ``mysql-9.7``) names the
server and client programs mysqlops runs for sandboxes, restore tests and (later) every flow.

A build resolves, in this order, to:

1. a directory of installed binaries the user names: the ``directory`` argument, or the
   environment variable ``MYSQLOPS_SERVER_BUILD_<BUILD>`` (``MYSQLOPS_SERVER_BUILD_MYSQL_9_7=/opt/mysql``;
   the build name upper-cased with ``-`` and ``.`` as ``_``). The directory is a prefix holding
   ``bin/``/``sbin/`` (``/usr``, an unpacked vendor tarball) or a root holding ``usr/``; when it
   carries its own dynamic loader (an unpacked Debian tree) the programs run through it;
2. the system's own server when it IS that build (``/usr/sbin/mariadbd`` of Debian bookworm is
   ``mariadb-10.11``); system programs run directly;
3. a build already fetched into the cache, ``~/.cache/mysqlops/servers/<build>/<version>/``
   (``MYSQLOPS_SERVER_CACHE`` overrides the ``servers`` directory): the newest cached version;
4. otherwise it is fetched ONCE from Debian's archive (:func:`mysqlops.adapters.debian.fetch`).

Programs of a fetched build need a newer C library than the host's, so they run through the
loader unpacked from the same suite: ``ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
--library-path ROOT/usr/lib/x86_64-linux-gnu ROOT/usr/sbin/mysqld ...``.
:meth:`ServerBuild.client_argv` gives that prefix for every tool; the process adapter knows to
put ``--defaults-extra-file`` after the program, not after the loader.

Only child processes go through :mod:`mysqlops.adapters.process`; reading the cache is plain file I/O.
The module is one concept over ~500 lines: what a build is and where it is found (its name,
its programs in a directory tree, the cache, the order of resolution); fetching is apart.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops.adapters import process
from mysqlops.errors import BuildUnavailable, ConfigError, MysqlopsError
from mysqlops.model import Flavor, ServerVersion

KNOWN_BUILDS = ("mariadb-10.11", "mariadb-11.8", "mysql-9.7")
DEFAULT_BUILD = "mariadb-10.11"
ENV_PREFIX = "MYSQLOPS_SERVER_BUILD_"
CACHE_ENV = "MYSQLOPS_SERVER_CACHE"
METADATA = "build.json"
METADATA_FORMAT = 1
DEFAULT_SUITE = "sid"
# a series no longer in sid lives on in the stable suite that shipped it
SUITES = {"mariadb-10.11": "bookworm"}
# the tools a build offers, by role; the first name found wins
PROGRAMS: dict[Flavor, dict[str, tuple[str, ...]]] = {
    Flavor.MARIADB: {
        "server": ("mariadbd", "mysqld"),
        "install_db": ("mariadb-install-db", "mysql_install_db"),
        "client": ("mariadb", "mysql"),
        "dump": ("mariadb-dump", "mysqldump"),
        "binlog": ("mariadb-binlog", "mysqlbinlog"),
        "admin": ("mariadb-admin", "mysqladmin"),
        "backup": ("mariadb-backup", "mariabackup"),
        "stream": ("mbstream",),
    },
    Flavor.MYSQL: {
        "server": ("mysqld",),
        "install_db": (),
        "client": ("mysql",),
        "dump": ("mysqldump",),
        "binlog": ("mysqlbinlog",),
        "admin": ("mysqladmin",),
        "backup": ("xtrabackup",),
        "stream": ("xbstream",),
    },
}
TOOL_ALIASES = {"mysql": "client", "mariadb": "client", "mysqldump": "dump", "mysqlbinlog": "binlog"}
CLIENT_TOOLS = ("client", "dump", "binlog", "admin", "backup", "stream")
_PROGRAM_DIRS = ("sbin", "bin", "libexec", "scripts")
_PLUGIN_DIRS = ("lib/mysql/plugin", "lib/mariadb/plugin", "lib/plugin", "lib64/mysql/plugin", "lib64/plugin")
_MESSAGE_DIRS = ("share/mariadb", "share/mysql", "share")
# machine -> (multiarch triplet, loader file name, Debian architecture)
_ARCH = {
    "x86_64": ("x86_64-linux-gnu", "ld-linux-x86-64.so.2", "amd64"),
    "aarch64": ("aarch64-linux-gnu", "ld-linux-aarch64.so.1", "arm64"),
}
_NAME_RE = re.compile(r"^(mariadb|mysql)-(\d+)\.(\d+)$")

Log = Callable[[str], None]


class SeriesNotInArchive(BuildUnavailable):
    """The suite's index has the package, but not in the build's series."""


def _quiet(_message: str) -> None:
    return None


# --------------------------------------------------------------------------------------------
# pure parts: names, indexes, version text, loader argv


@dataclass(frozen=True)
class BuildName:
    """``mysql-9.7`` = flavor MySQL, series 9.7."""

    flavor: Flavor
    major: int
    minor: int

    @property
    def series(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def name(self) -> str:
        return f"{self.flavor.value}-{self.series}"

    @property
    def env_var(self) -> str:
        """``MYSQLOPS_SERVER_BUILD_MYSQL_9_7``: a directory of installed binaries for this build."""
        return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", self.name).upper()

    @property
    def suite(self) -> str:
        return SUITES.get(self.name, DEFAULT_SUITE)

    def matches(self, version: ServerVersion) -> bool:
        return version.flavor is self.flavor and (version.major, version.minor) == (self.major, self.minor)


def parse_build_name(name: str) -> BuildName:
    """``mariadb-11.8`` -> BuildName; a clear error naming the form otherwise."""
    m = _NAME_RE.match((name or "").strip().lower())
    if not m:
        raise ConfigError(
            f"server build {name!r} is not a build name: use <flavor>-<major>.<minor> with flavor "
            f"mariadb or mysql, e.g. {', '.join(KNOWN_BUILDS)}"
        )
    return BuildName(Flavor(m.group(1)), int(m.group(2)), int(m.group(3)))


def build_name_for(version: ServerVersion) -> str:
    """The build name of a server version (``MySQL 9.7.4`` -> ``mysql-9.7``)."""
    return f"{version.flavor.value}-{version.major}.{version.minor}"


def upstream_version(debian_version: str) -> tuple[int, int, int] | None:
    """``1:11.8.9+ds-4`` -> (11, 8, 9); None when it does not start with major.minor.patch."""
    text = debian_version.split(":", 1)[1] if ":" in debian_version.split("-", 1)[0] else debian_version
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def parse_version_output(text: str) -> ServerVersion:
    """``mysqld --version`` / ``mariadbd --version`` -> ServerVersion.

    Reads only what follows `` Ver ``, so a path such as ``.../mariadb-11.8/.../mysqld`` in front
    of it says nothing about the flavor."""
    line = next((ln for ln in text.splitlines() if " Ver " in ln), "")
    if line:
        after = line.split(" Ver ", 1)[1].strip()
        m = re.match(r"(\d+)\.(\d+)\.(\d+)(\S*)", after)
        if m:
            flavor = Flavor.MARIADB if "mariadb" in after.lower() else Flavor.MYSQL
            return ServerVersion(flavor, int(m.group(1)), int(m.group(2)), int(m.group(3)))
    raise BuildUnavailable(f"cannot read a server version from {text.strip()[:200]!r}")


def machine_arch(machine: str | None = None) -> tuple[str, str, str]:
    """(multiarch triplet, loader name, Debian architecture) of this machine."""
    m = machine or platform.machine()
    if m not in _ARCH:
        raise BuildUnavailable(
            f"server builds from Debian's archive are set up for {', '.join(_ARCH)} machines, not {m}: "
            f"point at installed binaries with {ENV_PREFIX}<BUILD>=<directory>"
        )
    return _ARCH[m]


def loader_argv(root: str, machine: str | None = None) -> tuple[str, ...]:
    """The argv prefix that runs programs of an unpacked tree with its own C library:
    ``(ROOT/usr/lib/<triplet>/<ld.so>, "--library-path", "ROOT/usr/lib/<triplet>:...")``,
    or ``()`` when ``root`` carries no loader."""
    triplet, ld_name, _arch = machine_arch(machine)
    candidates = [
        os.path.join(root, "usr", "lib", triplet, ld_name),
        os.path.join(root, "lib", triplet, ld_name),
        os.path.join(root, "usr", "lib64", ld_name),
        os.path.join(root, "lib64", ld_name),
    ]
    loader = next((c for c in candidates if os.path.isfile(c)), None)
    if loader is None:
        return ()
    dirs = [
        d
        for d in (os.path.join(root, "usr", "lib", triplet), os.path.join(root, "lib", triplet))
        if os.path.isdir(d)
    ]
    return (loader, "--library-path", ":".join(dirs))


# --------------------------------------------------------------------------------------------
# the value


@dataclass(frozen=True)
class ServerBuild:
    """One resolved server build: where its programs are and how to run them.

    ``loader`` is empty for programs that run directly (system or user binaries) and the
    dynamic loader prefix for a tree fetched from another Debian suite. Paths are absolute.
    ``version`` is the patch version found by running the server (``MySQL 9.7.4``);
    ``package_version`` the Debian version it was fetched as (empty when not fetched).
    """

    name: str
    flavor: Flavor
    series: str
    version: ServerVersion
    source: str  # "system" | "directory" | "cache"
    root: str
    server: str
    package_version: str = ""
    loader: tuple[str, ...] = ()
    install_db: str | None = None
    client: str | None = None
    dump: str | None = None
    binlog: str | None = None
    admin: str | None = None
    backup: str | None = None
    stream: str | None = None
    plugin_dir: str | None = None
    lc_messages_dir: str | None = None
    basedir: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def version_text(self) -> str:
        """``9.7.4``: the patch version, as sandboxes and manifests record it."""
        return f"{self.version.major}.{self.version.minor}.{self.version.patch}"

    @property
    def path(self) -> str:
        """The server program (compatibility with the former ``ServerBinary``)."""
        return self.server

    def argv(self, program: str) -> tuple[str, ...]:
        """Run ``program`` (an absolute path inside this build) with the build's loader prefix."""
        return (*self.loader, program)

    def server_argv(self) -> tuple[str, ...]:
        return self.argv(self.server)

    def tool_path(self, tool: str) -> str:
        """Absolute path of a client tool by role (``client``, ``dump``, ``binlog``, ``admin``,
        ``backup``, ``stream``) or by its common name (``mysql``, ``mysqldump``, ``mysqlbinlog``)."""
        role = TOOL_ALIASES.get(tool, tool)
        if role not in CLIENT_TOOLS:
            raise ConfigError(
                f"{tool!r} is not a client tool of a server build; use one of {', '.join(CLIENT_TOOLS)}"
            )
        path = getattr(self, role)
        if not path:
            names = " or ".join(PROGRAMS[self.flavor][role]) or role
            raise BuildUnavailable(
                f"server build {self.name} ({self.source} at {self.root}) has no {names}: "
                + _missing_tool_fix(self, role)
            )
        return str(path)

    def client_argv(self, tool: str) -> tuple[str, ...]:
        """The argv prefix that runs a client tool of this build (loader included), e.g.
        ``build.client_argv("dump") + ("--single-transaction", ...)``."""
        return self.argv(self.tool_path(tool))

    def has(self, tool: str) -> bool:
        return bool(getattr(self, TOOL_ALIASES.get(tool, tool), None))

    def record(self) -> dict[str, str]:
        """What a backup manifest or sandbox state records about the build it used."""
        return {
            "build": self.name,
            "flavor": self.flavor.value,
            "series": self.series,
            "version": self.version_text,
            "package_version": self.package_version,
            "source": self.source,
        }

    def describe(self) -> str:
        where = {"system": "the system's", "directory": "binaries in", "cache": "fetched into"}[self.source]
        pkg = f", Debian {self.package_version}" if self.package_version else ""
        return f"{self.name} ({self.version}{pkg}; {where} {self.root})"


def _missing_tool_fix(build: ServerBuild, role: str) -> str:
    if build.source == "system":
        pkg = {
            (Flavor.MARIADB, "backup"): "mariadb-backup",
            (Flavor.MARIADB, "stream"): "mariadb-backup",
        }.get((build.flavor, role), "mariadb-client" if build.flavor is Flavor.MARIADB else "mysql-client")
        return f"install it: apt-get install {pkg}"
    if build.flavor is Flavor.MYSQL and role in ("backup", "stream"):
        return "Debian carries no xtrabackup; physical backups of MySQL use the CLONE plugin"
    return "use a build directory that holds it"


# --------------------------------------------------------------------------------------------
# finding programs in a tree


def _find_program(prefixes: Sequence[str], names: Sequence[str]) -> str | None:
    for name in names:
        for prefix in prefixes:
            for sub in _PROGRAM_DIRS:
                path = os.path.join(prefix, sub, name)
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    return path
    return None


def _find_dir(prefixes: Sequence[str], subdirs: Sequence[str], must_hold: str = "") -> str | None:
    for prefix in prefixes:
        for sub in subdirs:
            path = os.path.join(prefix, sub)
            if os.path.isdir(path) and (not must_hold or os.path.exists(os.path.join(path, must_hold))):
                return path
    return None


def _prefixes(root: str) -> list[str]:
    return [
        p for p in (os.path.join(root, "usr"), os.path.join(root, "usr", "local"), root) if os.path.isdir(p)
    ]


def _locate(flavor: Flavor, prefixes: Sequence[str]) -> dict[str, str | None]:
    """Paths of the client programs and directories of a build under ``prefixes`` (None where
    absent); the server is found separately."""
    names = PROGRAMS[flavor]
    found: dict[str, str | None] = {
        role: _find_program(prefixes, names[role]) for role in (*CLIENT_TOOLS, "install_db")
    }
    found["plugin_dir"] = _find_dir(prefixes, _PLUGIN_DIRS)
    found["lc_messages_dir"] = _find_dir(
        prefixes, _MESSAGE_DIRS, must_hold=os.path.join("english", "errmsg.sys")
    )
    return found


def _build(
    bn: BuildName,
    version: ServerVersion,
    source: str,
    root: str,
    server: str,
    found: Mapping[str, str | None],
    *,
    loader: tuple[str, ...] = (),
    basedir: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ServerBuild:
    meta = dict(metadata or {})
    return ServerBuild(
        name=bn.name,
        flavor=bn.flavor,
        series=bn.series,
        version=version,
        source=source,
        root=root,
        server=server,
        package_version=str(meta.get("package_version", "")),
        loader=loader,
        install_db=found.get("install_db"),
        client=found.get("client"),
        dump=found.get("dump"),
        binlog=found.get("binlog"),
        admin=found.get("admin"),
        backup=found.get("backup"),
        stream=found.get("stream"),
        plugin_dir=found.get("plugin_dir"),
        lc_messages_dir=found.get("lc_messages_dir"),
        basedir=basedir,
        metadata=meta,
    )


def _probe(argv: Sequence[str]) -> ServerVersion:
    try:
        r = process.run([*argv, "--version"], timeout=60, name=f"{process.program_name(argv)} --version")
    except MysqlopsError as exc:
        raise BuildUnavailable(f"{' '.join(argv)} --version failed: {exc}") from exc
    return parse_version_output(r.stdout.decode("utf-8", "replace") + "\n" + r.stderr)


def _from_tree(
    bn: BuildName, root: str, source: str, metadata: Mapping[str, Any] | None = None
) -> ServerBuild:
    """A build whose programs live under ``root`` (a cache tree or a user's directory)."""
    if not os.path.isdir(root):
        raise BuildUnavailable(f"server build {bn.name}: {root} is not a directory")
    prefixes = _prefixes(root)
    server = _find_program(prefixes, PROGRAMS[bn.flavor]["server"])
    if not server:
        looked = ", ".join(os.path.join(p, d) for p in prefixes for d in ("sbin", "bin", "libexec"))
        raise BuildUnavailable(
            f"server build {bn.name}: no {' or '.join(PROGRAMS[bn.flavor]['server'])} under {root} "
            f"(looked in {looked})"
        )
    loader = loader_argv(root)
    version = _probe((*loader, server))
    if not bn.matches(version):
        raise BuildUnavailable(
            f"server build {bn.name}: the server at {server} is {version}, not {bn.flavor.value} "
            f"{bn.series}: point {bn.env_var} at binaries of {bn.name}"
        )
    return _build(
        bn,
        version,
        source,
        root,
        server,
        _locate(bn.flavor, prefixes),
        loader=loader,
        basedir=os.path.dirname(os.path.dirname(server)),
        metadata=metadata,
    )


def _system_build(bn: BuildName) -> ServerBuild | None:
    """The system's installed server when it is this build, else None."""
    seen: set[str] = set()
    names = PROGRAMS[bn.flavor]["server"]
    candidates = [shutil.which(n) or "" for n in names] + [
        os.path.join(d, n) for d in ("/usr/sbin", "/usr/local/sbin", "/usr/libexec") for n in names
    ]
    for path in candidates:
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:
            version = _probe((path,))
        except BuildUnavailable:
            continue
        if not bn.matches(version):
            continue
        prefix = os.path.dirname(os.path.dirname(path))
        found = _locate(bn.flavor, list(dict.fromkeys([prefix, "/usr", "/usr/local"])))
        # system programs know their own directories; passing them changes nothing
        found["plugin_dir"] = found["lc_messages_dir"] = None
        return _build(bn, version, "system", "/", path, found)
    return None


# --------------------------------------------------------------------------------------------
# the cache


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """``MYSQLOPS_SERVER_CACHE`` or ``$XDG_CACHE_HOME/mysqlops/servers`` (``~/.cache/...``)."""
    if cache_dir:
        return os.path.abspath(os.fspath(cache_dir))
    env = os.environ.get(CACHE_ENV)
    if env:
        return os.path.abspath(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mysqlops", "servers")


def _version_dirs(build_dir: str) -> list[tuple[tuple[int, int, int], str, dict[str, Any]]]:
    """Complete cached versions of one build: (upstream version, dir, metadata), oldest first."""
    found = []
    try:
        names = os.listdir(build_dir)
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(build_dir, name)
        try:
            with open(os.path.join(path, METADATA), encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            continue  # not ours, or not a complete build
        up = upstream_version(str(meta.get("package_version", "")))
        if up is None or meta.get("format") != METADATA_FORMAT:
            continue
        found.append((up, path, meta))
    found.sort(key=lambda t: (t[0], str(t[2].get("package_version")), str(t[2].get("fetched_at"))))
    return found


def _from_cache(bn: BuildName, root: str) -> ServerBuild | None:
    versions = _version_dirs(os.path.join(root, bn.name))
    if not versions:
        return None
    _up, path, meta = versions[-1]
    try:
        return _from_tree(bn, os.path.join(path, "root"), "cache", meta)
    except BuildUnavailable as exc:
        raise BuildUnavailable(
            f"the cached build at {path} is broken ({exc}): remove it (rm -rf {path}) and fetch it again "
            f"(python -m mysqlops builds fetch {bn.name})"
        ) from exc


def cached_builds(cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every complete build in the cache (``builds list``): metadata plus its directory."""
    root = cache_root(cache_dir)
    rows = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    for name in names:
        for _up, path, meta in _version_dirs(os.path.join(root, name)):
            rows.append({**meta, "path": path})
    return rows


_resolved: dict[tuple[str, ...], ServerBuild] = {}
_resolved_lock = threading.Lock()


def resolve(
    name: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    fetch_missing: bool = True,
    log: Log = _quiet,
) -> ServerBuild:
    """The build ``name`` as this machine has it (see the module doc for the order); fetched
    from Debian's archive when nothing else has it and ``fetch_missing``."""
    bn = parse_build_name(name)
    env_dir = os.environ.get(bn.env_var, "")
    user_dir = os.fspath(directory) if directory else env_dir
    root = cache_root(cache_dir)
    key = (bn.name, user_dir, root)
    with _resolved_lock:
        hit = _resolved.get(key)
    if hit is not None:
        return hit
    build: ServerBuild | None
    if user_dir:
        origin = "the directory argument" if directory else bn.env_var
        if not os.path.isdir(user_dir):
            raise BuildUnavailable(
                f"server build {bn.name}: {origin} names {user_dir}, which is not a directory"
            )
        build = _from_tree(bn, os.path.abspath(user_dir), "directory")
    else:
        build = _system_build(bn) or _from_cache(bn, root)
        if build is None:
            if not fetch_missing:
                raise BuildUnavailable(
                    f"server build {bn.name} is not on this machine: fetch it with "
                    f"`python -m mysqlops builds fetch {bn.name}`, or point {bn.env_var} at installed binaries"
                )
            from mysqlops.adapters import debian  # fetching needs what this module defines

            build = debian.fetch(bn.name, cache_dir=root, log=log)
    with _resolved_lock:
        _resolved[key] = build
    return build


def forget_resolved() -> None:
    """Drop memoized resolutions (after the cache or the environment changed)."""
    with _resolved_lock:
        _resolved.clear()
