"""Where a build's programs are: found in a directory tree (a prefix, a root with its own
loader, the system's /usr) and in the cache of fetched builds, each test-run for its version."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mysqlops.adapters import process
from mysqlops.adapters.builds.names import (
    _MESSAGE_DIRS,
    _PLUGIN_DIRS,
    _PROGRAM_DIRS,
    BUILD_DOC,
    CACHE_ENV,
    CLIENT_TOOLS,
    METADATA,
    METADATA_FORMAT,
    PROGRAMS,
    BuildName,
    BuildRecord,
    ServerBuild,
    loader_argv,
    parse_version_output,
    upstream_version,
)
from mysqlops.errors import BuildUnavailable, ManifestError, MysqlopsError
from mysqlops.model import Flavor, ServerVersion


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
            with open(os.path.join(path, METADATA), "rb") as fh:
                record: BuildRecord = BUILD_DOC.loads(fh.read())
        except (OSError, ManifestError):
            continue  # not ours, or not a complete build
        up = upstream_version(record.package_version)
        if up is None or record.format != METADATA_FORMAT:
            continue
        found.append((up, path, BUILD_DOC.to_doc(record)))
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


# resolutions memoized by resolve() (mysqlops.adapters.builds); a fetch forgets them
_resolved: dict[tuple[str, ...], ServerBuild] = {}
_resolved_lock = threading.Lock()


def forget_resolved() -> None:
    """Drop memoized resolutions (after the cache or the environment changed)."""
    with _resolved_lock:
        _resolved.clear()
