"""Retention: which backups to keep, which to delete, and why. Pure, and it fails closed.

``plan(records, policy, now)`` gives every record a :class:`Decision` (keep or delete) with the
reasons, so a flow can show the plan before it deletes anything. Rules combine like restic
``forget`` / borg ``prune``; each rule is applied independently and a backup kept by several
rules lists all of them.

A record is *proven* (``BackupRecord.verified``) only when a restore certificate that PASSED
covers it (``manifest.copy_verdicts``: the newest certificate of a copy decides, so a newer
FAILED test demotes it; a manifest alone proves only that an upload finished).

Safety rules that win over the policy (barman, pgBackRest, restic):

* Nothing proven, nothing deleted: a (server, location) group with backups but no proven one
  keeps every record (reason and flag ``unproven``, listed in :attr:`RetentionPlan.refused`;
  the flow then fails, naming the fix: run restore-test).
* Only complete, proven full backups that are not future-dated and not of suspicious size
  count toward (and are selected by) ``keep_last`` and the calendar rules. Failed or
  unproven backups never take a slot from a proven one.
* A suspicious-size full (``suspicious-size``) takes no slot: it stays only while it lies inside
  the ``keep_last`` span or in a calendar bucket that a rule selected for a good full.
* ``min_redundancy``: the newest N proven fulls always stay (topped up with the newest other
  proven backups when there are fewer); the newest proven backup always stays; a backup dated
  after ``now`` stays (flag ``future-dated``).
* Unproven backups newer than the newest proven one stay (their restore test may still be
  pending; one whose test FAILED stays for inspection, flag ``restore-test-failed``); older
  unproven ones and failed ones go unless ``keep_within`` or ``keep_forever`` keeps them.
* Chains: the parent chain of every kept incremental stays. Binlogs: every binlog from the
  position of the oldest kept full onwards stays (point-in-time recovery from that full needs
  them); if no kept full records a binlog position, every binlog stays.
* Pinned backups (``BackupRecord.pinned``, a pin marker, see ``mysqlops.pins``) always stay,
  reason ``kept: pinned``, flag ``pinned``. A pin is standalone: a backup kept only because it
  is pinned does not anchor the binlogs (it restores to its own point, not to any later one).
* Records are planned per (server, location) group; duplicate ids in a group make the catalog
  ambiguous and raise :class:`RetentionError` (nothing is deleted).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from mysqlops.errors import ConfigError, RetentionError
from mysqlops.jsondoc import utc_iso
from mysqlops.model import BackupKind, BackupRecord, BackupStatus, binlog_sequence
from mysqlops.retention.policy import RetentionPolicy, format_duration
from mysqlops.units import human_bytes

FLAG_FUTURE = "future-dated"
FLAG_SUSPICIOUS = "suspicious-size"
FLAG_UNVERIFIED = "unproven"
FLAG_RESTORE_FAILED = "restore-test-failed"
FLAG_FAILED = "failed"
FLAG_BROKEN_CHAIN = "broken-chain"
FLAG_UNKNOWN_SEQUENCE = "unknown-sequence"
FLAG_PINNED = "pinned"
KEPT_PINNED = "kept: pinned"


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Decision:
    """Keep or delete one record, and why."""

    record: BackupRecord
    keep: bool
    reasons: tuple[str, ...]
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetentionPlan:
    """Every record's decision, ordered by (server, created_at, backup_id, location)."""

    decisions: tuple[Decision, ...]
    policy: RetentionPolicy
    now: datetime
    refused: tuple[str, ...] = ()  # groups with backups but none proven: everything there kept

    @property
    def keep(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def delete(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def bytes_freed(self) -> int:
        return sum(d.record.stored_bytes for d in self.decisions if not d.keep)

    def summary(self) -> str:
        kept = sum(1 for d in self.decisions if d.keep)
        return (
            f"{kept} kept, {len(self.decisions) - kept} to delete, {human_bytes(self.bytes_freed)} freed "
            f"({self.policy.describe()})"
        )

    def to_rows(self) -> list[dict[str, Any]]:
        """JSON-safe rows for a table artifact or a report. ``flags`` is ", "-joined."""
        return [
            {
                "backup_id": d.record.backup_id,
                "server": d.record.server,
                "location": d.record.location,
                "kind": str(d.record.kind.value),
                "created_at": utc_iso(d.record.created_at),
                "decision": "keep" if d.keep else "delete",
                "reasons": "; ".join(d.reasons),
                "flags": ", ".join(d.flags),
                "stored_bytes": int(d.record.stored_bytes),
            }
            for d in self.decisions
        ]


def _hour(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> tuple[int, ...]:
    iso = t.isocalendar()
    return (iso[0], iso[1])


def _month(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month)


def _year(t: datetime) -> tuple[int, ...]:
    return (t.year,)


def _label(period: str, key: tuple[int, ...]) -> str:
    if period == "hourly":
        return f"hourly {key[0]:04d}-{key[1]:02d}-{key[2]:02d}T{key[3]:02d}"
    if period == "daily":
        return f"daily {key[0]:04d}-{key[1]:02d}-{key[2]:02d}"
    if period == "weekly":
        return f"weekly {key[0]:04d}-W{key[1]:02d}"
    if period == "monthly":
        return f"monthly {key[0]:04d}-{key[1]:02d}"
    return f"yearly {key[0]:04d}"


_PERIODS: tuple[tuple[str, Callable[[datetime], tuple[int, ...]]], ...] = (
    ("hourly", _hour),
    ("daily", _day),
    ("weekly", _week),
    ("monthly", _month),
    ("yearly", _year),
)


def plan(records: Sequence[BackupRecord], policy: RetentionPolicy, now: datetime) -> RetentionPlan:
    """Decide keep/delete for every record; see the module docstring for the rules.

    Raises :class:`RetentionError` for a naive ``now``, an empty policy, or duplicate backup
    ids within one (server, location): in each case nothing should be deleted.
    """
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise RetentionError("now must be a timezone-aware datetime (UTC), e.g. datetime.now(UTC)")
    if not isinstance(policy, RetentionPolicy):
        raise RetentionError(f"policy must be a RetentionPolicy, got {type(policy).__name__}")
    policy.require_rules()
    now = now.astimezone(UTC)

    # Group first, then sort each group: two stable single-key sorts allocate no key tuples.
    groups: dict[tuple[str, str], list[BackupRecord]] = {}
    for r in records:
        key = (r.server, r.location)
        group = groups.get(key)
        if group is None:
            groups[key] = [r]
        else:
            group.append(r)
    by_server: dict[str, list[list[Decision]]] = {}
    refused: list[str] = []
    for (server, _location), group in sorted(groups.items()):
        group.sort(key=_BY_ID)
        group.sort(key=_BY_TIME)
        by_server.setdefault(server, []).append(_plan_group(group, policy, now, refused))

    decisions: list[Decision] = []
    for planned in by_server.values():
        if len(planned) == 1:
            decisions.extend(planned[0])
        else:  # one server at several locations: interleave in (created_at, backup_id) order
            decisions.extend(heapq.merge(*planned, key=_decision_order))
    return RetentionPlan(decisions=tuple(decisions), policy=policy, now=now, refused=tuple(refused))


_BY_ID = attrgetter("backup_id")
_BY_TIME = attrgetter("created_at")


def _decision_order(d: Decision) -> tuple[datetime, str, str]:
    return (d.record.created_at, d.record.backup_id, d.record.location)


def _median(values: Sequence[int]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2


def _sequence(r: BackupRecord) -> int | None:
    if r.binlog_sequence is not None:
        return r.binlog_sequence
    try:
        return binlog_sequence(r.backup_id)
    except ConfigError:
        return None


def _not_proven(r: BackupRecord) -> str:
    if r.verdict == "failed":
        return "restore test FAILED"
    if r.verdict == "damaged":
        return "damaged copy (files missing)"
    return "unproven (no restore test passed)"


def _plan_group(
    recs: list[BackupRecord], policy: RetentionPolicy, now: datetime, refused: list[str]
) -> list[Decision]:
    """One server at one location; ``recs`` sorted by (created_at, backup_id).

    Bookkeeping is sparse (dicts keyed by position) because most records of a large catalog
    are binlogs that one rule decides: that keeps 100,000 records well under a second.
    """
    n = len(recs)
    keep: dict[int, list[str]] = {}  # position -> reasons to keep
    flags: dict[int, list[str]] = {}
    why_not: dict[int, str] = {}  # position -> reason to delete, when no rule keeps it

    def keep_for(i: int, reason: str) -> None:
        got = keep.get(i)
        if got is None:
            keep[i] = [reason]
        else:
            got.append(reason)

    def flag(i: int, name: str) -> None:
        got = flags.get(i)
        if got is None:
            flags[i] = [name]
        else:
            got.append(name)

    index = {r.backup_id: i for i, r in enumerate(recs)}
    if len(index) != n:
        seen: set[str] = set()
        for r in recs:
            if r.backup_id in seen:
                raise RetentionError(
                    f"backup id {r.backup_id!r} appears twice for server {r.server!r} at location "
                    f"{r.location!r}: the catalog is ambiguous, refusing to plan deletions"
                )
            seen.add(r.backup_id)

    full, incremental, binlog = BackupKind.FULL, BackupKind.INCREMENTAL, BackupKind.BINLOG
    complete = BackupStatus.COMPLETE
    cutoff = now - policy.keep_within if policy.keep_within is not None else None
    within_label = f"within {format_duration(policy.keep_within)}" if policy.keep_within is not None else ""

    good_fulls: list[int] = []  # complete, proven, not future-dated
    newest_verified = -1  # newest complete+proven non-binlog record, not future-dated
    unverified: list[int] = []  # complete, unproven, not binlog
    proven_others: list[int] = []  # complete, proven, not future-dated incrementals
    incrementals: list[int] = []
    backups = 0
    for i, r in enumerate(recs):
        at = r.created_at
        future = at > now
        if future:
            keep_for(i, "future-dated")
            flag(i, FLAG_FUTURE)
        if r.keep_forever:
            keep_for(i, "keep_forever")
        if r.pinned:
            keep_for(i, KEPT_PINNED)
            flag(i, FLAG_PINNED)
        if cutoff is not None and not future and at >= cutoff:
            keep_for(i, within_label)
        kind = r.kind
        ok = r.status is complete
        if not ok:
            flag(i, FLAG_FAILED)
            why_not[i] = "failed backup"
        elif not r.verified:
            flag(i, FLAG_UNVERIFIED)
            if r.verdict in ("failed", "damaged"):
                flag(i, FLAG_RESTORE_FAILED)
            if kind is not binlog:
                unverified.append(i)
            ok = False
        if kind is binlog:
            continue
        backups += 1
        if kind is incremental:
            incrementals.append(i)
            if r.parent_id is None or r.parent_id not in index:
                flag(i, FLAG_BROKEN_CHAIN)
        if ok and not future:
            newest_verified = i
            if kind is full:
                good_fulls.append(i)
            else:
                proven_others.append(i)

    # Suspicious size: compared with the preceding proven fulls (suspicious ones included,
    # so a lasting, legitimate shrink becomes the new normal after a few backups).
    rule_fulls: list[int] = []
    suspicious: list[int] = []
    window: deque[int] = deque(maxlen=policy.suspicious_window)
    for i in good_fulls:
        size = recs[i].stored_bytes
        if window:
            med = _median(window)
            if size < policy.suspicious_ratio * med:
                flag(i, FLAG_SUSPICIOUS)
                why_not[i] = (
                    f"suspicious size: {human_bytes(size)} < {policy.suspicious_ratio:g} x median {human_bytes(med)} of the "
                    f"previous {len(window)} proven fulls; not counted by any rule"
                )
                suspicious.append(i)
                window.append(size)
                continue
        window.append(size)
        rule_fulls.append(i)

    # keep_last over good fulls; suspicious ones inside that span stay but take no slot.
    if policy.keep_last:
        label = f"last {policy.keep_last}"
        chosen = rule_fulls[-policy.keep_last :]
        for i in chosen:
            keep_for(i, label)
        span_start = chosen[0] if len(chosen) == policy.keep_last else -1
        for i in suspicious:
            if i > span_start:
                keep_for(i, f"{label} (suspicious size, not counted)")

    # Calendar rules: newest good full in each of the N most recent buckets that have one.
    for period, keyf in _PERIODS:
        limit = getattr(policy, f"keep_{period}")
        if not limit:
            continue
        selected: set[tuple[int, ...]] = set()
        last: tuple[int, ...] | None = None
        for i in reversed(rule_fulls):
            key = keyf(recs[i].created_at.astimezone(UTC))
            if key != last:
                last = key
                selected.add(key)
                keep_for(i, _label(period, key))
                if len(selected) == limit:
                    break
        for i in suspicious:
            key = keyf(recs[i].created_at.astimezone(UTC))
            if key in selected:
                keep_for(i, f"{_label(period, key)} (suspicious size, not counted)")

    for i in rule_fulls[-policy.min_redundancy :]:
        keep_for(i, "min_redundancy")
    short = policy.min_redundancy - len(rule_fulls)
    if short > 0:  # fewer proven fulls of normal size: the newest other proven backups count
        others = sorted([*suspicious, *proven_others], reverse=True)
        for i in others[:short]:
            keep_for(i, "min_redundancy")
    if newest_verified >= 0:
        keep_for(newest_verified, "newest proven backup")

    for i in unverified:
        if i > newest_verified:
            if recs[i].created_at <= now:
                keep_for(i, f"{_not_proven(recs[i])}, newer than the newest proven backup")
        elif newest_verified >= 0:
            why_not[i] = (
                f"{_not_proven(recs[i])}, superseded by proven backup {recs[newest_verified].backup_id}"
            )

    # Chain safety: every kept incremental keeps its parent chain (walk until already walked).
    for i in reversed(incrementals):
        if i not in keep:
            continue
        child = i
        while recs[child].kind is incremental:
            parent = index.get(recs[child].parent_id or "")
            if parent is None:
                break
            label = f"needed by incremental {recs[child].backup_id}"
            reasons = keep.get(parent)
            if reasons is not None and label in reasons:
                break
            keep_for(parent, label)
            child = parent

    # Binlogs: PITR from the oldest kept full (that records a position) needs all later binlogs.
    anchor_seq: int | None = None
    anchor_id = ""
    for i, kept_for in keep.items():
        if kept_for == [KEPT_PINNED]:
            continue  # pinned only: standalone, restores to its own point
        r = recs[i]
        seq = r.binlog_sequence
        if r.kind is full and seq is not None and (anchor_seq is None or seq < anchor_seq):
            anchor_seq, anchor_id = seq, r.backup_id
    needed = f"binlog needed for PITR from {anchor_id}"
    no_anchor = "binlog kept: no kept full backup records a binlog position"
    unknown = "binlog with an unknown sequence (kept to be safe)"
    too_old = f"binlog before sequence {anchor_seq}, where PITR from the oldest kept full {anchor_id} starts"

    decisions: list[Decision] = []
    append = decisions.append
    empty: tuple[str, ...] = ()
    shared = {  # one tuple per common single reason: fewer objects for the collector
        reason: (reason,)
        for reason in (
            needed,
            no_anchor,
            unknown,
            too_old,
            "failed backup",
            "not selected by any rule",
            "incremental not needed by any kept backup",
        )
    }
    for i, r in enumerate(recs):
        reasons = keep.get(i)
        fl = flags.get(i)
        flag_t = tuple(fl) if fl else empty
        if r.kind is binlog:
            seq = r.binlog_sequence
            if seq is None:
                seq = _sequence(r)
            extra: str | None = None
            if seq is None:
                extra = unknown
                flag_t = (*flag_t, FLAG_UNKNOWN_SEQUENCE)
            elif anchor_seq is None:
                extra = no_anchor
            elif seq >= anchor_seq:
                extra = needed
            if extra is not None:
                append(Decision(r, True, (*reasons, extra) if reasons else shared[extra], flag_t))
                continue
            if not reasons:
                reason = why_not.get(i) or too_old
                append(Decision(r, False, shared.get(reason) or (reason,), flag_t))
                continue
        if reasons:
            append(Decision(r, True, tuple(reasons), flag_t))
            continue
        reason = why_not.get(i) or (
            "incremental not needed by any kept backup"
            if r.kind is incremental
            else "not selected by any rule"
        )
        append(Decision(r, False, shared.get(reason) or (reason,), flag_t))
    if backups and newest_verified < 0:
        # nothing proven restorable here: any delete could remove the last good copy
        why = (
            f"nothing deleted: no backup of {recs[0].server!r} at {recs[0].location!r} is proven restorable "
            "(no restore certificate that passed); run the restore-test flow, then retention again"
        )
        refused.append(why)
        decisions = [
            d if d.keep else Decision(d.record, True, (why, f"otherwise: {'; '.join(d.reasons)}"), d.flags)
            for d in decisions
        ]
    return decisions
