"""``smoke``: connect to servers and report their versions (the demo's first flow)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import load_server, table_artifact
from mysqlops.probe import probe as probe_server


@task(cache_policy=NO_CACHE)
def probe(block_name: str) -> dict[str, Any]:
    return probe_server(load_server(block_name))


@flow(name="smoke")
def smoke(servers: list[str]) -> list[dict[str, Any]]:
    """Connect to each ``MySQLServer`` block and report flavor/version, server_id, read-only."""
    logger = get_run_logger()
    rows = [probe(name) for name in servers]
    for row in rows:
        logger.info(
            "%s at %s: %s (server_id=%s)", row["server"], row["endpoint"], row["version"], row["server_id"]
        )
    table_artifact("smoke", rows, "Servers reached by the smoke flow")
    return rows
