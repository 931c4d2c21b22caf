"""kill -9 leaves nothing: no password on disk, no half-published backup, and the next run (or
the reaper) removes staging, scratch servers and their datadirs.

Each kill test runs the real core entry point in a child Python process against real sandbox
servers, the real clients and a moto S3 endpoint, waits (bounded, by polling for files and
processes, never a fixed sleep) until the child is at the stage under test, and kills it
with SIGKILL. The child only slows its own data path down (a sleep per chunk) or holds
just before a manifest is written, so that the stage lasts long enough to be hit.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import catalog
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, reaper, sandbox
from mysqlops.adapters.storage import Store
from mysqlops.model import Location
from mysqlops.retention import deletes
from mysqlops.sampledata import create_bulk_table
from mysqlops.streams.compression import codec
from mysqlops.tools.client import client_option_file
from tests.jobs import job

pytestmark = pytest.mark.integration
ROOT = pathlib.Path(__file__).resolve().parents[2]
STAGE_TIMEOUT = 120.0


def _wait_for(what: str, condition: Callable[[], Any], child: subprocess.Popen[bytes] | None = None) -> Any:
    """Poll ``condition`` until it returns something truthy (bounded; fails early if the child died)."""
    deadline = time.monotonic() + STAGE_TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if child is not None and child.poll() is not None:
            out = child.stdout.read().decode(errors="replace") if child.stdout else ""
            pytest.fail(f"the child exited with {child.returncode} before {what}:\n{out[-3000:]}")
        time.sleep(0.02)
    pytest.fail(f"timed out after {STAGE_TIMEOUT:.0f}s waiting for {what}")


def _descendants(pid: int) -> list[reaper.Proc]:
    procs = list(reaper.processes())
    found, frontier = [], {pid}
    while frontier:
        kids = [p for p in procs if p.ppid in frontier]
        found += kids
        frontier = {p.pid for p in kids}
    return found


def _files_with(root: pathlib.Path, needle: bytes) -> list[str]:
    """Every file under ``root`` that contains ``needle`` (read in chunks: datadirs are big)."""
    hits = []
    for top, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(top, name)
            tail = b""
            try:
                with open(path, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(4 << 20), b""):
                        if needle in tail + chunk:
                            hits.append(path)
                            break
                        tail = chunk[-len(needle) :]
            except OSError:
                pass
    return hits


def _cred_dirs(*roots: pathlib.Path | str) -> list[str]:
    out = []
    for root in roots:
        for top, dirs, _files in os.walk(root):
            out += [os.path.join(top, d) for d in dirs if d.startswith("mysqlops-cred-")]
    return out


@pytest.fixture
def child_env(tmp_path: pathlib.Path) -> dict[str, str]:
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(TMPDIR=str(tmp), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def spawn(
    tmp_path: pathlib.Path, child_env: dict[str, str]
) -> Iterator[Callable[[str, dict[str, Any]], Any]]:
    started: list[subprocess.Popen[bytes]] = []

    def run(script: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
        path = tmp_path / f"child{len(started)}.py"
        path.write_text(script)
        proc = subprocess.Popen(
            [sys.executable, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
        started.append(proc)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config).encode())  # secrets by pipe, never argv
        proc.stdin.close()
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _kill9(child: subprocess.Popen[bytes]) -> list[reaper.Proc]:
    """SIGKILL the child alone (not its process group: its own children are left to fend for
    themselves, exactly as when an operator or the OOM killer kills it). Returns them."""
    children = _descendants(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    return children


def _gone(procs: list[reaper.Proc]) -> bool:
    return all(reaper.process_start(p.pid) != p.start for p in procs)


@pytest.fixture(scope="module")
def bulk_source(sandbox_root: str) -> Iterator[sandbox.SandboxServer]:
    """A server with ~12 MB of rows: a dump that lasts while its consumer is slowed down."""
    server = sandbox.start_server(sandbox_root, "ksrc", server_id=701)
    with db.session(server.spec()) as conn:
        create_bulk_table(conn, "shop", "orders", 40_000, payload_bytes=256)
    yield server
    sandbox.stop_server(server)


BACKUP_CHILD = """
import json, os, sys, time
from mysqlops import backup as core
from mysqlops.adapters import storage
from mysqlops.backup import BackupRequest, staging
from mysqlops.model import Location, ServerSpec
from mysqlops.runs import RunContext

