"""Pinned backups: kept forever, exempt from retention (``barman keep``, ``wal-g backup-mark``).

A pin is a small JSON marker next to the backup's manifest, in the backup's directory, named
by its UTC time and a random suffix (the key comes from ``layout.pin_marker_key``).
Markers are write-once like everything else mysqlops stores: pinning writes a marker with
``pinned: true``, unpinning writes a LATER marker with ``pinned: false``; nothing is
overwritten or deleted, so the history of who pinned and unpinned a backup, when and why,
stays with the backup. The newest marker decides (by its time, then its key), across every
location scanned: a pin written at one location protects the copies at the others, and an
unpin written later lifts it everywhere. Markers go to every location that holds a copy.

Retention (``retention.plan``) keeps a pinned backup whatever the policy says (reason
``kept: pinned``). A pinned backup is *standalone*: it does not on its own keep the binlogs
after it (that would keep every binlog since the pin, forever); it restores to its own point.

A marker read from a location is validated like a manifest: it must name the server and
backup id of the directory it sits in; an unreadable one makes the catalog unreadable at that
location (retention then deletes nothing there), never a silently ignored unpin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mysqlops import jsondoc, layout
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.jsondoc import json_as, utc_iso

if TYPE_CHECKING:
    from mysqlops.catalog import LocationScan

PIN_SCHEMA = "mysqlops.pin/1"
MAX_REASON = 500


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("pinned is not true/false")
    return value


def _text(limit: int) -> jsondoc.Codec:
    return jsondoc.Codec(jsondoc.plain, lambda raw: str(raw or "")[:limit])


@dataclass(frozen=True)
class PinMarker:
    """One pin or unpin of one backup, as stored (``key``, ``location``: where it was found,
    not stored). Fields declared once, written and read by :mod:`mysqlops.jsondoc`."""

    server: str = field(metadata=json_as(jsondoc.Codec(jsondoc.plain, layout.check_server_name)))
    backup_id: str = field(
        metadata=json_as(
            jsondoc.Codec(jsondoc.plain, lambda v: layout.check_backup_id(v, "pin marker backup id"))
        )
    )
    pinned: bool = field(metadata=json_as(jsondoc.Codec(jsondoc.plain, _flag)))
    at: datetime = field(metadata=json_as(jsondoc.TIME))
    by: str = field(default="", metadata=json_as(_text(200)))
    reason: str = field(default="", metadata=json_as(_text(MAX_REASON)))
    key: str = field(default="", metadata=json_as(stored=False))
    location: str = field(default="", metadata=json_as(stored=False))

    def to_json(self) -> str:
        return _PIN_DOC.dumps(self)

    @classmethod
    def from_json(cls, text: str | bytes, key: str = "", location: str = "") -> PinMarker:
        marker: PinMarker = _PIN_DOC.loads(text, key=key, location=location)
        return marker

    def describe(self) -> str:
        what = "pinned" if self.pinned else "unpinned"
        who = f" by {self.by}" if self.by else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{what} {utc_iso(self.at)}{who}{why}"


_PIN_DOC = jsondoc.Document(PinMarker, PIN_SCHEMA, "pin marker")


def newest(markers: Iterable[PinMarker]) -> dict[tuple[str, str], PinMarker]:
    """The deciding marker of every backup, keyed by ``(server, backup_id)``."""
    best: dict[tuple[str, str], PinMarker] = {}
    for m in markers:
        key = (m.server, m.backup_id)
        current = best.get(key)
        if current is None or (m.at, m.key) > (current.at, current.key):
            best[key] = m
    return best


def pinned_backups(scans: Sequence[LocationScan]) -> dict[tuple[str, str], PinMarker]:
    """Backups pinned now, keyed by ``(server, backup_id)``, over every location scanned."""
    decided = newest(m for s in scans for m in s.pins)
    return {k: m for k, m in decided.items() if m.pinned}


def set_pin(
    scans: Sequence[LocationScan],
    server: str,
    backup_id: str,
    *,
    pinned: bool,
    reason: str = "",
    by: str = "",
    now: datetime | None = None,
) -> list[tuple[str, str]]:
    """Pin (or unpin) one backup: a new marker at every scanned location that holds a copy.

    Returns ``(location, key)`` of each marker written. Refuses, writing nothing, when no
    location holds the backup or a location's catalog is unreadable (a pin must not be
    half-written unnoticed); a write that fails after others succeeded raises naming both.
    """
    layout.check_server_name(server)
    layout.check_backup_id(backup_id)
    if len(reason) > MAX_REASON:
        raise ConfigError(f"reason is {len(reason)} characters long; at most {MAX_REASON}")
    now = now or datetime.now(UTC)
    unreadable = [f"{s.location.name}: {'; '.join(s.errors[:2])}" for s in scans if s.errors]
    if unreadable:
        raise MysqlopsError(
            "not pinning: the catalog is not fully readable at " + " | ".join(unreadable) + " (fix it first)"
        )
    holders = [s for s in scans if any(m.server == server and m.backup_id == backup_id for m in s.backups)]
    if not holders:
        raise MysqlopsError(
            f"backup {backup_id!r} of server {server!r} not found at locations "
            f"{[s.location.name for s in scans]}: list-backups shows what is stored"
        )
    written: list[tuple[str, str]] = []
    for s in holders:
        key = layout.pin_marker_key(server, backup_id, now)
        marker = PinMarker(server, backup_id, pinned, now, by, reason)
        try:
            Store(s.location).put_bytes(marker.to_json().encode(), key)
        except MysqlopsError as exc:
            done = ", ".join(loc for loc, _ in written) or "none"
            raise MysqlopsError(
                f"{'pin' if pinned else 'unpin'} of {server}/{backup_id} failed at {s.location.name}: {exc} "
                f"(markers written at: {done}; run it again)"
            ) from exc
        written.append((s.location.name, key))
    return written


def pin_rows(
    scans: Sequence[LocationScan], markers: Mapping[tuple[str, str], PinMarker]
) -> list[dict[str, Any]]:
    """One row per copy of a backup with a marker: its current pin state (for artifacts)."""
    rows = []
    for s in scans:
        for m in s.backups:
            marker = markers.get((m.server, m.backup_id))
            if marker is not None:
                rows.append(
                    {
                        "server": m.server,
                        "backup_id": m.backup_id,
                        "location": s.location.name,
                        "pinned": marker.pinned,
                        "state": marker.describe(),
                    }
                )
    return rows
