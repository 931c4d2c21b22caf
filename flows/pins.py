"""``pin-backup`` / ``unpin-backup``: keep one backup forever, exempt from retention, or lift that.

A recipe over ``mysqlops.pins``: a write-once marker next to the backup's manifest at every
location holding a copy; unpin writes a later marker (the history stays). Retention shows a
pinned backup as "kept: pinned"; backup-inventory shows the pin.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.common import load_location, server_name, table_artifact
from mysqlops import catalog, pins


def _set(block: str, backup_id: str, locations: list[str], pinned: bool, reason: str) -> list[dict[str, Any]]:
    server = server_name(block)
    scans = catalog.scan([load_location(name) for name in locations])
    by = f"flow run {flow_run.get_name() or '?'}"
    written = pins.set_pin(scans, server, backup_id, pinned=pinned, reason=reason, by=by)
    logger = get_run_logger()
    for location, key in written:
        logger.info(
            "%s %s/%s at %s (%s)", "pinned" if pinned else "unpinned", server, backup_id, location, key
        )
    rows = [
        {"server": server, "backup_id": backup_id, "location": loc, "marker": key} for loc, key in written
    ]
    table_artifact(
        f"{'pin' if pinned else 'unpin'}-{server}",
        rows,
        f"{'Pinned' if pinned else 'Unpinned'} {server}/{backup_id}: the marker written at each location",
    )
    return rows


@flow(name="pin-backup")
def pin_backup(server: str, backup_id: str, locations: list[str], reason: str = "") -> list[dict[str, Any]]:
    """Pin a backup: retention keeps it forever ("kept: pinned") until it is unpinned.

    Args:
        server: The backed-up server's MySQLServer block name, e.g. prod-primary (with no such
            block, the name its backups are recorded under).
        backup_id: The backup to pin, e.g. 20261123T101500Z-3fa2c1 (list-backups shows them).
        locations: BackupLocation block names; a pin marker is written at each one holding a copy.
        reason: Why it is kept (shown by backup-inventory and kept in the marker), e.g. a ticket.
    """
    return _set(server, backup_id, locations, True, reason)


@flow(name="unpin-backup")
def unpin_backup(server: str, backup_id: str, locations: list[str], reason: str = "") -> list[dict[str, Any]]:
    """Unpin a backup: a later marker lifts the pin; retention decides about it again.

    Args:
        server: The backed-up server's MySQLServer block name, e.g. prod-primary.
        backup_id: The pinned backup, e.g. 20261123T101500Z-3fa2c1.
        locations: BackupLocation block names; an unpin marker is written at each one holding a copy.
        reason: Why the pin is lifted (kept in the marker).
    """
    return _set(server, backup_id, locations, False, reason)
