"""The report's storage forecast and apply-retention share one engine: ``retention.plan``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from mysqlops.errors import ConfigError, RetentionError
from mysqlops.manifest import BackupManifest, RestoreCertificate, copy_verdicts
from mysqlops.model import BackupKind
from mysqlops.report import Catalog, LocationInfo, build_report
from mysqlops.report.forecast import retained_by_policy
from mysqlops.retention import RetentionPolicy
from mysqlops.retention.plan import plan
from tests.unit.test_report import backup, binlog, cert

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
LOCS = (LocationInfo("local", "local"), LocationInfo("s3", "s3", offsite=True))
FIELDS = {
    "keep_last": 3,
    "keep_hourly": 2,
    "keep_daily": 4,
    "keep_weekly": 3,
    "keep_monthly": 5,
    "keep_yearly": 2,
    "keep_within": "7d",
}


def history() -> tuple[list[BackupManifest], list[RestoreCertificate]]:
    """Two years of backups at two locations: monthly, then weekly, daily, hourly; some unproven,
    one restore test failed, an incremental chain, a keep_forever."""
    one = (("a", 1.0),)
    times = [NOW - timedelta(days=30 * m) for m in range(24, 2, -1)]
    times += [NOW - timedelta(weeks=w, hours=5) for w in range(10, 1, -1)]
    times += [NOW - timedelta(days=d, hours=3) for d in range(9, 0, -1)]
    times += [NOW - timedelta(hours=h) for h in range(5, 0, -1)]
    manifests: list[BackupManifest] = []
    certs: list[RestoreCertificate] = []
    for i, at in enumerate(times):
        for loc in ("local", "s3"):
            m = backup("db1", at, loc, 10_000 + 100 * i, 1_000 + 10 * i, dbs=one, keep_forever=i == 3)
            manifests.append(m)
            if i % 5 == 4:
                continue  # never tested: unproven
            certs.append(cert("db1", m.backup_id, i != 7, at + timedelta(minutes=30), {"total": 5.0}, loc))
    full = manifests[-4]
    inc = backup(
        "db1",
        NOW - timedelta(minutes=30),
        "s3",
        500,
        50,
        dbs=one,
        kind=BackupKind.INCREMENTAL,
        parent=full.backup_id,
    )
    manifests.append(inc)
    return manifests, certs


def kept_by_retention(
    manifests: list[BackupManifest], certs: list[RestoreCertificate], location: str, policy: RetentionPolicy
) -> set[str]:
    verdicts = copy_verdicts(manifests, certs)
    records = [
        m.to_record(
            proven=verdicts[(m.location, m.server, m.backup_id)].proven,
            verdict=verdicts[(m.location, m.server, m.backup_id)].value,
        )
        for m in manifests
        if m.location == location
    ]
    return {d.record.backup_id for d in plan(records, policy, NOW).keep}


def test_report_and_retention_agree_on_every_policy() -> None:
    """Every combination of the policy fields, each with min_redundancy 1 and 3: what the report
    counts as retained is exactly what retention.plan keeps. All 254 policies go through the
    report's retention step; one policy per field (and all fields) through the whole report,
    down to ``backups.retained`` and the storage bytes."""
    manifests, certs = history()
    verdicts = copy_verdicts(manifests, certs)
    sizes = {m.backup_id: m.stored_bytes for m in manifests if m.location == "s3"}
    names = list(FIELDS)
    checked = 0
    for size in range(1, len(names) + 1):
        for combo in itertools.combinations(names, size):
            for redundancy in (1, 3):
                mapping: dict[str, object] = {k: FIELDS[k] for k in combo} | {"min_redundancy": redundancy}
                expected = kept_by_retention(manifests, certs, "s3", RetentionPolicy.from_mapping(mapping))
                got = retained_by_policy(manifests, [], verdicts, {"s3": mapping}, NOW)["s3"].keep
                assert {bid for _, bid in got} == expected, mapping
                checked += 1
                if size not in (1, len(names)):
                    continue
                report = build_report(
                    Catalog(manifests, certificates=certs, locations=LOCS, policies={"s3": mapping}), NOW
                )
                b = report.backups
                at_s3 = b[b["location"] == "s3"]
                assert set(at_s3.loc[at_s3["retained"], "backup_id"]) == expected, mapping
                row = report.storage.set_index("location").loc["s3"]
                assert row["retained_backups"] == len(expected), mapping
                assert row["retained_bytes"] == sum(sizes[i] for i in expected), mapping
                assert b.loc[b["location"] == "local", "retained"].all()  # no policy there
    assert checked == 2 * (2 ** len(names) - 1)


def test_keep_within_has_one_meaning_and_bare_numbers_are_refused() -> None:
    manifests, certs = history()
    # "7d" is seven days in both (it used to be days in the report and seconds in retention)
    report = build_report(
        Catalog(manifests, certificates=certs, locations=LOCS, policies={"s3": {"keep_within": "7d"}}), NOW
    )
    kept = report.backups[(report.backups["location"] == "s3") & report.backups["retained"]]
    week = kept[kept["finished_at"] >= NOW - timedelta(days=7)]
    assert len(week) == len(
        [m for m in manifests if m.location == "s3" and m.finished_at >= NOW - timedelta(days=7)]
    )
    assert report.storage.set_index("location").loc["s3", "policy"] == "keep within 7d; min_redundancy 1"
    for bare in (7, 7.5, "7"):
        with pytest.raises(
            RetentionError, match=r"keep_within: .* has no unit; write it with one, e.g. '7(\.5)?d'"
        ):
            RetentionPolicy.from_mapping({"keep_within": bare})
        with pytest.raises(ConfigError, match=r"location 's3'.*keep_within: .* has no unit"):
            build_report(Catalog(manifests, locations=LOCS, policies={"s3": {"keep_within": bare}}), NOW)
    for text in ("1y", "6mo"):  # no fixed length: refused by both
        with pytest.raises(RetentionError, match="no fixed length"):
            RetentionPolicy.from_mapping({"keep_within": text})
        with pytest.raises(ConfigError, match="no fixed length"):
            build_report(Catalog(manifests, locations=LOCS, policies={"s3": {"keep_within": text}}), NOW)


def test_report_takes_the_policy_block_apply_retention_uses() -> None:
    blocks = pytest.importorskip("blocks")
    manifests, certs = history()
    block = blocks.RetentionPolicyBlock(keep_daily=4, keep_within="36h")
    report = build_report(Catalog(manifests, certificates=certs, locations=LOCS, policies={"s3": block}), NOW)
    expected = kept_by_retention(manifests, certs, "s3", block.to_policy())
    b = report.backups
    assert set(b.loc[(b["location"] == "s3") & b["retained"], "backup_id"]) == expected


def test_binlogs_retained_as_retention_keeps_them() -> None:
    manifests, certs = history()
    logs = [binlog("db1", s, location="s3", hour=s) for s in range(1, 4)]
    report = build_report(
        Catalog(
            manifests, binlogs=logs, certificates=certs, locations=LOCS, policies={"s3": {"keep_last": 1}}
        ),
        NOW,
    )
    # no kept full records a binlog position: retention keeps every binlog, and so does the report
    assert report.storage.set_index("location").loc["s3", "binlog_bytes"] == 3 * 400
