"""``backup-inventory``: every backup and binlog range of every server, per location, with the
recovery window (``mysqlops.inventory``; the ``pgbackrest info`` of mysqlops).

Publishes one markdown artifact for the fleet (key ``backup-inventory``) and one per server
(``inventory-<server>``), and a table artifact of every copy (``backup-inventory-copies``).
Scheduled hourly by setup/prefect.yaml; run it on demand from the UI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.common import json_safe, load_location, markdown_artifact, server_name, table_artifact
from mysqlops import catalog, inventory


@flow(name="backup-inventory")
def backup_inventory(locations: list[str], servers: list[str] | None = None) -> dict[str, Any]:
    """Publish the inventory: backups, binlog ranges and the recovery window of each server.

    Args:
        locations: BackupLocation block names to list, e.g. ["local", "s3"].
        servers: Only these servers (MySQLServer block names); empty = every server found.
    """
    scans = catalog.scan([load_location(name) for name in locations])
    inv = inventory.build(scans, servers=[server_name(s) for s in servers] if servers else None)
    logger = get_run_logger()
    for error in inv.errors:
        logger.error("%s", error)
    markdown_artifact("backup-inventory", inventory.fleet_markdown(inv), "Backup inventory of the fleet")
    for name in inv.servers:
        markdown_artifact(
            f"inventory-{name}", inventory.server_markdown(inv, name), f"Backup inventory of {name}"
        )
    table_artifact("backup-inventory-copies", inv.backup_rows(), "Every backup copy, per location")
    for row in inventory.fleet_rows(inv):
        logger.info(
            "%s: %s backups, recovery window %s (%s -> %s)",
            row["server"],
            row["backups"],
            row["recovery_window"],
            row["oldest_point"],
            row["newest_point"],
        )
    return {
        "servers": inventory.fleet_rows(inv),
        "backups": json_safe(inv.backup_rows()),
        "binlogs": json_safe(inv.binlog_rows()),
        "windows": json_safe(inv.window_rows()),
        "errors": inv.errors,
    }
