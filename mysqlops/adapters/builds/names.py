"""What a server build is: its name (``mariadb-10.11``), the programs it offers by role, and
the :class:`ServerBuild` that runs them (through the build's own loader when it has one)."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mysqlops import jsondoc
from mysqlops.errors import BuildUnavailable, ConfigError
from mysqlops.jsondoc import json_as
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


# --------------------------------------------------------------------------------------------
# the cache


# --------------------------------------------------------------------------- build.json
@dataclass(frozen=True)
class BuildRecord:
    """``build.json`` of a cached build: what was fetched, from where, how big and how long it
    took. Written last (a tree without it is not a complete build); fields declared once
    (:mod:`mysqlops.jsondoc`); files of older versions (no schema key) are read the same way."""

    format: int = field(metadata=json_as(jsondoc.INT))
    package_version: str = field(metadata=json_as(jsondoc.TEXT))
    build: str = field(default="", metadata=json_as(jsondoc.TEXT))
    flavor: str = field(default="", metadata=json_as(jsondoc.TEXT))
    series: str = field(default="", metadata=json_as(jsondoc.TEXT))
    version: str = field(default="", metadata=json_as(jsondoc.TEXT))
    package: str = field(default="", metadata=json_as(jsondoc.TEXT))
    suite: str = field(default="", metadata=json_as(jsondoc.TEXT))
    mirror: str = field(default="", metadata=json_as(jsondoc.TEXT))
    architecture: str = field(default="", metadata=json_as(jsondoc.TEXT))
    fetched_at: str = field(default="", metadata=json_as(jsondoc.TEXT))
    packages: tuple[Any, ...] = field(default=(), metadata=json_as(jsondoc.tuple_of(jsondoc.MAP)))
    download_bytes: int = field(default=0, metadata=json_as(jsondoc.INT))
    unpacked_bytes: int = field(default=0, metadata=json_as(jsondoc.INT))
    download_seconds: float = field(default=0.0, metadata=json_as(jsondoc.FLOAT))
    fetch_seconds: float = field(default=0.0, metadata=json_as(jsondoc.FLOAT))


BUILD_DOC = jsondoc.Document(BuildRecord, "mysqlops.build/1", "build.json", older=(None,))
