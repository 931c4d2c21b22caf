"""One recovery-window definition (``mysqlops.recovery_window``) for inventory, report and metrics."""

from __future__ import annotations

from datetime import timedelta

from mysqlops import catalog, inventory, metrics
from mysqlops.catalog import LocationScan
from mysqlops.model import Location
from mysqlops.recovery_window import recovery_windows
from mysqlops.report import Catalog, LocationInfo, build_report
from tests.unit.test_inventory import T0, backup, binlog, certificate


def test_recovery_window_has_one_definition() -> None:
    """The same catalog fed to the inventory, the report and the metrics gives the same window.

    db1: an untested oldest backup (not a restore point), a failed one, a backup proven at
    local and proven by copy at s3, a newer proven one; binlogs 3-4 after it, 5 missing, 6
    later (a gap stops point-in-time recovery: the window ends with binlog 4, not 6). db2:
    only an untested backup (no window anywhere). db3: binlogs only."""
    untested = backup(1, 1, "20261101T010000Z-aaaaaa")
    failed = backup(2, 1, "20261101T020000Z-bbbbbb")
    proven_local = backup(4, 2, "20261101T040000Z-cccccc")
    proven_s3 = backup(4, 2, "20261101T040000Z-cccccc", location="s3")
    newest = backup(10, 3, "20261101T100000Z-dddddd", location="s3")
    only_untested = backup(5, 1, "20261101T050000Z-eeeeee", server="db2")
    local = LocationScan(
        Location("local", "file:///b"),
        backups=[untested, failed, proven_local, only_untested],
        binlogs=[binlog(2, 5), binlog(3, 11), binlog(4, 12), binlog(6, 14), binlog(1, 3, server="db3")],
        certificates=[certificate(failed, passed=False), certificate(proven_local)],
    )
    s3 = LocationScan(
        Location("s3", "s3://b/x"),
        backups=[proven_s3, newest],
        binlogs=[binlog(3, 11, location="s3")],
        certificates=[certificate(newest)],
    )
    scans = [local, s3]
    now = T0 + timedelta(hours=20)

    # the definition itself
    windows = recovery_windows(
        [m for s in scans for m in s.backups], [b for s in scans for b in s.binlogs], catalog.verdicts(scans)
    )
    w = windows["db1"]
    oldest, newest_at = proven_local.finished_at, T0 + timedelta(hours=12)
    assert (w.oldest_at, w.newest_at, w.from_binlogs) == (oldest, newest_at, True)
    assert w.pitr_from is not None and w.pitr_from.backup_id == proven_local.backup_id
    assert w.gaps == (5,) and w.untested == 1
    assert not windows["db2"].restorable and windows["db2"].untested == 1
    assert not windows["db3"].restorable

    # the inventory
    inv = inventory.build(scans, now=now)
    iw = inv.servers["db1"].window
    assert (iw["oldest_at"], iw["newest_at"]) == (oldest, newest_at)
    assert iw["window"] == "8h 00m"
    assert inv.servers["db2"].window["window"].startswith("nothing restorable")
    assert inv.servers["db3"].window["window"].startswith("nothing restorable")

    # the report (same scans, as report.read builds its catalog)
    report = build_report(
        Catalog(
            backups=[m for s in scans for m in s.backups],
            binlogs=[b for s in scans for b in s.binlogs],
            certificates=[c for s in scans for c in s.certificates],
            locations=[LocationInfo("local", "filesystem"), LocationInfo("s3", "s3", offsite=True)],
            verdicts=catalog.verdicts(scans),
        ),
        now,
    )
    rw = report.recovery.set_index("server")
    assert rw.loc["db1", "oldest_at"].to_pydatetime() == oldest
    assert rw.loc["db1", "newest_at"].to_pydatetime() == newest_at
    assert rw.loc["db1", "window_s"] == (newest_at - oldest).total_seconds()
    assert rw.loc["db1", "oldest_backup_id"] == proven_local.backup_id and rw.loc["db1", "gaps"] == 1
    assert rw.loc[["db2", "db3"], "oldest_backup_id"].isna().all()
    assert "## Recovery window" in report.summary_markdown()

    # the metrics (from the report)
    samples = {(s.server, s.name): s.value for s in metrics.recovery_window_samples(report)}
    assert samples == {
        ("db1", "recovery_window_oldest_timestamp_seconds"): oldest.timestamp(),
        ("db1", "recovery_window_newest_timestamp_seconds"): newest_at.timestamp(),
        ("db1", "recovery_window_seconds"): (newest_at - oldest).total_seconds(),
    }
