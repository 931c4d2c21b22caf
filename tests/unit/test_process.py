"""The process adapter: argv only, process groups, timeouts, pipelines, option files."""

from __future__ import annotations

import os
import pathlib
import stat
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
    alive = os.path.exists(f"/proc/{grandchild}") and open(f"/proc/{grandchild}/stat").read().split()[2] != "Z"
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


def test_secret_option_file_is_private_first_and_removed(tmp_path: pathlib.Path) -> None:
    secret = "s3cr3t-canary-value"
    script = _script(tmp_path, 'f="${1#--defaults-extra-file=}"; stat -c "%a" "$f"; stat -c "%a" "$(dirname "$f")"; cat "$f"')
    r = process.run([script, "--other"], credentials=f"[client]\npassword={secret}\n")
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "600" and lines[1] == "700"
    assert r.argv[2] == "--other"
    assert secret in lines[-1]
    path = r.argv[1].split("=", 1)[1]
    assert r.argv[1].startswith("--defaults-extra-file=")
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_secret_never_in_cmdline_or_environ_of_child(tmp_path: pathlib.Path) -> None:
    secret = "zz-canary-password-42"
    script = _script(tmp_path, "sleep 5")
    os.environ["MYSQL_PWD"] = secret  # even when the parent has it, the child must not
    try:
        with process.Pipeline([[script]], credentials=f"[client]\npassword={secret}\n",
                              stdout=process.DEVNULL) as p:
            pid = p.pids[0]
            # between fork and exec /proc shows the parent (with its MYSQL_PWD): wait for the exec
            deadline = time.monotonic() + 10
            while script.encode() not in open(f"/proc/{pid}/cmdline", "rb").read() and time.monotonic() < deadline:
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


def test_option_file_mode_constants() -> None:
    with process.secret_option_file("[client]\n") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert not os.path.exists(path)
