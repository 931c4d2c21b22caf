"""Fetching a server build from Debian's archive into the cache (see :mod:`mysqlops.adapters.builds` for
what a build is and the order it is resolved in; this is step 4, when nothing else has it).

A private apt configuration names the system's Debian mirror with the build's suite (``sid``;
``bookworm`` for 10.11) and the system's archive keyring; ``apt-get update`` (apt checks the
Release signature); the server package's version for the series is read from the index (never
a hard-coded file name or patch version); the dependency closure comes from apt's own
resolver (``apt-get -s install`` against an empty status); ``apt-get download`` (apt checks
each SHA256 from the index; we check it again and record it); ``dpkg-deb -x`` into a staging
directory, a test run of the unpacked server, then one atomic rename into the cache.

Crash safety: nothing under ``<build>/`` is a version directory until it is complete (rename
of a staged tree holding its ``build.json``); ``.partial-*`` staging directories of a killed
fetcher are removed by the next fetcher of that build, which holds the build's lock file.
Every child process goes through :mod:`mysqlops.adapters.process`. One concept over ~500
lines: one fetch, from the apt configuration to the rename into the cache, under one lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import glob
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mysqlops.adapters import process
from mysqlops.adapters.builds.names import (
    BUILD_DOC,
    CACHE_ENV,
    KNOWN_BUILDS,
    METADATA,
    METADATA_FORMAT,
    BuildName,
    BuildRecord,
    Log,
    SeriesNotInArchive,
    ServerBuild,
    _quiet,
    machine_arch,
    parse_build_name,
    upstream_version,
)
from mysqlops.adapters.builds.tree import _from_cache, _from_tree, cache_root, forget_resolved
from mysqlops.adapters.localfs import tree_bytes
from mysqlops.errors import BuildUnavailable, MysqlopsError
from mysqlops.model import Flavor

MIRROR_ENV = "MYSQLOPS_SERVER_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Debian package names per flavor: the server package first (its version names the build's)
PACKAGES = {
    Flavor.MYSQL: ("mysql-server-core", "mysql-client-core"),
    Flavor.MARIADB: ("mariadb-server-core", "mariadb-client-core", "mariadb-client", "mariadb-backup"),
}


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
    record = BuildRecord(
        format=METADATA_FORMAT,
        package_version=version,
        build=bn.name,
        flavor=bn.flavor.value,
        series=bn.series,
        version=".".join(str(x) for x in up) if up else "",
        package=packages[0],
        suite=suite,
        mirror=mirror,
        architecture=arch,
        fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        packages=tuple(recorded),
        download_bytes=sum(int(str(p["size"])) for p in recorded),
        unpacked_bytes=tree_bytes(target),
        download_seconds=round(t_download - started, 1),
    )
    # a test run through its own loader: a tree that cannot run never enters the cache
    built = _from_tree(bn, target, "cache", BUILD_DOC.to_doc(record))
    if built.version_text != record.version:
        raise BuildUnavailable(
            f"server build {bn.name}: the unpacked server says {built.version}, the package is {version}"
        )
    record = dataclasses.replace(record, fetch_seconds=round(time.monotonic() - started, 1))
    meta = BUILD_DOC.to_doc(record)
    path = os.path.join(tree, METADATA)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(BUILD_DOC.dumps(record))
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(tree)
    return tree, meta
