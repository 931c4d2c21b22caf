"""Server builds against the real Debian archive and the real cache: failures are one clear
error and leave nothing in the cache; a fetch killed with SIGKILL leaves nothing visible and is
cleaned up by the next one; concurrent fetchers download once; a user's directory is used."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mysqlops.adapters import builds
from mysqlops.adapters.builds import debian
from mysqlops.errors import BuildUnavailable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _refusing_mirror() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/debian"  # nothing listens there: connection refused


def _cache_entries(cache: Path, build: str) -> list[str]:
    return sorted(os.listdir(cache / build)) if (cache / build).exists() else []


def test_unfetchable_build_is_one_clear_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mirror = _refusing_mirror()
    # a staging dir a killed fetcher left behind: the next fetcher (holding the lock) removes it
    dead = cache / "mysql-9.7" / ".partial-999999-dead"
    (dead / "tree" / "root" / "usr").mkdir(parents=True)
    (dead / "tree" / "root" / "usr" / "half.so").write_bytes(b"\0" * 100)
    started = time.monotonic()
    with pytest.raises(BuildUnavailable) as info:
        debian.fetch("mysql-9.7", cache_dir=cache, mirror=mirror)
    text = str(info.value)
    assert time.monotonic() - started < 120
    assert text.count("server build mysql-9.7") == 1 and mirror in text
    assert "Fix:" in text and "MYSQLOPS_SERVER_BUILD_MYSQL_9_7" in text and "MYSQLOPS_SERVER_MIRROR" in text
    assert _cache_entries(cache, "mysql-9.7") == [".lock"]  # no version, no staging left


def test_an_unwritable_cache_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(BuildUnavailable) as info:
        debian.fetch("mysql-9.7", cache_dir=blocker / "cache", mirror=_refusing_mirror())
    assert "server build mysql-9.7 cannot be fetched into" in str(info.value)
    assert "MYSQLOPS_SERVER_CACHE" in str(info.value)


def test_a_series_the_archive_lacks_is_one_clear_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(BuildUnavailable) as info:
        builds.resolve("mysql-5.1", cache_dir=cache)
    text = str(info.value)
    # names the build, what the archive holds instead, and the fix
    assert "server build mysql-5.1" in text and "not series 5.1" in text and "mysql-server-core 9." in text
    assert "Fix:" in text and "MYSQLOPS_SERVER_BUILD_MYSQL_5_1" in text
    assert _cache_entries(cache, "mysql-5.1") == [".lock"]


def test_user_directory_is_used_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fetched = builds.resolve("mysql-9.7")  # the cached build (make builds)
    assert fetched.source == "cache"
    builds.forget_resolved()
    monkeypatch.setenv("MYSQLOPS_SERVER_BUILD_MYSQL_9_7", fetched.root)
    mine = builds.resolve("mysql-9.7")
    assert mine.source == "directory" and mine.root == fetched.root and mine.loader == fetched.loader
    assert mine.version == fetched.version and mine.dump == fetched.dump
    # a directory holding another build is refused, naming both
    builds.forget_resolved()
    monkeypatch.setenv("MYSQLOPS_SERVER_BUILD_MARIADB_11_8", fetched.root)
    with pytest.raises(BuildUnavailable) as info:
        builds.resolve("mariadb-11.8")
    assert "mariadb-11.8" in str(info.value) and "MySQL 9.7" in str(info.value)
    monkeypatch.setenv("MYSQLOPS_SERVER_BUILD_MARIADB_11_8", str(tmp_path / "nowhere"))
    builds.forget_resolved()
    with pytest.raises(BuildUnavailable, match="not a directory"):
        builds.resolve("mariadb-11.8")
    builds.forget_resolved()


def _fetcher(cache: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQLOPS_SERVER_BUILD_")}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mysqlops", "builds", "fetch", "mariadb-11.8", "--cache", str(cache)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.slow
def test_fetch_killed_midway_leaves_nothing_then_concurrent_fetchers_download_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _fetcher(cache, tmp_path / "killed.log")
    try:
        # wait until it is unpacking (the staging tree has files), then SIGKILL its whole group
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and first.poll() is None:
            if list((cache / "mariadb-11.8").glob(".partial-*/tree/root/usr")):
                break
            time.sleep(0.05)
        assert first.poll() is None, (tmp_path / "killed.log").read_text()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    left = _cache_entries(cache, "mariadb-11.8")
    assert [e for e in left if not e.startswith(".")] == []  # no version directory is visible
    assert any(e.startswith(".partial-") for e in left)
    assert builds.cached_builds(cache) == []
    # two fetchers at once: one downloads, the other waits on the lock and finds it cached
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    fetchers = [_fetcher(cache, logs[0]), _fetcher(cache, logs[1])]
    try:
        codes = [p.wait(900) for p in fetchers]
    finally:
        for p in fetchers:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    assert sum("downloading" in t for t in texts) == 1, texts
    assert sum("left by an interrupted fetch" in t for t in texts) == 1, texts
    left = _cache_entries(cache, "mariadb-11.8")
    assert [e for e in left if not e.startswith(".")] == [e for e in left if e[0].isdigit()]
    assert len([e for e in left if not e.startswith(".")]) == 1 and not any(
        e.startswith(".partial") for e in left
    )
    (row,) = builds.cached_builds(cache)
    assert (
        row["build"] == "mariadb-11.8"
        and row["packages"]
        and all(len(p["sha256"]) == 64 for p in row["packages"])
    )
    build = builds.resolve("mariadb-11.8", cache_dir=cache, fetch_missing=False)
    assert build.source == "cache" and build.version_text == row["version"] and build.loader
