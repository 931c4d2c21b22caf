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
4. otherwise it is fetched ONCE from Debian's archive (:func:`fetch`): a private apt
   configuration naming the system's Debian mirror with the build's suite (``sid``; ``bookworm``
   for 10.11) and the system's archive keyring, ``apt-get update`` (apt checks the Release
   signature), the server package's version for the series read from the index (never a
   hard-coded file name or patch version), the dependency closure from apt's own resolver
   (``apt-get -s install`` against an empty status), ``apt-get download`` (apt checks each
   SHA256 from the index; we check it again and record it), ``dpkg-deb -x`` into a staging
   directory, a test run of the unpacked server, then one atomic rename into the cache.

Programs of a fetched build need a newer C library than the host's, so they run through the
loader unpacked from the same suite: ``ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
--library-path ROOT/usr/lib/x86_64-linux-gnu ROOT/usr/sbin/mysqld ...``.
:meth:`ServerBuild.client_argv` gives that prefix for every tool; the process adapter knows to
put ``--defaults-extra-file`` after the program, not after the loader.

Crash safety: nothing under ``<build>/`` is a version directory until it is complete (rename of a
staged tree holding its ``build.json``); ``.partial-*`` staging directories of a killed fetcher
are removed by the next fetcher of that build, which holds the build's lock file (a live fetcher
always holds it, so no staging directory under a held lock belongs to a live process).

Only child processes go through :mod:`mysqlops.adapters.process`; reading the cache is plain file I/O.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mysqlops.adapters import process
from mysqlops.errors import BuildUnavailable, ConfigError, MysqlopsError
from mysqlops.model import Flavor, ServerVersion

KNOWN_BUILDS = ("mariadb-10.11", "mariadb-11.8", "mysql-9.7")
DEFAULT_BUILD = "mariadb-10.11"
ENV_PREFIX = "MYSQLOPS_SERVER_BUILD_"
CACHE_ENV = "MYSQLOPS_SERVER_CACHE"
MIRROR_ENV = "MYSQLOPS_SERVER_MIRROR"
METADATA = "build.json"
METADATA_FORMAT = 1
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_SUITE = "sid"
# a series no longer in sid lives on in the stable suite that shipped it
SUITES = {"mariadb-10.11": "bookworm"}
# Debian package names per flavor: the server package first (its version names the build's)
PACKAGES = {
    Flavor.MYSQL: ("mysql-server-core", "mysql-client-core"),
    Flavor.MARIADB: ("mariadb-server-core", "mariadb-client-core", "mariadb-client", "mariadb-backup"),
}
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


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Debian control stanzas (a Packages index, ``apt-cache show`` output) as dicts.
    Continuation lines (starting with a space) are folded into the field before them."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        last = key.strip()
        current[last] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def upstream_version(debian_version: str) -> tuple[int, int, int] | None:
    """``1:11.8.9+ds-4`` -> (11, 8, 9); None when it does not start with major.minor.patch."""
    text = debian_version.split(":", 1)[1] if ":" in debian_version.split("-", 1)[0] else debian_version
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def pick_version(stanzas: Sequence[Mapping[str, str]], package: str, build: BuildName) -> Mapping[str, str]:
    """The newest stanza of ``package`` whose upstream version is in the build's series.

    Raises :class:`BuildUnavailable` naming what the index holds instead."""
    offered = [s for s in stanzas if s.get("Package") == package and s.get("Version")]
    fitting = []
    for stanza in offered:
        up = upstream_version(stanza["Version"])
        if up and (up[0], up[1]) == (build.major, build.minor):
            fitting.append((up, stanza["Version"], stanza))
    if not fitting:
        held = ", ".join(sorted({s["Version"] for s in offered})) or "no version at all"
        raise SeriesNotInArchive(
            f"server build {build.name}: the archive's {build.suite} suite holds {package} {held}, "
            f"not series {build.series}"
        )
    fitting.sort(key=lambda t: (t[0], t[1]))
    return fitting[-1][2]


_INST_RE = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ")


def parse_simulated_install(text: str) -> list[tuple[str, str]]:
    """``apt-get -s install`` output -> [(package, version)] in install order."""
    found = []
    for line in text.splitlines():
        m = _INST_RE.match(line)
        if m:
            name = m.group(1).split(":", 1)[0]  # libfoo:amd64 -> libfoo
            found.append((name, m.group(2)))
    return found


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


