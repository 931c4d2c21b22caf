"""``make demo``: the main job end to end on local defaults.

Starts a sandbox primary + replica on 127.0.0.1, registers them as blocks, runs the flows,
prints where to look, and always stops every server it started.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
os.environ.setdefault("PREFECT_HOME", str(DEMO / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

from pydantic import SecretStr  # noqa: E402

from blocks import MySQLServer  # noqa: E402
from flows.smoke import smoke  # noqa: E402
from mysqlops.adapters import sandbox  # noqa: E402


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    sandboxes = Path(os.environ.get("MYSQLOPS_DEMO_SANDBOXES", "/tmp")) / f"mysqlops-demo-{os.getpid()}"
    say(f"starting a sandbox primary + replica in {sandboxes}")
    servers = sandbox.start_cluster(sandboxes, replicas=1)
    try:
        for server in servers:
            MySQLServer(
                host="127.0.0.1",
                port=server.port,
                user="root",
                password=SecretStr(server.root_password),
                server_name=f"demo-{server.name}",
                description="mysqlops demo sandbox",
            ).save(f"demo-{server.name}", overwrite=True)
        say("smoke flow: connect to both servers")
        rows = smoke([f"demo-{s.name}" for s in servers])
        for row in rows:
            print(
                f"    {row['server']:<14} {row['endpoint']:<16} {row['version']}  server_id={row['server_id']}"
            )
    finally:
        say("stopping the sandbox servers")
        sandbox.stop_servers(servers)
    say(f"done. Prefect state lives in {os.environ['PREFECT_HOME']}; to browse the runs in the UI:")
    print(
        f"    PREFECT_HOME={os.environ['PREFECT_HOME']} uv run prefect server start   # then open http://127.0.0.1:4200"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
