"""End-to-end fixtures: a real ``prefect server`` and worker as child processes, a loopback
webhook receiver. Every child runs in its own process group and is killed as a group at the
end, also when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from mysqlops.adapters.sandbox import free_port

ROOT = Path(__file__).resolve().parents[2]


def child_env(prefect_home: Path, api_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a child: ours without any PREFECT_* setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
        AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        PYTHONUNBUFFERED="1",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        # the group may still hold grandchildren (flow-run processes of a worker)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def start_child(name: str, argv: list[str], env: dict[str, str], logdir: Path, cwd: Path = ROOT) -> Child:
    log = logdir / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Child(name, proc, log)


def prefect_cli(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "prefect", *args]


# Prefect's own settings shorten the server's loops (the services stay ON, as in production):
# the scheduler creates runs within seconds, late runs and automations are evaluated quickly.
SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",
}


@dataclass
class PrefectServer:
    url: str  # .../api
    home: Path
    logdir: Path
    children: list[Child] = field(default_factory=list)
    database: str = "sqlite"

    def env(self, **extra: str) -> dict[str, str]:
        return child_env(self.home, self.url, **extra)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; a 503 (the server's "retry": SQLite was busy) is retried with backoff,
        as Prefect's own client does, instead of failing the test."""
        for attempt in range(6):
            response = httpx.request(method, self.url + path, json=body, timeout=30)
            if response.status_code != 503 or attempt == 5:
                break
            time.sleep(0.5 * 2**attempt)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        """Stop every child (workers first, the server last)."""
        for c in reversed(self.children):
            c.stop()

    @property
    def log(self) -> Path:
        return self.children[0].log

    def tracebacks(self) -> list[str]:
        """Every traceback in the server's log (each with the log line that announced it)."""
        lines = self.log.read_text(errors="replace").splitlines()
        found: list[str] = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback (most recent call last)"):
                end = i + 1
                while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
                    end += 1
                found.append("\n".join(lines[max(0, i - 1) : end + 1]))
        return found


def start_prefect_server(
    base: Path, database_url: str | None = None, python: str = sys.executable, **settings: str
) -> PrefectServer:
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME, every
    service on (scheduler included) with short loops, SQLite or the given database; run by
    ``python`` (another virtualenv's, for a fresh install)."""
    home = base / "home"
    home.mkdir(mode=0o700, parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    extra = dict(SERVER_SETTINGS, **settings)
    if database_url:
        extra["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    env = child_env(home, None, **extra)
    server = PrefectServer(url, home, base, database="postgresql" if database_url else "sqlite")
    child = start_child(
        "server",
        prefect_cli("server", "start", "--host", "127.0.0.1", "--port", str(port), python=python),
        env,
        base,
    )
    server.children.append(child)
    try:
        deadline = time.monotonic() + 90
        while True:
            if child.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {child.proc.returncode}:\n{child.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after 90s:\n{child.tail()}")
            time.sleep(0.3)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server (SQLite) with its scheduler ON: deployment schedules create runs,
    and a worker runs those that are due during the tests."""
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-e2e"))
    try:
        yield server
    finally:
        server.stop()


POSTGRES_ADMIN = os.environ.get("MYSQLOPS_E2E_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A private PostgreSQL database for one Prefect server (asyncpg URL), dropped afterwards.
    Skips when no PostgreSQL answers at MYSQLOPS_E2E_POSTGRES (trust auth by default)."""
    import asyncio
    import uuid
    from urllib.parse import urlparse

    import asyncpg

    name = "mysqlops_e2e_" + uuid.uuid4().hex[:10]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN} ({exc}): set MYSQLOPS_E2E_POSTGRES")
    where = urlparse(POSTGRES_ADMIN)
    try:
        yield f"postgresql+asyncpg://{where.netloc}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class WebhookReceiver:
    url: str
    requests: list[dict[str, Any]]

    def wait_for(self, needle: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in list(self.requests):
                if needle in request["body"]:
                    return request
            time.sleep(0.5)
        return None


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An ``http.server`` thread on loopback that records every request body."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            received.append({"path": self.path, "body": body, "at": time.time()})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"ok": True}).encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield WebhookReceiver(f"http://127.0.0.1:{httpd.server_address[1]}", received)
    finally:
        httpd.shutdown()
        httpd.server_close()
