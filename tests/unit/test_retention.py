"""Retention plans: calendar selection, safety rules, validation, and properties over histories."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysqlops.errors import ConfigError, RetentionError
from mysqlops.manifest import Check, RestoreCertificate, verdict_of
from mysqlops.model import BackupKind, BackupMethod, BackupRecord, BackupStatus
from mysqlops.retention import Decision, RetentionPlan, RetentionPolicy
from mysqlops.retention.plan import plan
from mysqlops.retention.policy import format_duration, parse_duration

NOW = datetime(2029, 1, 15, 12, 0, tzinfo=UTC)
FULL, INCR, BINLOG = BackupKind.FULL, BackupKind.INCREMENTAL, BackupKind.BINLOG


def ts(text: str) -> datetime:
    """``2026-11-21T10:00`` (UTC unless an offset is given)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def rec(
    when: datetime | str,
    *,
    backup_id: str | None = None,
    kind: BackupKind = FULL,
    server: str = "db1",
    location: str = "local",
    size: int = 1000,
    status: BackupStatus = BackupStatus.COMPLETE,
    verified: bool = True,
    parent: str | None = None,
    seq: int | None = None,
    forever: bool = False,
) -> BackupRecord:
    at = ts(when) if isinstance(when, str) else when
    if backup_id is None:
        backup_id = f"{at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{kind.value[:3]}"
    method = BackupMethod.BINLOG if kind is BINLOG else BackupMethod.LOGICAL
    return BackupRecord(
        backup_id=backup_id,
        server=server,
        location=location,
        kind=kind,
        method=method,
        created_at=at,
        status=status,
        verified=verified,
        stored_bytes=size,
        raw_bytes=size * 2,
        parent_id=parent,
        keep_forever=forever,
        binlog_sequence=seq,
    )


def by_id(result: RetentionPlan) -> dict[str, Decision]:
    return {d.record.backup_id: d for d in result.decisions}


def kept_ids(result: RetentionPlan) -> set[str]:
    return {d.record.backup_id for d in result.keep}


def series(start: str, step: timedelta, count: int, **kw: object) -> list[BackupRecord]:
    first = ts(start)
    return [rec(first + k * step, **kw) for k in range(count)]  # type: ignore[arg-type]


def ids_at(*stamps: str) -> set[str]:
    return {f"{ts(s):%Y%m%dT%H%M%SZ}-ful" for s in stamps}


# --------------------------------------------------------------------------- calendar rules

DAY, HOUR = timedelta(days=1), timedelta(hours=1)

GFS_CASES = [
    pytest.param(
        series("2026-01-28T00:00", 12 * HOUR, 10),
        {"keep_daily": 3},
        ids_at("2026-02-01T12:00", "2026-01-31T12:00", "2026-01-30T12:00"),
        "daily 2026-01-31",
        id="daily-month-end",
    ),
    pytest.param(
        series("2028-01-25T03:00", DAY, 38),
        {"keep_monthly": 3},
        ids_at("2028-03-02T03:00", "2028-02-29T03:00", "2028-01-31T03:00"),
        "monthly 2028-02",
        id="monthly-leap-day",
    ),
    pytest.param(
        series("2028-02-27T22:00", DAY, 4),
        {"keep_daily": 2},
        ids_at("2028-03-01T22:00", "2028-02-29T22:00"),
        "daily 2028-02-29",
        id="daily-leap-day",
    ),
    pytest.param(
        [rec(s) for s in ("2024-12-31T23:00", "2025-06-01T00:00", "2026-12-31T23:59:59", "2027-01-01T00:00")],
        {"keep_yearly": 3},
        ids_at("2027-01-01T00:00", "2026-12-31T23:59:59", "2025-06-01T00:00"),
        "yearly 2026",
        id="yearly-boundary",
    ),
    pytest.param(
        series("2026-12-20T06:00", DAY, 17),
        {"keep_weekly": 3},
        # 2027-01-01..03 belong to ISO week 2026-W53, not to 2027
        ids_at("2027-01-05T06:00", "2027-01-03T06:00", "2026-12-27T06:00"),
        "weekly 2026-W53",
        id="iso-week-53",
    ),
    pytest.param(
        series("2026-11-21T09:00", 20 * timedelta(minutes=1), 9),
        {"keep_hourly": 2},
        ids_at("2026-11-21T11:40", "2026-11-21T10:40"),
        "hourly 2026-11-21T10",
        id="hourly",
    ),
    pytest.param(
        # gaps: buckets without a backup do not use up a slot
        [rec(s) for s in ("2026-01-15T00:00", "2026-03-15T00:00", "2026-07-15T00:00", "2026-07-20T00:00")],
        {"keep_monthly": 3},
        ids_at("2026-07-20T00:00", "2026-03-15T00:00", "2026-01-15T00:00"),
        "monthly 2026-03",
        id="monthly-gaps",
    ),
    pytest.param(
        series("2026-03-01T00:00", DAY, 40),
        {"keep_last": 2, "keep_weekly": 2},
        ids_at("2026-04-09T00:00", "2026-04-08T00:00", "2026-04-05T00:00"),
        "weekly 2026-W14",
        id="last-and-weekly-overlap",
    ),
]


