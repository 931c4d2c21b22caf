"""The reaper: leftovers of killed runs are found by their owner marker and removed; nothing
whose owner lives, nothing of another host, no symlink and no unrelated process is touched."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from mysqlops.adapters import reaper
from mysqlops.adapters.localfs import private_tempdir

SLEEPER = "import time; time.sleep(120)"


def _dead_owner() -> reaper.Owner:
    """The identity of a process that existed and is gone now."""
    proc = subprocess.Popen(["sleep", "60"])
    start = reaper.process_start(proc.pid)
    assert start is not None
    proc.kill()
    proc.wait()
    me = reaper.current_owner()
    return replace(me, pid=proc.pid, start=start)


def _marked(root: pathlib.Path, name: str, owner: reaper.Owner) -> pathlib.Path:
    path = root / name
    path.mkdir(mode=0o700)
    doc = {"pid": owner.pid, "start": owner.start, "boot_id": owner.boot_id, "host": owner.host}
    doc["pidns"] = owner.pidns
    (path / reaper.MARKER).write_text(json.dumps({**doc, "purpose": "test"}))
    (path / "dump.sql").write_bytes(b"INSERT INTO t VALUES ('row data');\n" * 100)
    return path


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_staging_of_a_killed_process_is_removed_by_the_next_run(tmp_path: pathlib.Path) -> None:
    code = (
        "import sys, time; from mysqlops.adapters.localfs import private_tempdir; "
        f"p = private_tempdir({str(tmp_path)!r}, 'mysqlops-staging-'); "
        "open(p + '/shop.sql.zst', 'wb').write(b'x' * 100000); print(p, flush=True); time.sleep(120)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    staging = child.stdout.readline().decode().strip()
    assert os.path.isdir(staging)
    alive = reaper.reap([str(tmp_path)], defaults=False, prefect=False)
    assert os.path.isdir(staging) and not alive.removed  # its owner runs: never touched
    child.kill()
    child.wait()
    report = reaper.reap([str(tmp_path)], defaults=False, prefect=False)
    assert [r.path for r in report.removed] == [staging]
    assert report.removed[0].owner_pid == child.pid and report.removed[0].bytes >= 100000
    assert not os.path.exists(staging)
    assert os.listdir(tmp_path) == []  # the claimed name is gone too


def test_owner_identity_survives_pid_reuse_reboot_other_hosts_and_containers(tmp_path: pathlib.Path) -> None:
    me = reaper.current_owner()
    assert me.start > 0 and me.pidns
    mine = _marked(tmp_path, "mysqlops-staging-mine", me)
    reused = _marked(tmp_path, "mysqlops-staging-reused", replace(me, start=me.start - 1))
    rebooted = _marked(tmp_path, "mysqlops-staging-boot", replace(me, boot_id="other-boot"))
    remote = _marked(tmp_path, "mysqlops-staging-remote", replace(me, pid=1, start=1, host="other.example"))
    container = _marked(
        tmp_path, "mysqlops-staging-container", replace(me, pid=1, start=1, pidns="4026539999")
    )
    unknown = _marked(tmp_path, "mysqlops-staging-unknown", replace(me, start=0))
    report = reaper.reap([str(tmp_path)], defaults=False, prefect=False)
    assert sorted(r.path for r in report.removed) == sorted([str(reused), str(rebooted)])
    assert mine.is_dir() and remote.is_dir() and container.is_dir() and unknown.is_dir()
    assert sorted(report.elsewhere) == sorted([str(remote), str(container), str(unknown)])
    assert reaper.Owner.parse(me.label()) == me


def test_unmarked_symlinked_and_legacy_directories(tmp_path: pathlib.Path) -> None:
    dead = _dead_owner()
    old = time.time() - 2 * 3600
    unmarked = tmp_path / "mysqlops-staging-old"
    unmarked.mkdir()
    (unmarked / "shop.sql.zst").write_bytes(b"x")
    legacy_cred = tmp_path / "mysqlops-cred-abc"
    legacy_cred.mkdir()
    (legacy_cred / "client.cnf").write_text("[client]\npassword=old-canary\n")
    young_cred = tmp_path / "mysqlops-cred-young"
    young_cred.mkdir()
    for path in (unmarked, legacy_cred):
        os.utime(path, (old, old))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = _marked(elsewhere, "mysqlops-staging-target", dead)
    (tmp_path / "mysqlops-staging-link").symlink_to(target)
    report = reaper.reap([str(tmp_path)], defaults=False, prefect=False)
    assert [r.path for r in report.removed] == [str(legacy_cred)]
    assert report.unowned == [str(unmarked)] and unmarked.is_dir()
    assert young_cred.is_dir()  # a client of an older version may still be about to read it
    assert target.is_dir() and (tmp_path / "mysqlops-staging-link").is_symlink()  # never followed


def test_only_servers_on_the_orphaned_directory_are_killed(
    tmp_path: pathlib.Path, children: list[subprocess.Popen[bytes]]
) -> None:
    staging = _marked(tmp_path, "mysqlops-rt-x", _dead_owner())
    other = tmp_path / "other"
    other.mkdir()

    def fake_server(datadir: pathlib.Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, "--no-defaults", f"--datadir={datadir}"], start_new_session=True
        )
        children.append(proc)
        return proc

    ours = fake_server(staging / "rt" / "data")
    bystander = fake_server(other / "data")
    deadline = time.monotonic() + 10
    while not reaper.servers_on(str(staging)) and time.monotonic() < deadline:
        time.sleep(0.02)  # until the child has exec'd
    report = reaper.reap([str(tmp_path)], defaults=False, prefect=False)
    assert report.removed and report.removed[0].servers_killed == (ours.pid,)
    assert ours.wait(timeout=10) == -signal.SIGKILL
    assert bystander.poll() is None
    assert not staging.exists() and other.is_dir()


def test_orphaned_ephemeral_prefect_server_is_stopped(children: list[subprocess.Popen[bytes]]) -> None:
    dead, me = _dead_owner(), reaper.current_owner()

    def fake_prefect(owner: reaper.Owner, ephemeral: bool = True) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != reaper.OWNER_ENV}
        env[reaper.OWNER_ENV] = owner.label()
        if ephemeral:
            env["PREFECT__SERVER_EPHEMERAL"] = "1"
        argv = [sys.executable, "-c", SLEEPER, "--factory", reaper.PREFECT_EPHEMERAL_APP]
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        children.append(proc)
        return proc

    orphan = fake_prefect(dead)
    served = fake_prefect(me)  # its owner (this process) lives
    real_server = fake_prefect(dead, ephemeral=False)  # `prefect server start`: never ours
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        p.pid == orphan.pid for p in reaper.orphaned_prefect_servers()
    ):
        time.sleep(0.02)
    report = reaper.reap([], defaults=False, prefect=True)
    assert orphan.pid in report.prefect_servers
    assert orphan.wait(timeout=10) != 0
    assert served.poll() is None and real_server.poll() is None
    assert served.pid not in report.prefect_servers and real_server.pid not in report.prefect_servers


def test_private_tempdir_is_marked_with_its_owner(tmp_path: pathlib.Path) -> None:
    path = private_tempdir(str(tmp_path / "staging"), "mysqlops-staging-")
    marked = reaper.read_marker(path)
    assert marked is not None and marked.owner == reaper.current_owner()
    assert reaper.owner_state(marked.owner) == "alive"
    assert oct(os.stat(os.path.join(path, reaper.MARKER)).st_mode & 0o777) == "0o600"
