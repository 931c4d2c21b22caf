"""The backup inventory: ``pgbackrest info`` / ``barman list-backup`` for mysqlops. Pure.

From the location scans (``catalog.scan``) it lists, per server and location, every backup
copy (size, age, encryption key id, newest restore-test verdict and its time, pinned or not)
and every binlog range (contiguous archived binlog files), and the server's recovery window
(``recovery_window``: the one definition the report and the metrics use too; it starts at the
oldest backup a restore test proved, ends at the newest point its binlogs reach without a gap).

Sizes and ages are shown in human units (``units``); times are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mysqlops import catalog
from mysqlops.catalog import LocationScan
from mysqlops.manifest import BinlogManifest, RestoreCertificate, Verdict
from mysqlops.model import BackupStatus
from mysqlops.pins import PinMarker, newest
from mysqlops.recovery_window import RecoveryWindow, recovery_windows
from mysqlops.units import human_bytes, human_duration

BACKUP_COLUMNS = [
    "server",
    "location",
    "backup_id",
    "kind",
    "method",
    "finished_at",
    "age",
    "size",
    "stored_bytes",
    "encryption_key_id",
    "restore_test",
    "restore_tested_at",
    "pinned",
]
BINLOG_COLUMNS = [
    "server",
    "location",
    "binlogs",
    "files",
    "first_event_at",
    "last_event_at",
    "age",
    "size",
    "encryption_key_id",
]
WINDOW_COLUMNS = ["server", "oldest_point", "newest_point", "window", "pitr_from", "gaps"]


@dataclass
class ServerInventory:
    server: str
    backups: list[dict[str, Any]] = field(default_factory=list)
    binlogs: list[dict[str, Any]] = field(default_factory=list)
    window: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inventory:
    now: datetime
    servers: dict[str, ServerInventory]
    locations: list[str]
    errors: list[str] = field(default_factory=list)

    def backup_rows(self) -> list[dict[str, Any]]:
        return [r for s in self.servers.values() for r in s.backups]

    def binlog_rows(self) -> list[dict[str, Any]]:
        return [r for s in self.servers.values() for r in s.binlogs]

    def window_rows(self) -> list[dict[str, Any]]:
        return [s.window for s in self.servers.values()]


def _age(now: datetime, at: datetime | None) -> str:
    if at is None:
        return "-"
    seconds = (now - at).total_seconds()
    return human_duration(seconds) if seconds >= 0 else f"in {human_duration(-seconds)} (future-dated)"


def _iso(at: datetime | None) -> str:
    """A time as shown: UTC to the second (``2026-11-30 14:41:25Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at is not None else "-"


def binlog_ranges(binlogs: Iterable[BinlogManifest]) -> list[list[BinlogManifest]]:
    """Runs of consecutive binlog files (same base name, sequences without a gap), oldest first."""
    runs: list[list[BinlogManifest]] = []
    for b in sorted(binlogs, key=lambda b: (b.file.rsplit(".", 1)[0], b.sequence)):
        last = runs[-1][-1] if runs else None
        if last is not None and last.file.rsplit(".", 1)[0] == b.file.rsplit(".", 1)[0]:
            if b.sequence == last.sequence + 1:
                runs[-1].append(b)
                continue
            if b.sequence == last.sequence:
                continue
        runs.append([b])
    return runs


def _pin_text(pin: PinMarker | None) -> str:
    if pin is None or not pin.pinned:
        return "no"
    return "pinned" + (f": {pin.reason}" if pin.reason else "") + f" ({_iso(pin.at)[:10]})"


def _cert_index(scans: Sequence[LocationScan]) -> dict[tuple[str, str, str], RestoreCertificate]:
    best: dict[tuple[str, str, str], RestoreCertificate] = {}
    for s in scans:
        for c in s.certificates:
            key = (s.location.name, c.server, c.backup_id)
            current = best.get(key)
            if current is None or (c.tested_at, not c.passed) > (current.tested_at, not current.passed):
                best[key] = c
    return best


def _window(w: RecoveryWindow) -> dict[str, Any]:
    """The window row shown (``recovery_window``: the one definition, see there)."""
    row: dict[str, Any] = dict.fromkeys(WINDOW_COLUMNS, "-") | {"server": w.server}
    if w.oldest is None or w.newest_at is None or w.seconds is None:
        row["window"] = "nothing restorable (no complete backup proven by a restore test)" + (
            f"; {w.untested} untested: run restore-test" if w.untested else ""
        )
        return row
    pitr = w.pitr_from
    gaps = w.gaps
    row.update(
        oldest_point=f"{_iso(w.oldest.finished_at)} (backup {w.oldest.backup_id})",
        newest_point=_iso(w.newest_at) + (" (binlogs)" if w.from_binlogs else ""),
        window=human_duration(w.seconds),
        pitr_from=f"{pitr.backup_id} ({_iso(pitr.finished_at)})" if pitr is not None else "-",
        gaps=", ".join(f"binlog #{n}" for n in gaps[:10]) + (" ..." if len(gaps) > 10 else "") or "none",
    )
    row["oldest_at"], row["newest_at"] = w.oldest.finished_at, w.newest_at
    return row


def build(
    scans: Sequence[LocationScan], now: datetime | None = None, servers: Sequence[str] | None = None
) -> Inventory:
    """The inventory of every server found at ``scans`` (or only ``servers``)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    verdicts = catalog.verdicts(scans)
    certs = _cert_index(scans)
    pins: Mapping[tuple[str, str], PinMarker] = newest(m for s in scans for m in s.pins)
    inv = Inventory(now, {}, [s.location.name for s in scans])
    for s in scans:
        inv.errors += [f"{s.location.name}: {e}" for e in s.errors]

    def server_inv(name: str) -> ServerInventory | None:
        if servers and name not in servers:
            return None
        return inv.servers.setdefault(name, ServerInventory(name))

    for s in scans:
        loc = s.location.name
        for m in sorted(s.backups, key=lambda m: (m.server, m.finished_at, m.backup_id)):
            si = server_inv(m.server)
            if si is None:
                continue
            verdict = verdicts.get((loc, m.server, m.backup_id), Verdict.UNTESTED)
            cert = certs.get((loc, m.server, m.backup_id))
            pin = pins.get((m.server, m.backup_id))
            si.backups.append(
                {
                    "server": m.server,
                    "location": loc,
                    "backup_id": m.backup_id,
                    "kind": m.kind.value,
                    "method": m.method.value,
                    "finished_at": _iso(m.finished_at),
                    "age": _age(now, m.finished_at),
                    "size": human_bytes(m.stored_bytes),
                    "stored_bytes": m.stored_bytes,
                    "encryption_key_id": m.encryption_key_id or "none",
                    "restore_test": verdict.value if m.status is BackupStatus.COMPLETE else m.status.value,
                    "restore_tested_at": _iso(cert.tested_at) if cert else "-",
                    "pinned": _pin_text(pin),
                }
            )
        per_server: dict[str, list[BinlogManifest]] = {}
        for b in s.binlogs:
            per_server.setdefault(b.server, []).append(b)
        for name, files in sorted(per_server.items()):
            si = server_inv(name)
            if si is None:
                continue
            for run in binlog_ranges(files):
                first, last = run[0], run[-1]
                keys = sorted({b.encryption_key_id or "none" for b in run})
                si.binlogs.append(
                    {
                        "server": name,
                        "location": loc,
                        "binlogs": first.file if len(run) == 1 else f"{first.file} .. {last.file}",
                        "files": len(run),
                        "first_event_at": _iso(first.first_event_at),
                        "last_event_at": _iso(last.last_event_at),
                        "age": _age(now, last.last_event_at or last.archived_at),
                        "size": human_bytes(sum(b.stored_bytes for b in run)),
                        "encryption_key_id": ", ".join(keys),
                    }
                )
    windows = recovery_windows(
        [m for s in scans for m in s.backups], [b for s in scans for b in s.binlogs], verdicts
    )
    for name, si in sorted(inv.servers.items()):
        si.window = _window(windows.get(name, RecoveryWindow(name)))
    inv.servers = dict(sorted(inv.servers.items()))
    return inv


# ----------------------------------------------------------------------------- markdown
def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    if not rows:
        return ["(none)"]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [str(r.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return out


_SHOWN_BACKUP = [
    "backup_id",
    "location",
    "finished_at",
    "age",
    "size",
    "pinned",
    "restore_test",
    "restore_tested_at",
    "encryption_key_id",
    "kind",
]
_SHOWN_BINLOG = [c for c in BINLOG_COLUMNS if c != "server"]  # the server is the section's heading
_SHOWN_WINDOW = ["server", "oldest_point", "newest_point", "window", "pitr_from", "gaps"]


def server_markdown(inv: Inventory, server: str) -> str:
    si = inv.servers[server]
    w = si.window
    lines = [
        f"# Backup inventory: {server}",
        "",
        f"As of {_iso(inv.now)} (times in UTC), locations: {', '.join(inv.locations)}.",
        "",
        f"**Recovery window:** {w.get('oldest_point', '-')} → {w.get('newest_point', '-')} "
        f"({w.get('window', '-')}); point-in-time recovery continuous from {w.get('pitr_from', '-')}; "
        f"binlog gaps: {w.get('gaps', '-')}.",
        "",
        "## Backups",
        "",
        *_table(si.backups, _SHOWN_BACKUP),
        "",
        "## Binlog ranges",
        "",
        *_table(si.binlogs, _SHOWN_BINLOG),
    ]
    errors = [e for e in inv.errors if f"{server}/" in e]
    if errors:
        lines += ["", "## Problems", "", *[f"- {e}" for e in errors]]
    return "\n".join(lines)


def fleet_rows(inv: Inventory) -> list[dict[str, Any]]:
    """One row per server: counts, sizes, newest backup, proven, pinned, recovery window."""
    rows = []
    for name, si in inv.servers.items():
        newest_backup = max(si.backups, key=lambda r: r["finished_at"], default=None)
        w = si.window
        rows.append(
            {
                "server": name,
                "recovery_window": w.get("window", "-"),
                "oldest_point": _iso(w["oldest_at"]) if "oldest_at" in w else "-",
                "newest_point": _iso(w["newest_at"]) if "newest_at" in w else "-",
                "newest_backup": newest_backup["backup_id"] if newest_backup else "-",
                "newest_age": newest_backup["age"] if newest_backup else "-",
                "backups": len({r["backup_id"] for r in si.backups}),
                "copies": len(si.backups),
                "proven_copies": sum(r["restore_test"] in ("passed", "proven-by-copy") for r in si.backups),
                "pinned": len({r["backup_id"] for r in si.backups if r["pinned"] != "no"}),
                "size": human_bytes(sum(r["stored_bytes"] for r in si.backups)),
                "binlog_ranges": len(si.binlogs),
            }
        )
    return rows


def fleet_markdown(inv: Inventory) -> str:
    rows = fleet_rows(inv)
    lines = [
        "# Backup inventory",
        "",
        f"As of {_iso(inv.now)} (times in UTC), locations: {', '.join(inv.locations)}. "
        f"Per server detail: the artifacts `inventory-<server>`.",
        "",
        *_table(rows, list(rows[0]) if rows else ["server"]),
    ]
    if inv.errors:
        lines += ["", "## Problems (retention deletes nothing at these locations)", ""]
        lines += [f"- {e}" for e in inv.errors[:50]]
    return "\n".join(lines)
