"""The session-end leak check of tests/conftest.py fails a run that leaves a child running."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parents[1]

LEAKY = """
from mysqlops.adapters import process


def test_leaves_a_child(tmp_path):
    process.start_background(["sleep", "97"], log_path=str(tmp_path / "log"))
"""

CLEAN = """
from mysqlops.adapters import process


def test_stops_its_child(tmp_path):
    proc = process.start_background(["sleep", "97"], log_path=str(tmp_path / "log"))
    proc.kill()
    proc.wait()
    process.forget_group(proc.pid)
"""


def _inner_run(tmp_path: pathlib.Path, body: str) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir()
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sleepers() -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if open(f"/proc/{name}/cmdline", "rb").read() == b"sleep\x0097\x00":
                    out.append(int(name))
            except OSError:
                pass
    return out


def test_a_leaked_child_fails_the_run(tmp_path: pathlib.Path) -> None:
    leaky = _inner_run(tmp_path / "leaky", LEAKY)
    assert leaky.returncode == 1, leaky.stdout + leaky.stderr
    assert "1 passed" in leaky.stdout  # the test itself passed: the leak alone fails the run
    assert "this run FAILS" in leaky.stdout and "sleep 97" in leaky.stdout
    assert _sleepers() == []  # and the leak was killed
    clean = _inner_run(tmp_path / "clean", CLEAN)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "FAILS" not in clean.stdout