@pytest.mark.parametrize(("records", "rules", "expected", "reason"), GFS_CASES)
def test_calendar_selection(
    records: list[BackupRecord], rules: dict[str, int], expected: set[str], reason: str
) -> None:
    result = plan(records, RetentionPolicy.from_mapping(rules), NOW)
    assert kept_ids(result) == expected
    assert any(reason in d.reasons for d in result.keep), [d.reasons for d in result.keep]
    for d in result.delete:
        assert d.reasons == ("not selected by any rule",)


def test_rules_are_independent_and_reasons_list_every_rule() -> None:
    result = plan(series("2026-03-01T00:00", DAY, 40), RetentionPolicy(keep_last=2, keep_weekly=2), NOW)
    newest = by_id(result)["20260409T000000Z-ful"]
    assert newest.reasons == ("last 2", "weekly 2026-W15", "min_redundancy", "newest proven backup")


def test_buckets_are_utc_calendar_buckets() -> None:
    # 01:30 at +02:00 is 23:30 UTC on the previous day
    records = [rec("2026-11-21T12:00"), rec("2026-11-22T01:30+02:00")]
    result = plan(records, RetentionPolicy(keep_daily=1), NOW)
    d = by_id(result)["20261121T233000Z-ful"]
    assert d.keep and "daily 2026-11-21" in d.reasons
    assert not by_id(result)["20261121T120000Z-ful"].keep


# --------------------------------------------------------------------------- keep_within


def test_keep_within_keeps_everything_inside_the_window_inclusive() -> None:
    records = [
        rec(NOW - timedelta(days=7), backup_id="edge"),
        rec(NOW - timedelta(days=7, seconds=1), backup_id="old"),
        rec(NOW - timedelta(days=1), backup_id="failed", status=BackupStatus.FAILED),
        rec(NOW - timedelta(days=2), backup_id="unverified", verified=False),
        rec(NOW - timedelta(days=3), backup_id="bin.000001", kind=BINLOG, seq=1),
        rec(NOW - timedelta(hours=1), backup_id="newest"),
    ]
    result = plan(records, RetentionPolicy(keep_within=timedelta(days=7)), NOW)
    d = by_id(result)
    assert {"edge", "failed", "unverified", "bin.000001", "newest"} <= kept_ids(result)
    assert "within 7d" in d["edge"].reasons
    assert not d["old"].keep
    assert "failed" in d["failed"].flags and "within 7d" in d["failed"].reasons


def test_keep_within_label_uses_compact_units() -> None:
    policy = RetentionPolicy.from_mapping({"keep_within": "36h"})
    result = plan([rec(NOW - HOUR)], policy, NOW)
    assert "within 36h" in result.decisions[0].reasons


# --------------------------------------------------------------------------- safety rules


def test_min_redundancy_overrides_rules() -> None:
    records = series("2027-01-01T00:00", DAY, 6)
    result = plan(records, RetentionPolicy(keep_within=timedelta(days=1), min_redundancy=3), NOW)
    assert kept_ids(result) == ids_at("2027-01-06T00:00", "2027-01-05T00:00", "2027-01-04T00:00")
    assert all("min_redundancy" in d.reasons for d in result.keep)
    assert all("within 1d" not in d.reasons for d in result.keep)


def test_failed_and_unverified_do_not_take_slots() -> None:
    good = series("2027-01-01T00:00", DAY, 3)
    junk = [
        rec("2027-01-03T06:00", backup_id="failed-1", status=BackupStatus.FAILED),
        rec("2027-01-03T07:00", backup_id="failed-2", status=BackupStatus.FAILED, verified=False),
        rec("2027-01-02T12:00", backup_id="unverified-old", verified=False),
    ]
    result = plan(good + junk, RetentionPolicy(keep_last=2, keep_daily=1), NOW)
    d = by_id(result)
    assert kept_ids(result) == ids_at("2027-01-03T00:00", "2027-01-02T00:00")
    assert d["failed-1"].reasons == ("failed backup",) and d["failed-1"].flags == ("failed",)
    assert "daily 2027-01-03" in d["20270103T000000Z-ful"].reasons
    assert d["unverified-old"].reasons == (
        "unproven (no restore test passed), superseded by proven backup 20270103T000000Z-ful",
    )
    assert d["unverified-old"].flags == ("unproven",)


def test_unverified_newer_than_newest_verified_stays() -> None:
    records = [
        *series("2027-01-01T00:00", DAY, 3),
        rec("2027-01-04T00:00", backup_id="pending", verified=False),
    ]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    d = by_id(result)["pending"]
    assert d.keep and d.flags == ("unproven",)
    assert d.reasons == ("unproven (no restore test passed), newer than the newest proven backup",)
    assert by_id(result)["20270103T000000Z-ful"].keep


def test_nothing_verified_deletes_nothing_complete() -> None:
    records = series("2027-01-01T00:00", DAY, 4, verified=False)
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    assert not result.delete