def parse_sources(text: str, *, deb822: bool) -> list[tuple[str, tuple[str, ...], str | None]]:
    """(URI, suites, signed-by keyring file or None) of each ``deb`` entry of an apt sources file."""
    entries: list[tuple[str, tuple[str, ...], str | None]] = []
    if deb822:
        for stanza in parse_stanzas("\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))):
            if "deb" not in stanza.get("Types", "").split() or stanza.get("Enabled", "yes").lower() == "no":
                continue
            signed = stanza.get("Signed-By", "").strip()
            keyring = signed if signed.startswith("/") and "\n" not in signed else None
            suites = tuple(stanza.get("Suites", "").split())
            for uri in stanza.get("URIs", "").split():
                entries.append((uri, suites, keyring))
        return entries
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        options: dict[str, str] = {}
        m = re.match(r"deb\s+\[([^\]]*)\]\s+(.*)$", line)
        rest = line[4:].strip()
        if m:
            for opt in m.group(1).split():
                key, _, value = opt.partition("=")
                options[key.lower()] = value
            rest = m.group(2)
        words = rest.split()
        if len(words) >= 2:
            entries.append((words[0], (words[1],), options.get("signed-by")))
    return entries


def pick_debian_mirror(
    entries: Sequence[tuple[str, tuple[str, ...], str | None]],
) -> tuple[str, str | None] | None:
    """The (URI, keyring) of the first entry that is Debian's main archive (not security, not
    another distribution's archive)."""
    for uri, suites, keyring in entries:
        path = uri.rstrip("/")
        if "security" in path or any(s.endswith("-security") for s in suites):
            continue
        if path.endswith("/debian"):
            return path, keyring
    return None


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
            build = fetch(bn.name, cache_dir=root, log=log)
    with _resolved_lock:
        _resolved[key] = build
    return build


def forget_resolved() -> None:
    """Drop memoized resolutions (after the cache or the environment changed)."""
    with _resolved_lock:
        _resolved.clear()


# --------------------------------------------------------------------------------------------
# fetching from Debian's archive


def system_mirror(
    sources_dir: str = "/etc/apt/sources.list.d", sources_list: str = "/etc/apt/sources.list"
) -> tuple[str, str]:
    """(mirror URI, keyring) of the system's Debian archive: ``debian.sources`` first, then other
    ``*.sources``/``*.list`` files and ``sources.list``; deb.debian.org and Debian's keyring when
    the system names none (e.g. an Ubuntu host)."""
    files = [os.path.join(sources_dir, "debian.sources")]
    files += sorted(glob.glob(os.path.join(sources_dir, "*.sources")))
    files += [*sorted(glob.glob(os.path.join(sources_dir, "*.list"))), sources_list]
    for path in dict.fromkeys(files):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        picked = pick_debian_mirror(parse_sources(text, deb822=path.endswith(".sources")))
        if picked:
            uri, keyring = picked
            return uri, keyring or DEFAULT_KEYRING
    return DEFAULT_MIRROR, DEFAULT_KEYRING


_ROLLING_SUITES = frozenset({"sid", "unstable", "experimental"})


def apt_sources(mirror: str, suite: str, keyring: str, arch: str) -> str:
    """The private one-line sources file: the suite, and for a stable suite its -updates and
    -security suites too (a stable series such as 10.11 gets its security fixes there)."""
    opts = f"[arch={arch} signed-by={keyring}]"
    lines = [f"deb {opts} {mirror} {suite} main"]
    if suite not in _ROLLING_SUITES:
        security = mirror.rstrip("/").rsplit("/", 1)[0] + "/debian-security"
        lines += [f"deb {opts} {mirror} {suite}-updates main", f"deb {opts} {security} {suite}-security main"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _build_lock(path: str, name: str, log: Log, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not told:
                log(f"{name}: another process is fetching this build; waiting for it")
                told = True
            if time.monotonic() > deadline:
                raise BuildUnavailable(
                    f"server build {name}: another fetch has held {path} for {timeout:.0f}s; "
                    "wait for it or stop it, then retry"
                )
            time.sleep(0.5)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _apt_options(apt: str) -> list[str]:
    opts = {
        "Dir::Etc::sourcelist": os.path.join(apt, "sources.list"),
        "Dir::Etc::sourceparts": "-",
        "Dir::State::Lists": os.path.join(apt, "lists"),
        "Dir::Cache": os.path.join(apt, "cache"),
        "Dir::State::status": os.path.join(apt, "status"),
        "Debug::NoLocking": "1",
        # apt would hand downloads to the _apt user, who cannot enter a private 0700 staging dir
        "APT::Sandbox::User": "root",
        "APT::Install-Recommends": "false",
        "Acquire::Languages": "none",
        "Dir::Etc::preferences": os.path.join(apt, "preferences"),
        "Dir::Etc::preferencesparts": "-",
    }
    argv = ["-c", os.path.join(apt, "apt.conf")]
    for key, value in opts.items():
        argv += ["-o", f"{key}={value}"]
    return argv


# the system's apt.conf.d stays in force (proxies, valid-until policy); only its hooks, which
# would touch the system's own state after our private update, are cleared
_APT_CONF = """#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
#clear DPkg::Pre-Install-Pkgs;
"""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_bytes(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_partials(build_dir: str, log: Log) -> None:
    """Staging dirs of dead fetchers (only called under the build's lock: no live owner)."""
    for name in os.listdir(build_dir):
        if name.startswith(".partial-"):
            log(f"removing {os.path.join(build_dir, name)} left by an interrupted fetch")
            shutil.rmtree(os.path.join(build_dir, name), ignore_errors=True)


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    suite: str | None = None,
    keyring: str | None = None,
    refresh: bool = False,
    log: Log = _quiet,
    lock_timeout: float = 3600,
) -> ServerBuild:
    """Fetch build ``name`` from Debian's archive into the cache (once; see the module doc).

    A build already cached is returned as it is unless ``refresh``, which asks the archive for
    today's version and fetches it when it is new. Any failure raises ONE
    :class:`BuildUnavailable` naming the build and the fix, and leaves no version directory.
    """
    bn = parse_build_name(name)
    root = cache_root(cache_dir)
    build_dir = os.path.join(root, bn.name)
    try:
        os.makedirs(build_dir, mode=0o755, exist_ok=True)
        lock = _build_lock(os.path.join(build_dir, ".lock"), bn.name, log, lock_timeout)
        lock.__enter__()
    except OSError as exc:
        raise BuildUnavailable(
            f"server build {bn.name} cannot be fetched into {build_dir}: {exc}. Fix: make it writable or "
            f"choose another cache directory ({CACHE_ENV}=<dir>)"
        ) from exc
    try:
        return _fetch_locked(bn, root, build_dir, mirror, suite, keyring, refresh, log)
    finally:
        lock.__exit__(None, None, None)


def _fetch_locked(
    bn: BuildName,
    root: str,
    build_dir: str,
    mirror: str | None,
    suite: str | None,
    keyring: str | None,
    refresh: bool,
    log: Log,
) -> ServerBuild:
    _remove_partials(build_dir, log)
    if not refresh:
        cached = _from_cache(bn, root)
        if cached is not None:
            return cached
    sys_mirror, sys_keyring = system_mirror()
    mirror = (mirror or os.environ.get(MIRROR_ENV) or sys_mirror).rstrip("/")
    keyring = keyring or sys_keyring
    suite = suite or bn.suite
    staging = ""
    try:
        staging = tempfile.mkdtemp(prefix=f".partial-{os.getpid()}-", dir=build_dir)
        tree, meta = _stage(bn, staging, mirror, suite, keyring, log)
        final = os.path.join(build_dir, meta["package_version"].split(":", 1)[-1])
        if os.path.isdir(final):
            log(f"{bn.name}: {meta['package_version']} is already cached at {final}")
        else:
            os.rename(tree, final)  # the one step that makes the build visible, whole
            _fsync_dir(build_dir)
            log(f"{bn.name}: {meta['package_version']} cached at {final}")
    except BuildUnavailable as exc:
        reason = str(exc).removeprefix(f"server build {bn.name}: ").rstrip(".")
        fix = _fetch_fix(bn, mirror, suite, series_missing=isinstance(exc, SeriesNotInArchive))
        raise BuildUnavailable(f"server build {bn.name} cannot be fetched: {reason}. {fix}") from exc
    except OSError as exc:  # disk full, permissions of the cache
        raise BuildUnavailable(
            f"server build {bn.name} cannot be fetched into {build_dir}: {exc}. Fix: free space "
            f"there or choose another cache directory ({CACHE_ENV}=<dir>)"
        ) from exc
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    forget_resolved()
    build = _from_cache(bn, root)
    assert build is not None
    return build


def _fetch_fix(bn: BuildName, mirror: str, suite: str, *, series_missing: bool = False) -> str:
    if series_missing:
        fix = (
            f"Fix: use a series the archive carries (known builds: {', '.join(KNOWN_BUILDS)}), another "
            f"suite (python -m mysqlops builds fetch {bn.name} --suite <suite>), or point {bn.env_var} at "
            f"installed {bn.flavor.value} {bn.series} binaries"
        )
    else:
        fix = (
            f"Fix: check the network and the mirror {mirror} (suite {suite}; another mirror with "
            f"{MIRROR_ENV}=<url>), or point {bn.env_var} at installed {bn.flavor.value} {bn.series} binaries"
        )
    if bn.name == "mariadb-10.11":
        fix += ", or install the system's: apt-get install mariadb-server mariadb-client mariadb-backup"
    return fix


def _run_apt(argv: Sequence[str], what: str, timeout: float, cwd: str | None = None) -> str:
    return _run_apt_result(argv, what, timeout, cwd).stdout.decode("utf-8", "replace")


def _run_apt_result(argv: Sequence[str], what: str, timeout: float, cwd: str | None = None) -> process.Result:
    try:
        return process.run(argv, timeout=timeout, cwd=cwd, env={"LC_ALL": "C"}, name=what)
    except MysqlopsError as exc:
        raise BuildUnavailable(f"{what} failed: {exc}") from exc


def _stage(
    bn: BuildName, staging: str, mirror: str, suite: str, keyring: str, log: Log
) -> tuple[str, dict[str, Any]]:
    """Everything up to a complete tree in ``staging/tree`` with its build.json; returns both."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if not shutil.which(tool):
            raise BuildUnavailable(
                f"{tool} is missing (fetching needs a Debian/Ubuntu host with apt and dpkg)"
            )
    if not os.path.isfile(keyring):
        raise BuildUnavailable(
            f"the Debian archive keyring {keyring} is missing (apt-get install debian-archive-keyring)"
        )
    _triplet, _ld, arch = machine_arch()
    started = time.monotonic()
    apt = os.path.join(staging, "apt")
    for sub in ("lists/partial", "cache/archives/partial", "apt.conf.d"):
        os.makedirs(os.path.join(apt, sub))
    with open(os.path.join(apt, "sources.list"), "w", encoding="utf-8") as fh:
        fh.write(apt_sources(mirror, suite, keyring, arch))
    for empty in ("status", "preferences"):
        open(os.path.join(apt, empty), "w").close()
    with open(os.path.join(apt, "apt.conf"), "w", encoding="utf-8") as fh:
        fh.write(_APT_CONF)
    opts = _apt_options(apt)
    log(f"{bn.name}: reading the index of {mirror} {suite}")
    try:
        updated = process.run(
            ["apt-get", *opts, "-q", "update"],
            timeout=600,
            env={"LC_ALL": "C"},
            ok_returncodes=(0, 100),  # what it fetched decides, below
            name=f"apt-get update of {mirror} {suite}",
        )
    except MysqlopsError as exc:
        raise BuildUnavailable(f"apt-get update of {mirror} {suite} failed: {exc}") from exc
    said = " | ".join(ln.strip() for ln in updated.stderr.splitlines() if ln.strip())[-600:]
    lists = os.listdir(os.path.join(apt, "lists"))
    if not any(f"_dists_{suite}_main_binary-" in f and "Packages" in f for f in lists):
        raise BuildUnavailable(
            f"server build {bn.name}: no package index could be fetched from {mirror} {suite}"
            + (f" (apt: {said})" if said else "")
        )
    for extra in (f"{suite}-updates", f"{suite}-security"):
        if extra in apt_sources(mirror, suite, keyring, arch) and not any(
            f"_dists_{extra}_" in f for f in lists
        ):
            log(
                f"{bn.name}: warning: no index of {extra} could be fetched; its updates are not included ({said})"
            )
    packages = PACKAGES[bn.flavor]
    shown = _run_apt(["apt-cache", *opts, "show", packages[0]], f"apt-cache show {packages[0]}", 120)
    stanza = pick_version(parse_stanzas(shown), packages[0], bn)
    version = stanza["Version"]
    log(f"{bn.name}: the archive holds {packages[0]} {version}")
    sim = _run_apt(
        [
            "apt-get",
            *opts,
            "-s",
            "-q",
            "install",
            "--no-install-recommends",
            f"{packages[0]}={version}",
            *packages[1:],
        ],
        "apt-get -s install (dependency closure)",
        300,
    )
    closure = parse_simulated_install(sim)
    names = {n for n, _v in closure}
    missing = [p for p in packages if p not in names]
    if missing:
        raise BuildUnavailable(f"server build {bn.name}: the dependency closure lacks {', '.join(missing)}")
    pinned = [f"{n}={v}" for n, v in closure]
    index = {
        (s.get("Package"), s.get("Version")): s
        for s in parse_stanzas(
            _run_apt(["apt-cache", *opts, "show", *pinned], "apt-cache show (closure)", 300)
        )
    }
    debs = os.path.join(staging, "debs")
    os.makedirs(debs)
    log(f"{bn.name}: downloading {len(pinned)} packages")
    _run_apt(["apt-get", *opts, "-q", "download", *pinned], "apt-get download", 1800, cwd=debs)
    t_download = time.monotonic()
    tree = os.path.join(staging, "tree")
    target = os.path.join(tree, "root")
    os.makedirs(target)
    recorded = []
    for pkg, ver in closure:
        entry = index.get((pkg, ver))
        files = glob.glob(os.path.join(debs, f"{glob.escape(pkg)}_*.deb"))
        if entry is None or len(files) != 1:
            raise BuildUnavailable(
                f"server build {bn.name}: package {pkg} {ver} was not downloaded as expected"
            )
        digest, size = _sha256(files[0]), os.path.getsize(files[0])
        if digest != entry.get("SHA256", "").lower() or str(size) != entry.get("Size"):
            raise BuildUnavailable(
                f"server build {bn.name}: {os.path.basename(files[0])} has sha256 {digest} ({size} bytes) but "
                f"the archive's index says {entry.get('SHA256')} ({entry.get('Size')} bytes)"
            )
        recorded.append(
            {
                "package": pkg,
                "version": ver,
                "filename": entry.get("Filename", ""),
                "size": size,
                "sha256": digest,
            }
        )
        _run_apt(["dpkg-deb", "-x", files[0], target], f"dpkg-deb -x {os.path.basename(files[0])}", 300)
    shutil.rmtree(debs, ignore_errors=True)
    # MariaDB's server package ships no plugins: give it an empty dir of its own rather than
    # letting it read the system's (another version's) /usr/lib/mysql/plugin
    os.makedirs(os.path.join(target, "usr", "lib", "mysql", "plugin"), exist_ok=True)
    up = upstream_version(version)
    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "build": bn.name,
        "flavor": bn.flavor.value,
        "series": bn.series,
        "version": ".".join(str(x) for x in up) if up else "",
        "package": packages[0],
        "package_version": version,
        "suite": suite,
        "mirror": mirror,
        "architecture": arch,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "packages": recorded,
        "download_bytes": sum(int(str(p["size"])) for p in recorded),
        "unpacked_bytes": _tree_bytes(target),
        "download_seconds": round(t_download - started, 1),
    }
    # a test run through its own loader: a tree that cannot run never enters the cache
    built = _from_tree(bn, target, "cache", meta)
    if built.version_text != meta["version"]:
        raise BuildUnavailable(
            f"server build {bn.name}: the unpacked server says {built.version}, the package is {version}"
        )
    meta["fetch_seconds"] = round(time.monotonic() - started, 1)
    path = os.path.join(tree, METADATA)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(tree)
    return tree, meta
