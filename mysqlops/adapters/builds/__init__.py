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
4. otherwise it is fetched ONCE from Debian's archive (:func:`mysqlops.adapters.builds.debian.fetch`).

Programs of a fetched build need a newer C library than the host's, so they run through the
loader unpacked from the same suite: ``ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
--library-path ROOT/usr/lib/x86_64-linux-gnu ROOT/usr/sbin/mysqld ...``.
:meth:`ServerBuild.client_argv` gives that prefix for every tool; the process adapter knows to
put ``--defaults-extra-file`` after the program, not after the loader.

Only child processes go through :mod:`mysqlops.adapters.process`; reading the cache is plain file I/O.
The package: ``names`` (what a build is), ``tree`` (its programs in a directory tree and the
cache), ``debian`` (fetching from Debian's archive); resolution, here, puts them in order.
"""

from __future__ import annotations

import os

from mysqlops.adapters.builds.debian import fetch
from mysqlops.adapters.builds.names import (
    CACHE_ENV,
    DEFAULT_BUILD,
    KNOWN_BUILDS,
    METADATA_FORMAT,
    BuildName,
    Log,
    ServerBuild,
    _quiet,
    build_name_for,
    loader_argv,
    parse_build_name,
    parse_version_output,
    upstream_version,
)
from mysqlops.adapters.builds.tree import (
    _from_cache,
    _from_tree,
    _resolved,
    _resolved_lock,
    _system_build,
    cache_root,
    cached_builds,
    forget_resolved,
)
from mysqlops.errors import BuildUnavailable

__all__ = [
    "CACHE_ENV",
    "DEFAULT_BUILD",
    "KNOWN_BUILDS",
    "METADATA_FORMAT",
    "BuildName",
    "ServerBuild",
    "build_name_for",
    "cache_root",
    "cached_builds",
    "fetch",
    "forget_resolved",
    "loader_argv",
    "parse_build_name",
    "parse_version_output",
    "resolve",
    "upstream_version",
]


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
