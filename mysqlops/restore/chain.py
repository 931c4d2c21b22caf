"""Physical backup chains: which backups a physical restore needs, and whether they fit.

A chain is one physical full backup, then the physical incrementals based on it in order
(each one's ``parent_id`` the previous backup, its LSN range starting where the previous one
ended); a MySQL CLONE copy is a chain of one. :func:`physical_chain` finds the chain ending at
a backup in what the locations hold; :func:`validate_chain` refuses a chain with a break
before anything is fetched. No I/O beyond the catalog's scans.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from mysqlops import catalog
from mysqlops.backup.physical import Copies, is_clone, newest_physical
from mysqlops.errors import MysqlopsError, RestoreError
from mysqlops.manifest import BackupManifest
from mysqlops.model import BackupKind, BackupMethod, BackupStatus


def validate_chain(chain: Sequence[BackupManifest]) -> None:
    """A restorable chain: one physical full, then physical incrementals each based on the
    previous one (``parent_id``) and starting exactly where it ended (LSN). Raises
    :class:`RestoreError` naming the first break."""
    if not chain:
        raise RestoreError("empty backup chain: nothing to restore")
    for m in chain:
        if m.method is not BackupMethod.PHYSICAL:
            raise RestoreError(f"backup {m.backup_id} is a {m.method.value} backup, not physical")
        if m.status is not BackupStatus.COMPLETE:
            raise RestoreError(f"backup {m.backup_id} is not complete ({m.status.value})")
        if len(m.files) != 1:
            raise RestoreError(
                f"physical backup {m.backup_id} lists {len(m.files)} files, expected one stream"
            )
        if is_clone(m):
            if m.kind is not BackupKind.FULL or len(chain) != 1:
                raise RestoreError(
                    f"backup {m.backup_id} is a CLONE copy: it is restored alone, never as part of a chain"
                )
        elif m.lsn_from is None or m.lsn_to is None:
            raise RestoreError(f"physical backup {m.backup_id} has no LSN range in its manifest")
    first = chain[0]
    if first.kind is not BackupKind.FULL:
        raise RestoreError(
            f"the chain starts with {first.kind.value} backup {first.backup_id} (parent {first.parent_id}): "
            "its full base backup is missing"
        )
    for prev, cur in itertools.pairwise(chain):
        where = f"incremental {cur.backup_id}"
        if cur.kind is not BackupKind.INCREMENTAL:
            raise RestoreError(
                f"{cur.kind.value} backup {cur.backup_id} cannot follow {prev.backup_id} in a chain"
            )
        if cur.server != prev.server or cur.flavor != prev.flavor:
            raise RestoreError(
                f"{where} is of {cur.server}/{cur.flavor}, its base of {prev.server}/{prev.flavor}"
            )
        if cur.parent_id != prev.backup_id:
            raise RestoreError(
                f"{where} is based on {cur.parent_id}, but follows {prev.backup_id} in the chain"
            )
        if cur.lsn_from != prev.lsn_to:
            raise RestoreError(
                f"LSN gap: {where} starts at LSN {cur.lsn_from} but its base {prev.backup_id} ends at "
                f"{prev.lsn_to}; the chain is broken, restore from a newer full backup"
            )


def physical_chain(
    scans: Sequence[catalog.LocationScan], server: str, backup_id: str = "latest"
) -> list[Copies]:
    """Copies (in location order) of each backup of the chain ending at ``backup_id``:
    the full first, then the incrementals in order. ``latest``: the newest physical backup."""
    if backup_id == "latest":
        newest = [m for s in scans if (m := newest_physical(s, server)) is not None]
        if not newest:
            raise RestoreError(f"no physical backup of server {server!r} at any of the given locations")
        backup_id = max(m.backup_id for m in newest)
    chain: list[Copies] = []
    wanted: str | None = backup_id
    child: str | None = None
    while wanted is not None:
        try:
            copies = catalog.find_backup(scans, server, wanted)
        except MysqlopsError:
            if child is None:
                raise RestoreError(
                    f"backup {wanted!r} of {server!r} not found at {[s.location.name for s in scans]}"
                ) from None
            raise RestoreError(
                f"the base backup {wanted} of incremental {child} is missing at every location "
                f"({', '.join(s.location.name for s in scans)}): the chain cannot be restored"
            ) from None
        manifest = copies[0][1]
        if manifest.method is not BackupMethod.PHYSICAL:
            raise RestoreError(f"backup {wanted} is a {manifest.method.value} backup, not physical")
        chain.insert(0, copies)
        if len(chain) > 10_000:
            raise RestoreError(f"backup chain of {backup_id} does not end (parent cycle?)")
        if manifest.kind is BackupKind.FULL:
            break
        if manifest.parent_id is None:
            raise RestoreError(f"incremental {manifest.backup_id} has no parent_id in its manifest")
        child, wanted = manifest.backup_id, manifest.parent_id
    validate_chain([copies[0][1] for copies in chain])
    return chain