def test_nothing_proven_deletes_nothing_and_says_why() -> None:
    records = [
        *series("2027-01-01T00:00", DAY, 4, verified=False),
        rec("2027-01-02T06:00", backup_id="failed", status=BackupStatus.FAILED, verified=False),
        rec("2026-01-01T00:00", backup_id="bin.000001", kind=BINLOG, seq=1),
    ]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    assert not result.delete
    assert len(result.refused) == 1 and "run the restore-test flow" in result.refused[0]
    failed = by_id(result)["failed"]
    assert failed.reasons[0].startswith("nothing deleted: no backup of 'db1' at 'local' is proven")
    assert failed.reasons[1] == "otherwise: failed backup"
    # one proven backup is enough for the group to be planned normally
    proven = [*records[:3], rec("2027-01-04T00:00", backup_id="proven"), *records[4:]]
    result = plan(proven, RetentionPolicy(keep_last=1), NOW)
    assert result.refused == () and by_id(result)["failed"] in result.delete


def test_failed_restore_test_demotes_and_never_evicts_the_newest_proven() -> None:
    """The review case: the two newest backups FAILED their restore tests."""
    b1, b2 = series("2027-01-01T00:00", DAY, 2)
    b3, b4 = series("2027-01-03T00:00", DAY, 2, verified=False)
    b3, b4 = (dataclasses.replace(r, verdict="failed") for r in (b3, b4))
    result = plan([b1, b2, b3, b4], RetentionPolicy(keep_last=1, min_redundancy=1), NOW)
    d = by_id(result)
    assert d[b2.backup_id].keep and "newest proven backup" in d[b2.backup_id].reasons
    assert not d[b1.backup_id].keep
    for r in (b3, b4):
        assert d[r.backup_id].keep and d[r.backup_id].flags == ("unproven", "restore-test-failed")
        assert d[r.backup_id].reasons == ("restore test FAILED, newer than the newest proven backup",)
    older = dataclasses.replace(rec("2026-12-31T00:00", verified=False), verdict="failed")
    assert by_id(plan([older, b1, b2], RetentionPolicy(keep_last=1), NOW))[older.backup_id].reasons == (
        f"restore test FAILED, superseded by proven backup {b2.backup_id}",
    )


def test_min_redundancy_counts_proven_backups_of_any_size_and_kind() -> None:
    normal = rec("2027-01-01T00:00", size=1000)
    small = [rec("2027-01-02T00:00", size=100), rec("2027-01-03T00:00", size=100)]  # suspicious
    incr = rec("2027-01-04T00:00", backup_id="incr", kind=INCR, parent=small[1].backup_id, size=10)
    result = plan(
        [normal, *small, incr], RetentionPolicy(keep_within=timedelta(minutes=1), min_redundancy=3), NOW
    )
    assert {d.record.backup_id for d in result.keep} == {normal.backup_id, small[1].backup_id, "incr"}
    assert "min_redundancy" in by_id(result)["incr"].reasons


def test_keep_forever() -> None:
    records = [*series("2027-01-01T00:00", DAY, 3), rec("2020-01-01T00:00", backup_id="legal", forever=True)]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    assert by_id(result)["legal"].reasons == ("keep_forever",)


def test_suspicious_size_is_flagged_and_takes_no_slot() -> None:
    records = [*series("2027-01-01T00:00", DAY, 5, size=1000), rec("2027-01-06T00:00", size=100)]
    result = plan(records, RetentionPolicy(keep_last=1, min_redundancy=2), NOW)
    d = by_id(result)
    bad = d["20270106T000000Z-ful"]
    assert bad.flags == ("suspicious-size",)
    assert bad.keep and bad.reasons == ("last 1 (suspicious size, not counted)", "newest proven backup")
    # the good ones are still kept: last 1 and min_redundancy 2 skip the suspicious backup
    assert d["20270105T000000Z-ful"].reasons == ("last 1", "min_redundancy")
    assert d["20270104T000000Z-ful"].reasons == ("min_redundancy",)
    assert not d["20270103T000000Z-ful"].keep


def test_suspicious_backup_never_evicts_a_good_one_from_its_bucket() -> None:
    records = [
        *series("2027-01-01T01:00", DAY, 5, size=1000),
        rec("2027-01-05T23:00", size=10),
        rec("2027-01-06T00:30", backup_id="late-good", size=1000),
    ]
    result = plan(records, RetentionPolicy(keep_daily=2), NOW)
    d = by_id(result)
    assert "daily 2027-01-05" in d["20270105T010000Z-ful"].reasons
    assert d["20270105T230000Z-ful"].reasons == ("daily 2027-01-05 (suspicious size, not counted)",)
    assert d["20270105T230000Z-ful"].flags == ("suspicious-size",)


def test_suspicious_deleted_outside_rules_with_explanation() -> None:
    records = [*series("2027-01-01T00:00", DAY, 5, size=1000), rec("2027-01-05T12:00", size=1)]
    records += series("2027-01-07T00:00", DAY, 2, size=1000)
    result = plan(records, RetentionPolicy(keep_last=2), NOW)
    bad = by_id(result)["20270105T120000Z-ful"]
    assert not bad.keep and bad.flags == ("suspicious-size",)
    assert bad.reasons[0].startswith("suspicious size: 1 B < 0.5 x median 1000 B")