cfg = json.loads(sys.stdin.read())
if cfg["phase"] == "upload":
    # slow the dump's consumer: mariadb-dump keeps running (its pipe is full) while every
    # location follows the staging file
    write = staging._Sink.write
    def slow_write(self, data):
        time.sleep(0.25)
        write(self, data)
    staging._Sink.write = slow_write
else:
    # hold just before the local manifest (the commit marker) is written: every data file
    # is published and verified there, the backup is not
    put_bytes = storage.Store.put_bytes
    def held_put_bytes(self, data, key, **kw):
        if key.endswith("manifest.json") and self.location.name == "local":
            open(cfg["signal"], "w").close()
            time.sleep(600)
        return put_bytes(self, data, key, **kw)
    storage.Store.put_bytes = held_put_bytes
spec = ServerSpec(**cfg["spec"])
locations = [Location(**loc) for loc in cfg["locations"]]
core.run_backup(BackupRequest(spec, tuple(locations)), RunContext(staging_dir=cfg["staging"]))
print("the backup finished: the test missed its stage", flush=True)
"""


def _location_doc(loc: Location) -> dict[str, Any]:
    return {
        "name": loc.name,
        "url": loc.url,
        "storage_options": dict(loc.storage_options),
        "offsite": loc.offsite,
    }


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["upload", "publish"])
def test_kill9_backup_leaves_no_secret_or_staging(
    phase: str,
    bulk_source: sandbox.SandboxServer,
    local_location: Location,
    s3_location: Location,
    tmp_path: pathlib.Path,
    child_env: dict[str, str],
    spawn: Callable[[str, dict[str, Any]], subprocess.Popen[bytes]],
) -> None:
    child_tmp = pathlib.Path(child_env["TMPDIR"])
    staging_root = child_tmp / "staging"
    local_root = pathlib.Path(local_location.url.removeprefix("file://"))
    signal_file = tmp_path / "at-publish"
    spec = bulk_source.spec()
    password = spec.password
    assert password
    child = spawn(
        BACKUP_CHILD,
        {
            "phase": phase,
            "signal": str(signal_file),
            "staging": str(staging_root),
            "spec": {
                "name": spec.name,
                "host": spec.host,
                "port": spec.port,
                "user": spec.user,
                "password": password,
            },
            "locations": [_location_doc(local_location), _location_doc(s3_location)],
        },
    )

    def staged() -> list[pathlib.Path]:
        return [p for p in staging_root.glob("mysqlops-staging-*/*.zst") if p.stat().st_size > 0]

    if phase == "upload":

        def at_stage() -> bool:
            uploading = list(local_root.rglob(".tmp-*"))
            dumping = [p for p in _descendants(child.pid) if os.path.basename(p.argv[0]) == "mariadb-dump"]
            return bool(staged() and uploading and dumping)

        _wait_for("the dump running while its staging file is uploaded", at_stage, child)
    else:
        _wait_for("the data files published, before the manifest", signal_file.exists, child)
    assert staged()
    children = _kill9(child)

    # its clients die with it (their pipes are gone): nothing keeps running
    _wait_for("the killed backup's clients to exit", lambda: _gone(children))
    # no password anywhere on disk: not in TMPDIR, the staging, the location; no option file
    assert _files_with(child_tmp, password.encode()) == []
    assert _files_with(local_root.parent, password.encode()) == []
    assert _cred_dirs(child_tmp) == []
    # no half-published backup at either location: no manifest, nothing the catalog lists
    scans = catalog.scan([local_location, s3_location])
    assert [m.backup_id for s in scans for m in s.backups] == []
    if phase == "publish":
        local_scan = scans[0]
        assert local_scan.orphans  # the published data: garbage without its manifest
        cleaned = deletes.cleanup(Store(local_location), local_scan, grace=timedelta(0))
        assert sorted(cleaned.cleaned) == sorted(local_scan.orphans)
        assert catalog.scan([local_location])[0].orphans == []
    # the killed run's staging (the dump, unencrypted) is still there, owner-marked ...
    (left,) = staging_root.glob("mysqlops-staging-*")
    marked = reaper.read_marker(str(left))
    assert marked is not None and marked.owner.pid == child.pid
    if phase == "upload":
        # ... and the next backup removes it before anything else
        logged: list[str] = []
        result = bk.run_backup(
            *job(spec, [local_location], codec("zstd"), staging_dir=str(staging_root), log=logged.append)
        )
        assert result.ok
        assert not left.exists() and list(staging_root.iterdir()) == []
        assert any(str(left) in line and "leftover of a killed run" in line for line in logged)
    else:
        # ... and the reaper (check flow, or any next run) removes it
        report = reaper.reap([str(staging_root)], defaults=False, prefect=False)
        assert [r.path for r in report.removed] == [str(left)]
        assert not left.exists()


RESTORE_TEST_CHILD = """
import json, sys, time
from mysqlops import catalog
from mysqlops import restore as core
from mysqlops.adapters import sandbox
from mysqlops.model import Location
from mysqlops.restore import load
from mysqlops.runs import RunContext

