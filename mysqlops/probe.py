"""Reach a server and say what it is: the smoke flow's one core call."""

from __future__ import annotations

from typing import Any

from mysqlops.adapters.mysql import server_info
from mysqlops.model import ServerSpec


def probe(spec: ServerSpec) -> dict[str, Any]:
    """Connect to ``spec`` and return one row: endpoint, flavor and version, server_id,
    read-only and whether the binary log is on."""
    info = server_info(spec)
    return {
        "server": spec.name,
        "endpoint": info.endpoint,
        "version": str(info.version),
        "server_id": info.server_id,
        "read_only": info.read_only,
        "binary_log": info.log_bin,
    }