def test_lasting_shrink_becomes_the_new_normal() -> None:
    records = [*series("2027-01-01T00:00", DAY, 5, size=1000), *series("2027-01-06T00:00", DAY, 5, size=100)]
    result = plan(records, RetentionPolicy(keep_last=10), NOW)
    flagged = [d.record.created_at.day for d in result.decisions if "suspicious-size" in d.flags]
    assert flagged == [6, 7, 8]


def test_future_dated_is_kept_flagged_and_not_counted() -> None:
    records = [*series("2027-05-29T00:00", DAY, 3), rec(NOW + DAY, backup_id="future")]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    d = by_id(result)
    assert d["future"].keep and d["future"].flags == ("future-dated",)
    assert d["future"].reasons == ("future-dated",)
    assert d["20270531T000000Z-ful"].reasons == ("last 1", "min_redundancy", "newest proven backup")
    assert kept_ids(result) == {"future", "20270531T000000Z-ful"}


# --------------------------------------------------------------------------- chains


def test_kept_incremental_keeps_its_chain() -> None:
    records = [
        rec("2027-01-01T00:00", backup_id="F1"),
        rec("2027-01-02T00:00", backup_id="I1", kind=INCR, parent="F1"),
        rec("2027-01-03T00:00", backup_id="I2", kind=INCR, parent="I1", forever=True),
        rec("2027-01-04T00:00", backup_id="I3", kind=INCR, parent="I2"),
        rec("2027-01-08T00:00", backup_id="F2"),
        rec("2027-01-09T00:00", backup_id="I4", kind=INCR, parent="F2"),
        rec("2027-01-10T00:00", backup_id="I5", kind=INCR, parent="F2"),
    ]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    d = by_id(result)
    assert d["I2"].reasons == ("keep_forever",)
    assert d["I1"].reasons == ("needed by incremental I2",)
    assert d["F1"].reasons == ("needed by incremental I1",)
    assert d["I5"].reasons == ("newest proven backup",)
    assert d["F2"].reasons == ("last 1", "min_redundancy", "needed by incremental I5")
    assert d["I3"].reasons == ("incremental not needed by any kept backup",)
    assert not d["I4"].keep


def test_broken_chain_is_flagged() -> None:
    records = [
        rec("2027-01-01T00:00", backup_id="F1"),
        rec("2027-01-02T00:00", backup_id="I1", kind=INCR, parent="gone"),
    ]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    assert by_id(result)["I1"].flags == ("broken-chain",)
    assert by_id(result)["I1"].keep  # newest verified backup


def test_binlogs_from_the_oldest_kept_full_are_kept() -> None:
    fulls = [
        rec("2027-01-01T00:00", backup_id="F1", seq=10),
        rec("2027-01-05T00:00", backup_id="F2", seq=20),
    ]
    binlogs = [
        rec(ts("2027-01-01T00:00") + k * 8 * HOUR, kind=BINLOG, backup_id=f"bin.{k:06d}")
        for k in range(5, 26)
    ]
    result = plan(fulls + binlogs, RetentionPolicy(keep_last=1), NOW)
    d = by_id(result)
    assert not d["F1"].keep
    assert d["bin.000020"].reasons == ("binlog needed for PITR from F2",)
    assert all(d[f"bin.{k:06d}"].keep for k in range(20, 26))
    assert not any(d[f"bin.{k:06d}"].keep for k in range(5, 20))
    assert d["bin.000019"].reasons == (
        "binlog before sequence 20, where PITR from the oldest kept full F2 starts",
    )

    wider = plan(fulls + binlogs, RetentionPolicy(keep_last=2), NOW)
    assert {d.record.backup_id for d in wider.delete} == {f"bin.{k:06d}" for k in range(5, 10)}


def test_binlogs_kept_when_no_kept_full_has_a_position() -> None:
    records = [
        rec("2027-01-01T00:00", backup_id="F1"),
        rec("2027-01-02T00:00", kind=BINLOG, backup_id="b.000003"),
    ]
    result = plan(records, RetentionPolicy(keep_last=1), NOW)
    assert not result.delete


def test_binlog_with_unparseable_name_is_kept() -> None:
    records = [
        rec("2027-01-01T00:00", backup_id="F1", seq=5),
        rec("2026-01-01T00:00", kind=BINLOG, backup_id="weird"),
    ]
    d = by_id(plan(records, RetentionPolicy(keep_last=1), NOW))["weird"]
    assert d.keep and d.flags == ("unknown-sequence",)


def test_binlogs_never_count_toward_min_redundancy() -> None:
    records = [
        *series("2027-01-01T00:00", DAY, 3, seq=1),
        *[rec(NOW - k * HOUR, kind=BINLOG, backup_id=f"b.{k:06d}", seq=100 - k) for k in range(1, 4)],
    ]
    result = plan(records, RetentionPolicy(keep_within=timedelta(minutes=5), min_redundancy=2), NOW)
    assert {d.record.backup_id for d in result.keep if d.record.kind is FULL} == ids_at(
        "2027-01-03T00:00", "2027-01-02T00:00"
    )


# --------------------------------------------------------------------------- plan shape


