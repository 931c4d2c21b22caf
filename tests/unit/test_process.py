"""The process adapter: argv only, process groups, timeouts, pipelines, option files."""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat
import tempfile
import time

import pytest

from mysqlops.adapters import process
from mysqlops.errors import ProcessError, ProcessTimeout


def test_run_captures_stdout_and_checks_exit_code() -> None:
    r = process.run(["sh", "-c", "echo out; echo err >&2"])
    assert r.stdout == b"out\n" and r.stderr == "err"
    with pytest.raises(ProcessError) as info:
        process.run(["sh", "-c", "echo boom >&2; exit 3"], name="failing")
    assert info.value.returncode == 3 and "boom" in str(info.value) and "code 3" in str(info.value)


def test_pipeline_fails_when_any_member_fails() -> None:
    with pytest.raises(ProcessError) as info:
        with process.Pipeline([["sh", "-c", "echo data; exit 7"], ["cat"]], stdout=process.DEVNULL) as p:
            p.wait()
    assert "code 7" in str(info.value)


def test_pipeline_streams_between_members() -> None:
    with process.Pipeline([["sh", "-c", "seq 1 100000"], ["wc", "-l"]], stdout=process.PIPE) as p:
        out = p.stdout_pipe.read()
        p.wait()
    assert out.strip() == b"100000"


def test_timeout_kills_the_whole_group(tmp_path: pathlib.Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(ProcessTimeout):
        # the child spawns a grandchild; both must die with the group
        process.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; sleep 30; wait"], timeout=0.5)
    assert time.monotonic() - started < 10
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    alive = (
        os.path.exists(f"/proc/{grandchild}") and open(f"/proc/{grandchild}/stat").read().split()[2] != "Z"
    )
    assert not alive


def test_exception_in_block_kills_children() -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError):
        with process.Pipeline([["sleep", "30"]], stdout=process.DEVNULL) as p:
            pids = p.pids
            raise RuntimeError("cancelled")
    time.sleep(0.1)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def _script(tmp_path: pathlib.Path, body: str) -> str:
    path = tmp_path / "client.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o700)
    return str(path)


def test_option_file_reaches_the_child_first_as_a_private_memfd(tmp_path: pathlib.Path) -> None:
    secret = "s3cr3t-canary-value"
    script = _script(
        tmp_path,
        'f="${1#--defaults-extra-file=}"; stat -L -c "%a" "$f"; readlink "$f"; cat "$f"; cat "$f"',
    )
    r = process.run([script, "--other"], credentials=f"[client]\npassword={secret}\n")
    lines = r.stdout.decode().splitlines()
    assert r.argv[1].startswith("--defaults-extra-file=/dev/fd/") and r.argv[2] == "--other"
    assert lines[0] == "600"  # a memfd is born 0777: clients ignore a world-writable option file
    assert lines[1].startswith("/memfd:")  # no name on any file system
    assert lines.count(f"password={secret}") == 2  # readable again (mariabackup reads it per group)


def test_secret_never_in_cmdline_or_environ_of_child(tmp_path: pathlib.Path) -> None:
    secret = "zz-canary-password-42"
    script = _script(tmp_path, "sleep 5")
    os.environ["MYSQL_PWD"] = secret  # even when the parent has it, the child must not
    try:
        with process.Pipeline(
            [[script]], credentials=f"[client]\npassword={secret}\n", stdout=process.DEVNULL
        ) as p:
            pid = p.pids[0]
            # between fork and exec /proc shows the parent (with its MYSQL_PWD): wait for the exec
            deadline = time.monotonic() + 10
            while (
                script.encode() not in open(f"/proc/{pid}/cmdline", "rb").read()
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
            environ = open(f"/proc/{pid}/environ", "rb").read()
            p.cancel()
            with pytest.raises(ProcessError):
                p.wait()
    finally:
        del os.environ["MYSQL_PWD"]
    assert secret.encode() not in cmdline
    assert secret.encode() not in environ
    assert b"--defaults-extra-file=" in cmdline


def test_password_options_in_argv_are_refused() -> None:
    with pytest.raises(ProcessError):
        process.run(["mariadb", "-psecret"], credentials="[client]\n")
    with pytest.raises(ProcessError):
        process.child_environment({"MYSQL_PWD": "x"})


def test_missing_program_names_the_package() -> None:
    with pytest.raises(process.EnvironmentProblem) as info:
        process.require_program("definitely-not-a-program", package_hint="mariadb-client")
    assert "apt-get install mariadb-client" in str(info.value)


def test_secret_memfd_is_private_and_sealed() -> None:
    fd = process.secret_memfd("[client]\npassword=x\n")
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        assert os.read(fd, 100) == b"[client]\npassword=x\n"
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"y", 0)  # sealed: nobody holding it can change what the client reads
        assert os.get_inheritable(fd) is False  # reaches only the child it is passed to
    finally:
        os.close(fd)


def _fd_targets(pid: int) -> list[str]:
    out = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return out


def test_credentials_never_touch_a_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``mysqlops-cred-*`` (or any other) path is created for credentials, and the in-memory
    option file is passed only to the member that needs it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before = {p for p in os.listdir("/tmp") if p.startswith("mysqlops-cred-")}
    script = _script(tmp_path, "sleep 30")
    with process.Pipeline(
        [[script], ["sleep", "30"]],
        credentials=["[client]\npassword=zz-canary\n", None],
        stdout=process.DEVNULL,
    ) as p:
        first, second = p.pids
        deadline = time.monotonic() + 10
        while (
            script.encode() not in open(f"/proc/{first}/cmdline", "rb").read() and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        first_fds, second_fds = _fd_targets(first), _fd_targets(second)
        during = list(tmp.iterdir())
        p.cancel()
        with pytest.raises(ProcessError):
            p.wait()
    assert during == [] and list(tmp.iterdir()) == []
    assert {p for p in os.listdir("/tmp") if p.startswith("mysqlops-cred-")} == before
    assert any(t.startswith("/memfd:mysqlops-client.cnf") for t in first_fds)
    assert not any(t.startswith("/memfd:") for t in second_fds)
