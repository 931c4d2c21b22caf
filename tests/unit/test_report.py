"""report.py / charts.py on synthetic catalogs with known figures."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from datetime import UTC, datetime, timedelta

import fsspec
import pandas as pd
import pytest

from mysqlops.errors import ConfigError
from mysqlops.manifest import BackupFile, BackupManifest, BinlogManifest, Check, RestoreCertificate, Verdict
from mysqlops.model import BackupKind, BackupMethod, BackupStatus
from mysqlops.report import Catalog, LocationInfo, build_report, json_records, render_charts, write_outputs
from mysqlops.report.schemas import (
    ANOMALIES_SCHEMA,
    BACKUPS_SCHEMA,
    EMPTY_MESSAGE,
    GROWTH_SCHEMA,
    LOCATIONS_SCHEMA,
)
from mysqlops.units import human_bytes, human_duration

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LOCS = (
    LocationInfo("local", "local", offsite=False),
    LocationInfo("nas", "local", offsite=False),
    LocationInfo("s3", "s3", offsite=True),
)


def backup(
    server: str,
    started: datetime,
    location: str,
    raw: int,
    stored: int,
    total: float = 100.0,
    *,
    dbs: tuple[tuple[str, float], ...] = (("shop", 0.75), ("crm", 0.25)),
    kind: BackupKind = BackupKind.FULL,
    method: BackupMethod = BackupMethod.LOGICAL,
    status: BackupStatus = BackupStatus.COMPLETE,
    parent: str | None = None,
    keep_forever: bool = False,
) -> BackupManifest:
    backup_id = f"{started:%Y%m%dT%H%M%SZ}-{abs(hash(server)) % 0xFFFFFF:06x}"
    files = tuple(
        BackupFile(
            path=f"{db}.sql.zst",
            database=db,
            raw_bytes=int(raw * frac),
            raw_sha256="r",
            stored_bytes=int(stored * frac),
            stored_sha256="s",
            durations={"dump": 60.0 * frac, "compress": 5.0 * frac},
        )
        for db, frac in dbs
    )
    return BackupManifest(
        backup_id=backup_id,
        server=server,
        location=location,
        kind=kind,
        method=method,
        flavor="mariadb",
        server_version="10.11.9",
        databases=tuple(db for db, _ in dbs),
        files=files,
        started_at=started,
        finished_at=started + timedelta(seconds=total),
        compression="zstd",
        status=status,
        durations={"dump": 60.0, f"upload:{location}": 30.0, f"verify:{location}": 10.0, "total": total},
        parent_id=parent,
        keep_forever=keep_forever,
    )


def binlog(server: str, seq: int, server_id: int = 1, location: str = "s3", hour: int = 0) -> BinlogManifest:
    at = T0 + timedelta(hours=hour)
    return BinlogManifest(
        server=server,
        location=location,
        file=f"mysql-bin.{seq:06d}",
        server_id=server_id,
        server_uuid=None,
        raw_bytes=1000,
        raw_sha256="r",
        stored_path=f"{server}/binlogs/mysql-bin.{seq:06d}.zst",
        stored_bytes=400,
        stored_sha256="s",
        compression="zstd",
        archived_at=at + timedelta(minutes=5),
        first_event_at=at,
        last_event_at=at + timedelta(minutes=4),
    )


def cert(
    server: str,
    backup_id: str,
    passed: bool,
    tested: datetime,
    durations: dict[str, float],
    location: str = "s3",
) -> RestoreCertificate:
    return RestoreCertificate(
        backup_id=backup_id,
        server=server,
        location=location,
        tested_at=tested,
        passed=passed,
        checks=(Check("row-counts", True), Check("checksums", passed, "" if passed else "orders differs")),
        durations=durations,
        source_version="10.11.9",
        target_version="10.11.9",
        recovery_point_seconds=3600.0,
    )


def proven(manifests: list[BackupManifest], passed: bool = True) -> list[RestoreCertificate]:
    """A restore certificate for each copy, tested an hour after it finished."""
    return [
        cert(m.server, m.backup_id, passed, m.finished_at + timedelta(hours=1), {}, m.location)
        for m in manifests
    ]


GB = 1_000_000_000
DB1_LAST_FINISHED = T0 + timedelta(days=5, seconds=100)
NOW = DB1_LAST_FINISHED + timedelta(hours=3)


def db1_backups(days: int = 6) -> list[BackupManifest]:
    """``days`` daily fulls at 3 locations; raw grows 10 MB/day from 1 GB; 4:1 compression; 100 s each."""
    out = []
    for day in range(days):
        raw = GB + day * 10_000_000
        for loc in ("local", "nas", "s3"):
            out.append(backup("db1", T0 + timedelta(days=day), loc, raw, raw // 4))
    return out


def db2_backups() -> list[BackupManifest]:
    """5 daily fulls at one location; the last one is truncated and slow."""
    sizes = [100_000, 100_000, 100_000, 100_000, 40_000]
    durations = [10.0, 10.0, 10.0, 10.0, 30.0]
    return [
        backup("db2", T0 - timedelta(days=8 - day), "local", s * 3, s, d, dbs=(("app", 1.0),))
        for day, (s, d) in enumerate(zip(sizes, durations, strict=True))
    ]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    b1 = db1_backups()
    last_id = b1[-1].backup_id
    return Catalog(
        backups=b1 + db2_backups(),
        binlogs=[binlog("db1", s, hour=s) for s in (1, 2, 3, 5, 6)]
        + [binlog("db1", 2, location="local", hour=2)]  # a second copy is not a second file
        + [binlog("db2", 10, 1, hour=1), binlog("db2", 11, 1, hour=2), binlog("db2", 1, 2, hour=3)],
        certificates=[
            cert(
                "db1", last_id, True, NOW - timedelta(hours=1), {"download": 10, "restore": 50, "verify": 5}
            ),
            cert("db1", b1[0].backup_id, False, T0 + timedelta(hours=5), {"download": 12, "restore": 70}),
        ],
        locations=LOCS,
        policies={"s3": {"keep_daily": 3}, "nas": {"keep_last": 2, "min_redundancy": 2}},
    )


@pytest.fixture(scope="module")
def report(catalog: Catalog):
    return build_report(catalog, NOW)


# --------------------------------------------------------------------------- backups and databases


def test_backup_rows_have_exact_sizes_ratios_and_speeds(report) -> None:
    b = report.backups
    assert list(b.columns) == list(BACKUPS_SCHEMA)
    assert len(b) == 18 + 5
    first = b[(b["server"] == "db1") & (b["location"] == "s3")].iloc[0]
    assert first["raw_bytes"] == GB
    assert first["stored_bytes"] == GB // 4
    assert first["ratio"] == pytest.approx(4.0)
    assert first["duration_s"] == 100.0
    assert first["throughput_mib_s"] == pytest.approx(GB / 2**20 / 100)  # 953.7 MiB in 100 s
    assert (first["dump_s"], first["upload_s"], first["verify_s"]) == (60.0, 30.0, 10.0)
    assert first["databases"] == 2
    assert first["location_kind"] == "s3" and bool(first["offsite"])
    # its only restore test FAILED: shown as such, never as verified or proven
    assert first["verdict"] == "failed" and not first["verified"] and not first["proven"]
    last = b[(b["server"] == "db1")].iloc[-1]
    assert bool(last["verified"]) and bool(last["proven"])
    assert str(b["finished_at"].dtype) == "datetime64[us, UTC]"


def test_restore_tested_marks_only_the_certified_copy(report, catalog: Catalog) -> None:
    b = report.backups
    tested = b[b["restore_tested"]]
    assert list(zip(tested["backup_id"], tested["location"], strict=True)) == [
        (catalog.backups[17].backup_id, "s3")
    ]  # the failed certificate does not count


def test_database_rows_are_per_backup_not_per_copy(report) -> None:
    d = report.databases
    assert len(d) == 6 * 2 + 5
    shop = d[(d["server"] == "db1") & (d["database"] == "shop")].iloc[0]
    assert shop["raw_bytes"] == 750_000_000
    assert shop["stored_bytes"] == 187_500_000
    assert shop["ratio"] == pytest.approx(4.0)
    assert shop["dump_s"] == pytest.approx(45.0)
    assert shop["throughput_mib_s"] == pytest.approx(750_000_000 / 2**20 / 45)


def test_stage_durations_fall_back_to_the_sum_over_files() -> None:
    m = backup("db9", T0, "local", 1000, 500)
    bare = BackupManifest(**{**m.__dict__, "durations": {}})
    r = build_report(Catalog([bare], locations=LOCS), T0 + timedelta(hours=1))
    row = r.backups.iloc[0]
    assert row["dump_s"] == pytest.approx(60.0)
    assert math.isnan(row["upload_s"])
    assert row["duration_s"] == 100.0  # finished - started


def test_failed_and_empty_backups_are_not_verified() -> None:
    failed = backup("db9", T0, "local", 1000, 500, status=BackupStatus.FAILED)
    empty = backup("db9", T0 + timedelta(days=1), "local", 0, 0)
    r = build_report(Catalog([failed, empty], locations=LOCS), T0 + timedelta(days=1, hours=1))
    assert not r.backups["verified"].any()
    fresh = r.freshness.iloc[0]
    assert not fresh["ok"] and pd.isna(fresh["newest_backup_id"])
    assert r.anomalies["kind"].tolist() == ["stale"]
    assert "no proven backup" in r.anomalies["detail"].iloc[0]


# --------------------------------------------------------------------------- growth and storage


def test_growth_is_least_squares_with_forecasts() -> None:
    b1 = db1_backups(days=11)  # 10 days of history: enough for a trend
    now = b1[-1].finished_at + timedelta(hours=3)
    g = build_report(Catalog(b1, certificates=proven(b1), locations=LOCS), now).growth
    assert list(g.columns) == list(GROWTH_SCHEMA)
    row = g[(g["server"] == "db1") & (g["database"] == "*")].iloc[0]
    assert row["method"] == "logical"
    assert row["backups"] == 11 and row["history_days"] == pytest.approx(10.0)
    assert (row["first_bytes"], row["last_bytes"]) == (GB, GB + 100_000_000)
    assert row["growth_bytes_per_day"] == pytest.approx(10_000_000, rel=1e-6)
    days_ahead = (now - b1[-1].finished_at).total_seconds() / 86400 + 5  # from the mean (day 5)
    assert row["forecast_30d"] == pytest.approx(GB + 10_000_000 * (days_ahead + 5 + 30), rel=1e-6)
    assert row["forecast_90d"] == pytest.approx(GB + 10_000_000 * (days_ahead + 5 + 90), rel=1e-6)
    assert row["stored_growth_bytes_per_day"] == pytest.approx(2_500_000, rel=1e-6)
    shop = g[(g["server"] == "db1") & (g["database"] == "shop")].iloc[0]
    assert shop["growth_bytes_per_day"] == pytest.approx(7_500_000, rel=1e-6)


def test_growth_needs_seven_days_of_history(report) -> None:
    """Backups 5 days apart (or minutes apart) give no growth and no forecast, and say so."""
    g = report.growth
    row = g[(g["server"] == "db1") & (g["database"] == "*")].iloc[0]
    assert row["history_days"] == pytest.approx(5.0)
    for col in ("growth_bytes_per_day", "forecast_30d", "forecast_90d", "stored_forecast_90d"):
        assert math.isnan(row[col]), col
    assert report.storage["storage_needed_90d"].isna().all()
    assert "not enough history (5 days of 7)" in report.summary_markdown()
    minutes = [backup("db9", T0 + timedelta(minutes=10 * i), "local", 1000 * (i + 1), 100) for i in range(5)]
    quick = build_report(Catalog(minutes, locations=LOCS), T0 + timedelta(hours=1)).growth
    assert quick["growth_bytes_per_day"].isna().all()  # not 45.8 GiB/day from minutes of data


def test_single_backup_has_no_slope_and_no_forecast() -> None:
    r = build_report(
        Catalog([backup("db9", T0, "local", 4000, 1000)], locations=LOCS), T0 + timedelta(hours=2)
    )
    row = r.growth[r.growth["database"] == "*"].iloc[0]
    assert math.isnan(row["growth_bytes_per_day"])
    assert math.isnan(row["forecast_90d"])


def test_storage_follows_each_location_policy() -> None:
    b1 = db1_backups(days=11)
    now = b1[-1].finished_at + timedelta(hours=3)
    cat = Catalog(
        b1,
        binlogs=[binlog("db1", s, hour=s) for s in (1, 2, 3)],
        certificates=proven(b1),
        locations=LOCS,
        policies={"s3": {"keep_daily": 3}, "nas": {"keep_last": 2, "min_redundancy": 2}},
    )
    report = build_report(cat, now)
    s = report.storage.set_index(["server", "location"])
    s3 = s.loc[("db1", "s3")]
    assert s3["backups"] == 11 and s3["retained_backups"] == 3  # keep_daily=3
    expected_retained = sum((GB + day * 10_000_000) // 4 for day in (8, 9, 10))
    assert s3["retained_bytes"] == expected_retained
    # retention keeps every binlog when no kept full records a binlog position
    assert s3["binlog_bytes"] == 3 * 400
    assert s3["policy"] == "keep 3 daily; min_redundancy 1"
    nas = s.loc[("db1", "nas")]
    assert nas["retained_backups"] == 2
    local = s.loc[("db1", "local")]
    assert local["retained_backups"] == 11 and local["policy"].startswith("none")
    factor = report.growth.query("server == 'db1' and database == '*'").iloc[0]
    growth90 = factor["stored_forecast_90d"] / factor["last_stored_bytes"]
    assert s3["storage_needed_90d"] == pytest.approx((expected_retained + 1200) * growth90)
    total = report.growth.query("server == 'db1' and database == '*'")["storage_needed_bytes"].iloc[0]
    assert total == pytest.approx(s.loc["db1"]["storage_needed_90d"].sum())
    kept = report.backups[report.backups["location"] == "s3"]
    assert kept["retained"].tolist() == [False] * 8 + [True] * 3


def test_retention_keeps_incremental_chains_and_keep_forever() -> None:
    one = (("a", 1.0),)
    inc = BackupKind.INCREMENTAL
    day1 = T0 + timedelta(days=1)
    full_old = backup("db9", T0, "local", 1000, 100, dbs=one, keep_forever=True)
    full = backup("db9", day1, "local", 1000, 100, dbs=one)
    inc1 = backup(
        "db9", day1 + timedelta(hours=6), "local", 100, 10, dbs=one, kind=inc, parent=full.backup_id
    )
    inc2 = backup(
        "db9", day1 + timedelta(hours=12), "local", 100, 10, dbs=one, kind=inc, parent=inc1.backup_id
    )
    orphan = backup("db9", T0 + timedelta(hours=6), "local", 100, 10, dbs=one, kind=inc, parent="gone")
    everything = [full_old, full, inc1, inc2, orphan]
    r = build_report(
        Catalog(
            everything,
            certificates=proven(everything),
            locations=LOCS,
            policies={"local": {"keep_last": 1}},
        ),
        T0 + timedelta(days=2),
    )
    row = r.storage.iloc[0]
    assert (row["backups"], row["retained_backups"], row["retained_bytes"]) == (5, 4, 220)


def test_min_redundancy_and_hourly_rules_and_dataclass_policies() -> None:
    from mysqlops import retention

    one = (("a", 1.0),)
    fulls = [backup("db9", T0 + timedelta(minutes=20 * i), "local", 1000, 100, dbs=one) for i in range(6)]
    now = T0 + timedelta(hours=3)

    def retained(policy: object) -> int:
        r = build_report(
            Catalog(fulls, certificates=proven(fulls), locations=LOCS, policies={"local": policy}), now
        )
        return int(r.storage.iloc[0]["retained_backups"])

    assert retained({"keep_hourly": 1}) == 1  # 02:00..03:40 is two hours, the newest N=1 hour
    assert retained({"keep_hourly": 2}) == 2
    assert retained({"keep_hourly": 1, "min_redundancy": 3}) == 3
    with pytest.raises(ConfigError, match=r"location 'local'.*refusing an empty policy"):
        retained({"min_redundancy": 3})  # refused as apply-retention refuses it
    assert retained(retention.RetentionPolicy(keep_last=4)) == 4


# --------------------------------------------------------------------------- 3-2-1, freshness, restores


def test_321_verdicts_and_reasons(catalog: Catalog) -> None:
    unproven = build_report(catalog, NOW).locations.set_index("server")
    assert unproven.loc["db2", "reason"].startswith("3-2-1: 3 copies of the data (the live server and 2")
    assert "copies: no proven full backup of this server" in unproven.loc["db2", "reason"]
    db2_last = db2_backups()[-1]
    catalog = dataclasses.replace(catalog, certificates=[*catalog.certificates, *proven([db2_last])])
    report = build_report(catalog, NOW)
    loc = report.locations.set_index("server")
    assert list(report.locations.columns) == list(LOCATIONS_SCHEMA)
    db1 = loc.loc["db1"]
    assert bool(db1["meets_321"])
    assert (db1["copies_min"], db1["copies_median"], db1["newest_copies"], db1["newest_kinds"]) == (
        3,
        3.0,
        3,
        2,
    )
    assert db1["locations"] == "local, nas, s3" and db1["kinds"] == "local, s3"
    assert db1["reason"].startswith("meets 3-2-1: 3 copies") and "off-site at s3" in db1["reason"]
    db2 = loc.loc["db2"]
    assert not db2["meets_321"]
    # the rule stated, then each unmet leg by name
    assert db2["reason"].startswith("short of 3-2-1: 3 copies of the data")
    assert "copies: the live server and 1 backup copy (local) make 2; need 3" in db2["reason"]
    assert "media: 1 kind of storage (local); need 2" in db2["reason"]
    assert "off-site: no off-site copy; need 1" in db2["reason"]


def test_321_local_plus_offsite_s3_meets_the_rule_and_unknown_locations_are_flagged() -> None:
    """The guide's set-up (a local copy and an off-site S3 copy) is 3-2-1: with the live server
    that is 3 copies, on 2 kinds of storage, 1 off-site."""
    two = [backup("db9", T0, loc, 1000, 100) for loc in ("local", "s3")]
    r = build_report(Catalog(two, certificates=proven(two[1:]), locations=LOCS), T0 + timedelta(hours=1))
    row = r.locations.iloc[0]
    assert row["meets_321"], row["reason"]
    assert row["reason"].startswith("meets 3-2-1") and "2 backup copies on 2 kinds" in row["reason"]
    one = [backup("db9", T0, "s3", 1000, 100)]
    r = build_report(Catalog(one, certificates=proven(one), locations=LOCS), T0 + timedelta(hours=1))
    reason = r.locations.iloc[0]["reason"]
    assert not r.locations.iloc[0]["meets_321"]
    assert "copies: the live server and 1 backup copy (s3) make 2; need 3" in reason
    assert "media: 1 kind of storage (s3)" in reason and "off-site: no" not in reason
    three = [backup("db9", T0, loc, 1000, 100) for loc in ("local", "s3", "tape")]
    r = build_report(Catalog(three, certificates=proven(three[:1]), locations=LOCS), T0 + timedelta(hours=1))
    row = r.locations.iloc[0]
    assert row["meets_321"] and "no location metadata for tape" in row["reason"]
    onsite_only = [backup("db9", T0, loc, 1000, 100) for loc in ("local", "nas", "s3")]
    r = build_report(
        Catalog(
            onsite_only,
            certificates=proven(onsite_only),
            locations=[LocationInfo(n, k) for n, k in [("local", "local"), ("nas", "nfs"), ("s3", "s3")]],
        ),
        T0,
    )
    assert not r.locations.iloc[0]["meets_321"] and r.locations.iloc[0]["reason"].endswith(
        "off-site: no off-site copy; need 1 (a location with offsite = true, e.g. S3)"
    )


def test_freshness_against_target(report) -> None:
    f = report.freshness.set_index("server")
    assert bool(f.loc["db1", "ok"]) and f.loc["db1", "age_s"] == pytest.approx(3 * 3600)
    assert not f.loc["db2", "ok"]
    assert f.loc["db2", "target_s"] == 26 * 3600
    assert f.loc["db1", "last_passed_restore_at"] == pd.Timestamp(NOW - timedelta(hours=1))
    db2 = db2_backups()
    relaxed = build_report(
        Catalog(db2, certificates=proven(db2[-1:]), locations=LOCS), NOW, freshness_target=timedelta(days=30)
    )
    assert relaxed.freshness["ok"].all()
    never_tested = build_report(Catalog(db2, locations=LOCS), NOW, freshness_target=timedelta(days=30))
    assert not never_tested.freshness["ok"].any()  # complete backups, but none ever proven


def test_freshness_is_about_the_newest_proven_backup() -> None:
    bs = [backup("db9", T0 + timedelta(days=i), "local", 3000, 1000) for i in range(4)]
    now = bs[-1].finished_at + timedelta(hours=1)  # a backup finished an hour ago...
    certs = [
        *proven([bs[1]]),
        cert("db9", bs[2].backup_id, True, bs[2].finished_at + timedelta(hours=1), {}, "local"),
        cert("db9", bs[2].backup_id, False, bs[2].finished_at + timedelta(hours=2), {}, "local"),  # demoted
    ]
    r = build_report(Catalog(bs, certificates=certs, locations=LOCS), now)
    f = r.freshness.iloc[0]
    assert f["newest_backup_id"] == bs[1].backup_id  # ...but the newest PROVEN one is 2 days older
    assert f["newest_unproven_id"] == bs[3].backup_id and not f["ok"]
    assert f["age_s"] == pytest.approx((now - bs[1].finished_at).total_seconds())
    assert r.backups.set_index("backup_id").loc[bs[2].backup_id, "verdict"] == "failed"
    stale = r.anomalies[r.anomalies["kind"] == "stale"].iloc[0]
    assert stale["backup_id"] == bs[1].backup_id and "newest proven backup is 2d" in stale["detail"]
    text = r.summary_markdown()
    assert "newest proven" in text and "## Copies not usable" in text
    assert f"{bs[2].backup_id} at local: newest restore test FAILED" in text


def test_catalog_verdicts_mark_damaged_copies() -> None:
    copies = [backup("db9", T0, loc, 1000, 100) for loc in ("local", "s3")]
    verdicts = {
        ("local", "db9", copies[0].backup_id): Verdict.DAMAGED,
        ("s3", "db9", copies[0].backup_id): Verdict.PASSED,
    }
    r = build_report(Catalog(copies, locations=LOCS, verdicts=verdicts), T0 + timedelta(hours=1))
    b = r.backups.set_index("location")
    assert b.loc["local", "verdict"] == "damaged" and not b.loc["local", "verified"]
    assert bool(b.loc["s3", "proven"])
    row = r.locations.iloc[0]
    assert row["newest_copies"] == 1  # the damaged copy is no copy
    assert "copies: the live server and 1 backup copy (s3) make 2; need 3" in row["reason"]


def test_restores_frame(report) -> None:
    r = report.restores
    assert len(r) == 2
    ok = r[r["passed"]].iloc[0]
    assert ok["restore_s"] == 65.0 and ok["recovery_point_s"] == 3600.0 and ok["checks_failed"] == 0
    bad = r[~r["passed"]].iloc[0]
    assert bad["restore_s"] == 82.0 and bad["failed_checks"] == "checksums"


# --------------------------------------------------------------------------- anomalies


def test_anomalies_flag_truncated_slow_gaps_and_stale(report, catalog: Catalog) -> None:
    a = report.anomalies
    assert list(a.columns) == list(ANOMALIES_SCHEMA)
    got = sorted(zip(a["server"], a["kind"], strict=True))
    assert got == sorted(
        [
            ("db1", "binlog-gap"),
            ("db2", "size-drop"),
            ("db2", "binlog-gap"),
            ("db2", "stale"),
        ]
    )
    drop = a[a["kind"] == "size-drop"].iloc[0]
    assert drop["value"] == 40_000 and drop["expected"] == 100_000
    assert drop["backup_id"] == db2_backups()[-1].backup_id
    assert "previous 4 full backups" in drop["detail"]
    # 10 s -> 30 s is 3x but only 20 s longer: noise, not an anomaly (min_duration_jump 1 min)
    assert a[a["kind"] == "duration-jump"].empty
    strict = build_report(catalog, NOW, min_duration_jump=timedelta(seconds=10)).anomalies
    jump = strict[strict["kind"] == "duration-jump"].iloc[0]
    assert (jump["value"], jump["expected"]) == (30.0, 10.0)
    gap = a[(a["server"] == "db1") & (a["kind"] == "binlog-gap")].iloc[0]
    assert gap["backup_id"] == "mysql-bin.000005" and gap["value"] == 1
    assert "missing binlog sequence 4 between mysql-bin.000003 and mysql-bin.000005" in gap["detail"]
    restart = a[(a["server"] == "db2") & (a["kind"] == "binlog-gap")].iloc[0]
    assert "restarted" in restart["detail"] and "server_id 2" in restart["detail"]


def test_size_jumps_up_are_anomalies_and_short_duration_noise_is_not() -> None:
    sizes = [100_000, 100_000, 100_000, 430_000]  # a 4.3x jump
    seconds = [3.0, 3.0, 3.0, 6.0]  # 3 s -> 6 s: twice as long, 3 s longer
    bs = [
        backup("db9", T0 + timedelta(days=i), "local", s * 2, s, d, dbs=(("a", 1.0),))
        for i, (s, d) in enumerate(zip(sizes, seconds, strict=True))
    ]
    a = build_report(Catalog(bs, locations=LOCS), T0 + timedelta(days=3, hours=1)).anomalies
    assert a["kind"].tolist() == ["size-jump", "stale"]
    jump = a.iloc[0]
    assert jump["value"] == 430_000 and jump["expected"] == 100_000
    assert "419.9 KiB is 4.3× the median 97.7 KiB" in jump["detail"]


def test_anomaly_window_and_ratios() -> None:
    sizes = [100, 100, 100, 20, 20, 15]
    bs = [
        backup("db9", T0 + timedelta(days=i), "local", s * 2, s, dbs=(("a", 1.0),))
        for i, s in enumerate(sizes)
    ]
    now = T0 + timedelta(days=5, hours=1)
    wide = build_report(Catalog(bs, locations=LOCS), now, window=5).anomalies
    assert wide[wide["kind"] == "size-drop"]["value"].tolist() == [20, 20, 15]
    narrow = build_report(Catalog(bs, locations=LOCS), now, window=2).anomalies
    assert narrow[narrow["kind"] == "size-drop"]["value"].tolist() == [20, 20]  # 15 vs median(20, 20)
    lax = build_report(Catalog(bs, locations=LOCS), now, size_drop_ratio=0.1).anomalies
    assert lax[lax["kind"] == "size-drop"].empty


def test_methods_are_compared_separately() -> None:
    logical = [backup("db9", T0 + timedelta(days=i), "local", 3000, 1000) for i in range(3)]
    physical = backup(
        "db9", T0 + timedelta(days=3), "local", 9000, 300, method=BackupMethod.PHYSICAL, dbs=(("x", 1.0),)
    )
    everything = [*logical, physical]
    r = build_report(
        Catalog(everything, certificates=proven(everything), locations=LOCS), T0 + timedelta(days=3, hours=1)
    )
    assert r.anomalies.empty
    assert sorted(r.growth.query("database == '*'")["method"]) == ["logical", "physical"]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError):
        build_report(Catalog([]), datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ConfigError):
        build_report(Catalog([]), NOW, window=0)


# --------------------------------------------------------------------------- empty, JSON, outputs


def test_empty_catalog() -> None:
    r = build_report(Catalog([]), NOW)
    assert r.empty and r.message == EMPTY_MESSAGE
    for name, df in r.frames().items():
        assert df.empty, name
        assert len(df.columns) > 0, name
    assert list(r.backups.columns) == list(BACKUPS_SCHEMA)
    assert "no backups in the catalog" in r.summary_markdown()
    assert render_charts(r) == {}
    assert json_records(r.backups) == []


def test_binlogs_without_backups_still_reported() -> None:
    r = build_report(Catalog([], binlogs=[binlog("db9", 1), binlog("db9", 3)]), NOW)
    assert r.empty
    assert sorted(r.anomalies["kind"]) == ["binlog-gap", "stale"]
    assert r.storage.iloc[0]["binlog_bytes"] == 800


def test_json_records_are_json_safe(report) -> None:
    for name, df in report.frames().items():
        records = json_records(df)
        text = json.dumps(records, allow_nan=False)
        assert "NaN" not in text, name
        assert len(records) == len(df)
    row = json_records(report.backups)[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row["finished_at"])
    assert row["parent_id"] is None


def test_summary_markdown_uses_human_numbers(report) -> None:
    text = report.summary_markdown()
    assert "| db1 |" in text and "STALE" in text
    assert "1001.4 MiB" in text  # 1.05e9 raw bytes
    assert "1m 40s" in text  # 100 s
    assert "size-drop **db2**" in text


def _check_outputs(fs, base: str, paths: list[str]) -> None:
    names = {p.rsplit("/", 1)[1] for p in paths}
    assert {"backups.csv", "anomalies.csv", "report.html", "summary.md", "sizes.png"} <= names
    csv = fs.cat_file(f"{base}/backups.csv").decode()
    assert csv.splitlines()[0] == ",".join(BACKUPS_SCHEMA)
    page = fs.cat_file(f"{base}/report.html").decode()
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(embedded) == 2  # sizes and durations; the 2 restore tests are a table, not a chart
    assert "Restore test duration</h3><p class='note'>Fewer than 3 points: a table instead" in page
    assert all(base64.b64decode(e).startswith(PNG_MAGIC) for e in embedded)
    assert fs.cat_file(f"{base}/sizes.png").startswith(PNG_MAGIC)


def test_write_outputs_to_memory_fs(report) -> None:
    fs = fsspec.filesystem("memory")
    base = "/test-report-outputs"
    try:
        paths = write_outputs(report, fs, base + "/")
        _check_outputs(fs, base, paths)
    finally:
        if fs.exists(base):
            fs.rm(base, recursive=True)


def test_write_outputs_to_local_dir(report, tmp_path) -> None:
    fs = fsspec.filesystem("file")
    base = str(tmp_path / "out")
    paths = write_outputs(report, fs, base)
    _check_outputs(fs, base, paths)
    parquet = [p for p in paths if p.endswith(".parquet")]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert parquet == []
    else:
        assert len(parquet) == 9  # one per frame (recovery included)


def test_write_outputs_of_empty_report(tmp_path) -> None:
    r = build_report(Catalog([]), NOW)
    paths = write_outputs(r, fsspec.filesystem("file"), str(tmp_path))
    assert not any(p.endswith(".png") for p in paths)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<table") == 0 and page.count("(0 rows)</summary>") == 9


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**3, "5.0 GiB"),
        (1024**2 - 1, "1.0 MiB"),
        (3.5 * 1024**4, "3.5 TiB"),
        (-2048, "-2.0 KiB"),
        (float("nan"), "n/a"),
    ],
)
def test_human_bytes(n: float, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("s", "text"),
    [
        (4.2, "4.2s"),
        (42, "42s"),
        (62, "1m 02s"),
        (59.6, "1m 00s"),
        (3725, "1h 02m"),
        (3599.9, "1h 00m"),
        (27 * 3600, "1d 03h"),
        (-90, "-1m 30s"),
        (float("nan"), "n/a"),
    ],
)
def test_human_duration(s: float, text: str) -> None:
    assert human_duration(s) == text


def test_binlog_record_without_sequence_only_in_estimates() -> None:
    """Retention refuses a binlog file name without a numeric sequence (it cannot place it in the
    chain); the report's estimates take it as a record without a sequence (which retention keeps)."""
    odd = dataclasses.replace(binlog("db1", 1), file="mysql-bin.index-copy")
    with pytest.raises(ConfigError):
        odd.to_record()
    record = odd.to_record(strict=False)
    assert record.binlog_sequence is None and record.stored_bytes == odd.stored_bytes
    assert binlog("db1", 7).to_record(strict=False).binlog_sequence == 7