def test_servers_are_planned_independently_and_output_is_ordered() -> None:
    records = [
        *series("2027-01-01T00:00", DAY, 3, server="b"),
        *series("2027-01-01T00:00", DAY, 3, server="a"),
        *series("2027-01-01T00:00", DAY, 3, server="a", location="s3"),
    ]
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    result = plan(shuffled, RetentionPolicy(keep_last=1), NOW)
    assert result == plan(records, RetentionPolicy(keep_last=1), NOW)
    assert [(d.record.server, d.record.location) for d in result.keep] == [
        ("a", "local"),
        ("a", "s3"),
        ("b", "local"),
    ]
    keys = [(d.record.server, d.record.created_at, d.record.backup_id) for d in result.decisions]
    assert keys == sorted(keys)


def test_rows_are_json_safe_and_bytes_freed() -> None:
    records = series("2027-01-01T00:00", DAY, 3, size=500)
    result = plan(records, RetentionPolicy(keep_last=1), NOW.astimezone(timezone(timedelta(hours=2))))
    assert result.now.tzinfo is UTC
    rows = result.to_rows()
    assert json.loads(json.dumps(rows)) == rows
    assert rows[0] == {
        "backup_id": "20270101T000000Z-ful",
        "server": "db1",
        "location": "local",
        "kind": "full",
        "created_at": "2027-01-01T00:00:00Z",
        "decision": "delete",
        "reasons": "not selected by any rule",
        "flags": "",
        "stored_bytes": 500,
    }
    assert rows[-1]["reasons"] == "last 1; min_redundancy; newest proven backup"
    assert result.bytes_freed == 1000
    assert len(result.keep) == 1 and len(result.delete) == 2
    assert "1 kept, 2 to delete" in result.summary()


def test_empty_input_gives_empty_plan() -> None:
    assert plan([], RetentionPolicy(keep_last=1), NOW).decisions == ()


def test_naive_now_is_refused() -> None:
    with pytest.raises(RetentionError, match="timezone-aware"):
        plan([], RetentionPolicy(keep_last=1), datetime(2027, 1, 1))  # noqa: DTZ001


def test_duplicate_ids_are_refused() -> None:
    records = [rec("2027-01-01T00:00", backup_id="X"), rec("2027-01-02T00:00", backup_id="X")]
    with pytest.raises(RetentionError, match="appears twice"):
        plan(records, RetentionPolicy(keep_last=1), NOW)


# --------------------------------------------------------------------------- policy validation


def test_empty_policy_is_refused() -> None:
    message = "refusing an empty policy: it would delete everything but min_redundancy; set keep_last"
    with pytest.raises(RetentionError, match=message):
        plan([rec("2027-01-01T00:00")], RetentionPolicy(min_redundancy=3), NOW)
    with pytest.raises(RetentionError, match="keep_within"):
        RetentionPolicy.from_mapping({"min_redundancy": 2})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"keep_last": -1}, "keep_last"),
        ({"keep_daily": -3}, "keep_daily"),
        ({"keep_yearly": 1.5}, "keep_yearly"),
        ({"keep_hourly": True}, "keep_hourly"),
        ({"min_redundancy": 0}, "min_redundancy"),
        ({"suspicious_ratio": 0}, "suspicious_ratio"),
        ({"suspicious_ratio": 1.0}, "suspicious_ratio"),
        ({"suspicious_ratio": -0.2}, "suspicious_ratio"),
        ({"suspicious_window": 0}, "suspicious_window"),
        ({"keep_within": timedelta(0)}, "keep_within"),
    ],
)
def test_invalid_policy_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RetentionError, match=field):
        RetentionPolicy(**({"keep_last": 1} | kwargs))  # type: ignore[arg-type]
    with pytest.raises(RetentionError, match=field):
        RetentionPolicy.from_mapping({"keep_last": 1, **kwargs})


def test_from_mapping() -> None:
    policy = RetentionPolicy.from_mapping(
        {
            "keep_daily": "7",
            "keep_weekly": 4,
            "keep_within": "P7D",
            "suspicious_ratio": "0.25",
            "keep_yearly": None,
        }
    )
    assert policy == RetentionPolicy(
        keep_daily=7, keep_weekly=4, keep_within=timedelta(days=7), suspicious_ratio=0.25
    )
    assert RetentionPolicy.from_mapping({"keep_within": "3600s"}).keep_within == HOUR
    assert RetentionPolicy.from_mapping({"keep_within": timedelta(days=2)}).keep_within == 2 * DAY


