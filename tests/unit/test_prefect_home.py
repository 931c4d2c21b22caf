"""The Prefect home holds the key to the encrypted blocks (prefect.db, created 0644 by SQLite):
setup and the demo make it private (0700, its files 0600)."""

from __future__ import annotations

import os
import pathlib
import sqlite3
import stat
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _env(home: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(ROOT), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def test_setup_makes_the_prefect_home_private(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "prefect"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    db = home / "prefect.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    (home / "profiles.toml").write_text('[profiles.default]\nPREFECT_API_KEY = "canary"\n')
    (home / "profiles.toml").chmod(0o644)
    (home / "storage").mkdir()
    # the real entry point: it secures the home first, then fails on the missing config file
    done = subprocess.run(
        [sys.executable, "-m", "deployments.setup", "--config", str(tmp_path / "missing.toml"), "--no-input"],
        env=_env(home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "not found" in done.stderr
    assert _mode(home) == 0o700
    assert _mode(db) == 0o600 and _mode(home / "profiles.toml") == 0o600
    assert "made private" in done.stdout and "prefect.db" in done.stdout


def test_setup_creates_a_missing_prefect_home_private(tmp_path: pathlib.Path) -> None:
    from deployments.setup import secure_prefect_home

    home = tmp_path / "a" / "prefect"
    lines: list[str] = []
    secure_prefect_home(str(home), out=lines.append)
    assert _mode(home) == 0o700 and _mode(home.parent) == 0o700
    secure_prefect_home(str(home), out=lines.append)
    assert len(lines) == 1  # a second run changes nothing and says nothing


def test_demo_prefect_home_is_private(tmp_path: pathlib.Path) -> None:
    # Prefect 3.9 creates a missing home 0700 itself (prefect/context.py), but never changes an
    # existing one: a home made by an older version or by hand, and the 0644 prefect.db in it
    home = tmp_path / "demo-prefect"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    db = home / "prefect.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-c", "import flows.demo; flows.demo.prepare_environment()"],
        env=_env(home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _mode(home) == 0o700 and _mode(db) == 0o600


_IMPORT_DEMO = """
import json, os, sys
before = dict(os.environ)
import flows.demo
after = dict(os.environ)
print(json.dumps({
    "changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
    "prefect_imported": "prefect" in sys.modules,
}))
"""


def test_demo_import_has_no_side_effects(tmp_path: pathlib.Path) -> None:
    """``import flows.demo`` sets no setting, touches no Prefect home and imports no Prefect:
    only ``main()`` does (the one variable that changes is the flows package's own process
    label, :data:`mysqlops.runs.OWNER_ENV`, which names this process and is no setting)."""
    import json

    from mysqlops.runs import OWNER_ENV

    home = tmp_path / "demo-prefect"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    env = _env(home)
    env.pop(OWNER_ENV, None)
    for name in ("AWS_DEFAULT_REGION", "MPLBACKEND", "PREFECT_LOGGING_LEVEL"):
        env.pop(name, None)
    demo_home = ROOT / ".demo"
    existed = demo_home.exists()
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_DEMO], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["changed"] == [OWNER_ENV]
    assert not seen["prefect_imported"]
    assert _mode(home) == 0o755 and list(home.iterdir()) == []
    assert demo_home.exists() == existed