cfg = json.loads(sys.stdin.read())
# slow the load into the scratch server down (the one loading engine's decompression): the
# load keeps going for a while
codec_from_label = load.codec_from_label
def slow_codec(label):
    c = codec_from_label(label)
    class Slow:
        def decompressor(self):
            d = c.decompressor()
            class D:
                def decompress(self, chunk):
                    time.sleep(0.5)
                    return d.decompress(chunk)
                def finish(self):
                    return d.finish()
            return D()
    return Slow()
load.codec_from_label = slow_codec
# tell the test (through our stdout pipe, never a file) the scratch server's root password
start_server = sandbox.start_server
def reporting_start_server(*args, **kw):
    server = start_server(*args, **kw)
    print(json.dumps({"password": server.root_password}), flush=True)
    return server
sandbox.start_server = reporting_start_server
location = Location(**cfg["location"])
((loc, manifest),) = catalog.find_backup(catalog.scan([location]), None, cfg["backup_id"])
core.restore_test_copy(loc, manifest, RunContext(staging_dir=cfg["staging"]), write_certificate=False)
print("the restore test finished: the test missed its stage", flush=True)
"""


@pytest.mark.slow
def test_kill9_restore_test_leaves_no_server(
    bulk_source: sandbox.SandboxServer,
    local_location: Location,
    child_env: dict[str, str],
    spawn: Callable[[str, dict[str, Any]], subprocess.Popen[bytes]],
) -> None:
    result = bk.run_backup(*job(bulk_source.spec(), [local_location], codec("zstd", level=1)))
    assert result.ok
    child_tmp = pathlib.Path(child_env["TMPDIR"])
    staging_root = child_tmp / "staging"
    child = spawn(
        RESTORE_TEST_CHILD,
        {
            "location": _location_doc(local_location),
            "backup_id": result.manifest.backup_id,
            "staging": str(staging_root),
        },
    )

    def scratch_dir() -> pathlib.Path | None:
        for path in pathlib.Path("/tmp").glob("mysqlops-rt-*"):
            marked = reaper.read_marker(str(path))
            if marked is not None and marked.owner.pid == child.pid:
                return path
        return None

    def at_stage() -> pathlib.Path | None:
        scratch = scratch_dir()
        # the parallel load spools each table's rows next to the fetched copy while it loads them
        loading = list(staging_root.glob("mysqlops-restore-*/unit-*.sql"))
        fetched = list(staging_root.glob("mysqlops-restore-*/*.zst"))
        pid_files = list(scratch.glob("*/mysqld.pid")) if scratch else []
        return scratch if pid_files and fetched and loading else None

    assert child.stdout is not None
    scratch_password = json.loads(child.stdout.readline())["password"].encode()
    scratch = _wait_for("the scratch server running and the copy loading into it", at_stage, child)
    (server_dir,) = [p for p in scratch.iterdir() if p.is_dir()]
    server_pid = int((server_dir / "mysqld.pid").read_text())
    _kill9(child)

    # the scratch server outlives its killed owner: the hazard the reaper exists for
    (orphan,) = reaper.servers_on(str(scratch))
    assert orphan.pid == server_pid
    datadir_bytes = reaper._disk_bytes(str(server_dir / "data"))
    assert datadir_bytes > 100e6  # a tuned scratch server: its redo log alone is 512 MB
    # no credentials on disk: no option file, no init file, the password in no file at all
    assert not (server_dir / "client.cnf").exists() and not (server_dir / "init.sql").exists()
    assert _files_with(scratch, scratch_password) == [] and _files_with(child_tmp, scratch_password) == []
    assert _cred_dirs(child_tmp) == []
    (staging,) = staging_root.glob("mysqlops-restore-*")

    report = reaper.reap([str(staging_root)])  # what the next run does first
    removed = {r.path: r for r in report.removed}
    assert removed[str(scratch)].servers_killed == (server_pid,)
    assert removed[str(scratch)].bytes >= datadir_bytes
    assert str(staging) in removed
    assert not scratch.exists() and not staging.exists()
    assert reaper.process_start(server_pid) is None  # gone (at most a zombie its new parent reaps)


def test_scratch_server_keeps_no_password_on_disk(sandbox_root: str) -> None:
    server = sandbox.start_server(sandbox_root, "scratchpw", server_id=711, scratch=True)
    try:
        directory = pathlib.Path(server.directory)
        assert reaper.read_marker(server.directory) is not None  # the reaper can find it
        assert not (directory / "client.cnf").exists() and not (directory / "init.sql").exists()
        assert _files_with(directory, server.root_password.encode()) == []
        # the init SQL came through a pipe the server drained: nothing readable is left in it
        fds = os.listdir(f"/proc/{server.pid}/fd")
        targets = [os.readlink(f"/proc/{server.pid}/fd/{fd}") for fd in fds]
        assert not any(t.startswith("/memfd:") for t in targets)
        with db.session(server.spec()) as conn, conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()
    finally:
        sandbox.stop_server(server)


def test_client_tools_log_in_with_the_in_memory_option_file(
    bulk_source: sandbox.SandboxServer, tmp_path: pathlib.Path
) -> None:
    """Every client mysqlops runs reads its credentials from /dev/fd/N (mariabackup reads the
    option file once per option group: a pipe would leave it without a password)."""
    spec = bulk_source.spec()
    creds = client_option_file(spec)
    out = process.run(["mariadb", "--batch", "-e", "SELECT CURRENT_USER()"], credentials=creds)
    assert b"root@" in out.stdout
    assert b"mysqld is alive" in process.run(["mariadb-admin", "ping"], credentials=creds).stdout
    dump = process.run(["mariadb-dump", "--single-transaction", "--no-data", "shop"], credentials=creds)
    assert b"CREATE TABLE `orders`" in dump.stdout
    with db.session(spec) as conn:
        binlog = db.query(conn, "SHOW MASTER STATUS")[0]["File"]
    process.run(
        ["mariadb-binlog", "--read-from-remote-server", "--raw", f"--result-file={tmp_path}/", binlog],
        credentials=creds,
    )
    assert (tmp_path / binlog).stat().st_size > 0
    target = tmp_path / "mb"
    process.run(
        ["mariabackup", "--backup", f"--target-dir={target}", f"--datadir={bulk_source.datadir}"],
        credentials=creds,
        timeout=300,
    )
    assert (target / "xtrabackup_checkpoints").exists()