def test_from_mapping_rejects_unknown_keys() -> None:
    with pytest.raises(RetentionError, match=r"unknown retention option.*keep_dialy"):
        RetentionPolicy.from_mapping({"keep_dialy": 7})
    with pytest.raises(RetentionError, match="keep_within"):
        RetentionPolicy.from_mapping({"keep_within": "soon"})
    with pytest.raises(RetentionError, match="keep_last must be an integer"):
        RetentionPolicy.from_mapping({"keep_last": "many"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1d12h", timedelta(hours=36)),
        ("1d 12h 30m", timedelta(hours=36, minutes=30)),
        ("7 days", timedelta(days=7)),
        (" 3 Weeks ", timedelta(weeks=3)),
        ("P7D", timedelta(days=7)),
        ("p2w", timedelta(weeks=2)),
        ("PT36H", timedelta(hours=36)),
        ("P1DT12H30M", timedelta(hours=36, minutes=30)),
        ("3600", timedelta(hours=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1y", "months and years"),
        ("6mo", "months and years"),
        ("P1M", "months and years"),
        ("P1Y", "months and years"),
        ("0d", "positive"),
        ("", "empty"),
        ("soon", "cannot parse"),
        ("7dd", "cannot parse"),
        ("P", "cannot parse"),
        ("PT", "cannot parse"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(RetentionError, match=message):
        parse_duration(text)


def test_format_duration_and_describe() -> None:
    assert [format_duration(parse_duration(t)) for t in ("7d", "36h", "90m", "45s", "2w")] == [
        "7d",
        "36h",
        "90m",
        "45s",
        "14d",
    ]
    policy = RetentionPolicy(
        keep_last=3, keep_daily=7, keep_monthly=12, keep_within=timedelta(days=7), min_redundancy=2
    )
    assert policy.describe() == (
        "keep last 3, 7 daily, 12 monthly, within 7d; min_redundancy 2; a full below 50% of the median "
        "of the previous 5 proven fulls is suspicious"
    )
    assert "empty policy" in RetentionPolicy().describe()


# --------------------------------------------------------------------------- properties

SERVERS = ("a", "b")


_KINDS = (FULL, FULL, FULL, INCR, BINLOG)
_STATUSES = (BackupStatus.COMPLETE,) * 5 + (BackupStatus.FAILED,)
# the categorical fields of a record are packed into one integer (mixed radix): far fewer
# hypothesis draws per record keeps the properties fast; it still shrinks towards 0
_RADIX = (
    ("server", 2),
    ("kind", 5),
    ("status", 6),
    ("certs", 6),
    ("seq", 16),
    ("parent", 41),
    ("forever", 20),
)
_GENES = 1
for _, _base in _RADIX:
    _GENES *= _base


def _decode(gene: int) -> dict[str, int]:
    out = {}
    for name, base in _RADIX:
        gene, out[name] = divmod(gene, base)
    return out


# restore certificates of a copy, oldest first: (passed, hours after the backup)
_CERTS: tuple[tuple[tuple[bool, int], ...], ...] = (
    ((True, 1),),
    (),
    ((False, 1),),
    ((True, 1), (False, 30)),  # a newer FAILED test demotes it
    ((False, 1), (True, 30)),  # a newer passed test proves it again
    ((True, 1), (True, 30)),
)
CERTIFICATES: dict[tuple[str, str], list[RestoreCertificate]] = {}  # (server, backup_id) -> its certificates


def certificates_for(
    server: str, backup_id: str, at: datetime, outcomes: Sequence[tuple[bool, int]]
) -> list[RestoreCertificate]:
    return [
        RestoreCertificate(
            backup_id=backup_id,
            server=server,
            location="local",
            tested_at=at + timedelta(hours=hours),
            passed=passed,
            checks=(Check("restored", passed),),
            durations={},
            source_version="mariadb 10.11",
            target_version="mariadb 10.11",
            recovery_point_seconds=0.0,
        )
        for passed, hours in outcomes
    ]


@st.composite
def histories(draw: st.DrawFn, stable_sizes: bool = False) -> list[BackupRecord]:
    """Up to 40 records over two servers: fulls, incrementals (some with a missing parent),
    binlogs (small sequences, so equal ones happen), failed/future-dated/keep_forever ones,
    spread over hours, days or years; every backup has 0-2 restore certificates (passed or
    FAILED, newest last): whether it is proven comes from them (``manifest.verdict_of``), as
    the catalog decides it. The certificates are kept in CERTIFICATES for the checks."""
    span = draw(st.sampled_from([6 * 60, 10 * 24 * 60, 800 * 24 * 60]))
    sizes = st.integers(900, 1100) if stable_sizes else st.integers(0, 2000)
    count = draw(st.integers(0, 40))  # drawn, not left to st.lists: its histories are short
    element = st.tuples(st.integers(0, _GENES - 1), st.integers(-span, 2 * 24 * 60), sizes)
    rows = draw(st.lists(element, min_size=count, max_size=count))
    records: list[BackupRecord] = []
    chainable: dict[str, list[str]] = {s: [] for s in SERVERS}
    for k, (gene, minutes, size) in enumerate(rows):
        g = _decode(gene)
        server, kind, seq = SERVERS[g["server"]], _KINDS[g["kind"]], g["seq"]
        parent = None
        if kind is INCR:
            options = [*chainable[server], "missing-parent"]
            parent = options[g["parent"] % len(options)]
        backup_id = f"bin-{k}.{seq:06d}" if kind is BINLOG else f"{kind.value}-{k}"
        at = NOW + timedelta(minutes=minutes)
        certs = [] if kind is BINLOG else certificates_for(server, backup_id, at, _CERTS[g["certs"]])
        CERTIFICATES[(server, backup_id)] = certs
        verdict = verdict_of(certs)
        record = rec(
            at,
            backup_id=backup_id,
            kind=kind,
            server=server,
            size=size,
            status=_STATUSES[g["status"]],
            verified=kind is BINLOG or verdict.proven,
            parent=parent,
            seq=seq or None,
            forever=g["forever"] == 19,
        )
        records.append(dataclasses.replace(record, verdict="" if kind is BINLOG else verdict.value))
        if kind is not BINLOG:
            chainable[server].append(backup_id)
    return records


@st.composite
def policies(draw: st.DrawFn) -> RetentionPolicy:
    """Rich, sparse (most slots 0) or minimal (one tiny rule) policies: in the last two the
    safety rules (min_redundancy, newest verified, chains) decide most of the plan."""
    mode = draw(st.sampled_from(["rich", "sparse", "minimal"]))
    names = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
    counts = dict.fromkeys(names, 0)
    within: timedelta | None = None
    if mode == "minimal":
        if draw(st.booleans()):
            within = draw(st.sampled_from([timedelta(minutes=1), HOUR]))
        else:
            counts[draw(st.sampled_from(names))] = 1
    else:
        per_rule = st.integers(0, 4) if mode == "rich" else st.sampled_from([0, 0, 0, 0, 1])
        counts = {name: draw(per_rule) for name in names}
        within = draw(st.sampled_from([None, None, None, HOUR, DAY, 7 * DAY, 30 * DAY]))
        if within is None and not any(counts.values()):
            counts["keep_last"] = 1
    return RetentionPolicy(
        **counts,
        keep_within=within,
        min_redundancy=draw(st.integers(1, 4)),
        suspicious_window=draw(st.integers(1, 5)),
    )


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _groups(result: RetentionPlan) -> dict[tuple[str, str], list[Decision]]:
    out: dict[tuple[str, str], list[Decision]] = {}
    for d in result.decisions:
        out.setdefault((d.record.server, d.record.location), []).append(d)
    return out


def _proven(d: Decision) -> bool:
    """Independently of the code under test: the newest certificate of the copy passed."""
    r = d.record
    certs = CERTIFICATES.get((r.server, r.backup_id), [])
    newest = max(certs, key=lambda c: c.tested_at) if certs else None
    return (
        r.kind is not BINLOG
        and r.status is BackupStatus.COMPLETE
        and r.created_at <= NOW
        and newest is not None
        and newest.passed
    )


def _violations(result: RetentionPlan, policy: RetentionPolicy) -> list[str]:
    """Every broken safety rule, as short strings (cheap to report while hypothesis shrinks)."""
    out: list[str] = []
    for group in _groups(result).values():
        ids = {d.record.backup_id: d for d in group}
        proven = [d for d in group if _proven(d)]
        if proven:
            newest = max(proven, key=lambda d: (d.record.created_at, d.record.backup_id))
            if not newest.keep:
                out.append(f"newest proven {newest.record.backup_id} deleted")
        elif any(d.record.kind is not BINLOG for d in group) and any(not d.keep for d in group):
            out.append("something deleted although no backup of the group is proven")
        kept_proven = sum(1 for d in proven if d.keep)
        if kept_proven < min(policy.min_redundancy, len(proven)):
            out.append(f"only {kept_proven} proven backups kept of {len(proven)}")
        good_fulls = [d for d in proven if d.record.kind is FULL and "suspicious-size" not in d.flags]
        kept_good = sum(1 for d in good_fulls if d.keep)
        if kept_good < min(policy.min_redundancy, len(good_fulls)):
            out.append(f"only {kept_good} good fulls kept of {len(good_fulls)}")
        for d in group:
            r = d.record
            certs = CERTIFICATES.get((r.server, r.backup_id), [])
            newest_passed = bool(certs) and max(certs, key=lambda c: c.tested_at).passed
            if r.kind is not BINLOG and r.verified != newest_passed:
                out.append(
                    f"{r.backup_id}: proven={r.verified} but its newest certificate passed={newest_passed}"
                )
        for d in group:
            r = d.record
            if r.kind is INCR and d.keep:
                parent, seen = ids.get(r.parent_id or ""), set()
                while parent is not None and parent.record.backup_id not in seen:
                    if not parent.keep:
                        out.append(f"{parent.record.backup_id} deleted under kept {r.backup_id}")
                    seen.add(parent.record.backup_id)
                    parent = ids.get(parent.record.parent_id or "") if parent.record.kind is INCR else None
            if r.created_at > NOW and not (d.keep and "future-dated" in d.flags):
                out.append(f"future-dated {r.backup_id} not kept and flagged")
            if policy.keep_within is not None and r.created_at >= NOW - policy.keep_within and not d.keep:
                out.append(f"{r.backup_id} within keep_within deleted")
            if r.keep_forever and not d.keep:
                out.append(f"keep_forever {r.backup_id} deleted")
            if not d.reasons:
                out.append(f"{r.backup_id} has no reason")
        sequences = [
            d.record.binlog_sequence
            for d in group
            if d.keep and d.record.kind is FULL and d.record.binlog_sequence is not None
        ]
        for d in group:
            seq = d.record.binlog_sequence or 0
            if d.record.kind is BINLOG and (not sequences or seq >= min(sequences)) and not d.keep:
                out.append(f"binlog {d.record.backup_id} needed for PITR deleted")
    return out


@PROPERTY
@given(histories(), policies())
def test_property_safety_invariants(records: list[BackupRecord], policy: RetentionPolicy) -> None:
    result = plan(records, policy, NOW)
    assert len(result.decisions) == len(records)
    problems = _violations(result, policy)
    assert not problems, problems[:5]


@PROPERTY
@given(histories(stable_sizes=True), policies())
def test_property_idempotent(records: list[BackupRecord], policy: RetentionPolicy) -> None:
    first = plan(records, policy, NOW)
    second = plan([d.record for d in first.keep], policy, NOW)
    deleted = [d.record.backup_id for d in second.delete]
    assert not deleted, deleted[:5]


@PROPERTY
@given(histories(), policies(), st.lists(st.integers(-60 * 24 * 800, 0), max_size=10), st.randoms())
def test_property_junk_changes_nothing_and_order_is_deterministic(
    records: list[BackupRecord], policy: RetentionPolicy, junk_minutes: list[int], rnd: random.Random
) -> None:
    before = plan(records, policy, NOW)
    junk = [
        rec(
            NOW + timedelta(minutes=m),
            backup_id=f"junk-{k}",
            server=SERVERS[k % 2],
            status=BackupStatus.FAILED,
        )
        for k, m in enumerate(junk_minutes)
    ]
    mixed = records + junk
    rnd.shuffle(mixed)
    after = plan(mixed, policy, NOW)
    originals = [d for d in after.decisions if not d.record.backup_id.startswith("junk-")]
    assert len(originals) == len(before.decisions)
    changed = [a.record.backup_id for a, b in zip(originals, before.decisions, strict=True) if a != b]
    assert not changed, changed[:5]
    same = plan(list(reversed(mixed)), policy, NOW) == after
    assert same, "order of the input changed the plan"


def test_policy_parameter_has_one_meaning_for_every_location_or_per_location() -> None:
    from mysqlops.retention import policies_by_location, to_policy

    names = ["local", "s3"]
    same = policies_by_location(names, {"keep_last": 2})
    assert same == {"local": {"keep_last": 2}, "s3": {"keep_last": 2}}
    per = policies_by_location(names, {"local": {"keep_last": 1}, "s3": "offsite-policy"})
    assert per == {"local": {"keep_last": 1}, "s3": "offsite-policy"}  # a block name is resolved by the flow
    assert policies_by_location(names, "nightly") == {"local": "nightly", "s3": "nightly"}
    assert to_policy(same["local"]).keep_last == 2
    with pytest.raises(ConfigError, match="no retention policy for location"):
        policies_by_location(names, {"local": {"keep_last": 1}})
    with pytest.raises(ConfigError, match="no retention policy given"):
        policies_by_location(names, None)
    with pytest.raises(RetentionError, match="unknown retention option"):
        to_policy(policies_by_location(names, {"keep_lats": 1})["local"])  # a typo is named


def test_retention_fields_are_listed_once() -> None:
    """The block's defaults, bounds and descriptions are the policy's own (one listing)."""
    from blocks.policy import RetentionPolicyBlock
    from mysqlops.retention.policy import policy_options

    options = policy_options()
    block_fields = RetentionPolicyBlock.model_fields
    exposed = [name for name in block_fields if name in options]
    assert exposed == [n for n in options if not n.startswith("suspicious_")]
    for name in exposed:
        assert block_fields[name].description == options[name]["description"]
        assert block_fields[name].default == options[name]["default"]
    block = RetentionPolicyBlock(keep_daily=30, keep_within="7d", min_redundancy=2)
    policy = block.to_policy()
    assert (policy.keep_daily, policy.keep_within, policy.min_redundancy) == (30, timedelta(days=7), 2)
    with pytest.raises(ValueError):
        RetentionPolicyBlock(keep_daily=-1)
    with pytest.raises(ValueError):
        RetentionPolicyBlock(min_redundancy=0)


def test_pinned_backup_is_kept_standalone() -> None:
    """A pinned backup stays whatever the policy ("kept: pinned"), but on its own it does not
    keep the binlogs after it (standalone: it restores to its own point)."""
    import dataclasses

    from mysqlops.retention.plan import FLAG_PINNED, KEPT_PINNED

    old = dataclasses.replace(rec("2027-01-01T00:00", backup_id="old", seq=1), pinned=True)
    records = [
        old,
        rec("2027-01-02T00:00", backup_id="bin.000001", kind=BINLOG, seq=1),
        rec("2027-01-10T00:00", backup_id="bin.000002", kind=BINLOG, seq=2),
        rec("2027-01-20T00:00", backup_id="new", seq=2),
    ]
    result = by_id(plan(records, RetentionPolicy(keep_last=1), NOW))
    assert result["old"].keep and result["old"].reasons == (KEPT_PINNED,)
    assert FLAG_PINNED in result["old"].flags
    assert not result["bin.000001"].keep and result["bin.000002"].keep
    unpinned = by_id(
        plan([dataclasses.replace(old, pinned=False), *records[1:]], RetentionPolicy(keep_last=1), NOW)
    )
    assert not unpinned["old"].keep
