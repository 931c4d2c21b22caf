"""Benchmark: build_report over 10,000 backups (each stored at 2 locations) + binlogs + certificates.

Target: build_report < 3 s. Run: ``uv run python bench/bench_report.py [--backups N]``.
Writes bench/results/report.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from mysqlops.manifest import BackupFile, BackupManifest, BinlogManifest, Check, RestoreCertificate
from mysqlops.model import BackupKind, BackupMethod
from mysqlops.report import Catalog, LocationInfo, build_report, json_records, render_charts

TARGET_S = 3.0
START = datetime(2025, 1, 1, 1, 0, tzinfo=UTC)
LOCATIONS = (LocationInfo("local", "local"), LocationInfo("s3-eu", "s3", offsite=True))
DATABASES = ("shop", "crm", "billing", "audit")


def make_catalog(n_backups: int, servers: int, binlogs_per_day: int, seed: int = 7) -> Catalog:
    rng = random.Random(seed)
    days = n_backups // servers
    backups: list[BackupManifest] = []
    binlogs: list[BinlogManifest] = []
    certs: list[RestoreCertificate] = []
    for s in range(servers):
        server = f"db{s:03d}"
        base = rng.randint(1, 50) * 10**9
        growth = rng.randint(0, 50) * 10**6
        seq = 1
        for day in range(days):
            started = START + timedelta(days=day, minutes=s)
            raw = base + growth * day
            if rng.random() < 0.002:
                raw //= 5  # a truncated dump now and then
            total = raw / 80e6 * rng.uniform(0.9, 1.1) * (3 if rng.random() < 0.002 else 1)
            backup_id = f"{started:%Y%m%dT%H%M%SZ}-{s:06x}"
            for loc in LOCATIONS:
                files = tuple(
                    BackupFile(
                        path=f"{db}.sql.zst",
                        database=db,
                        raw_bytes=raw // len(DATABASES),
                        raw_sha256="0" * 64,
                        stored_bytes=raw // len(DATABASES) // 3,
                        stored_sha256="1" * 64,
                        durations={"dump": total * 0.6 / len(DATABASES), f"upload:{loc.name}": total * 0.1},
                    )
                    for db in DATABASES
                )
                backups.append(
                    BackupManifest(
                        backup_id=backup_id,
                        server=server,
                        location=loc.name,
                        kind=BackupKind.FULL,
                        method=BackupMethod.LOGICAL,
                        flavor="mariadb",
                        server_version="10.11.9",
                        databases=DATABASES,
                        files=files,
                        started_at=started,
                        finished_at=started + timedelta(seconds=total),
                        compression="zstd",
                        durations={"dump": total * 0.6, f"upload:{loc.name}": total * 0.3, "total": total},
                    )
                )
            for hour in range(binlogs_per_day):
                if rng.random() < 0.001:
                    seq += 1  # a lost binlog
                at = started + timedelta(hours=hour * 24 / binlogs_per_day)
                binlogs.append(
                    BinlogManifest(
                        server=server,
                        location="s3-eu",
                        file=f"mysql-bin.{seq:06d}",
                        server_id=s + 1,
                        server_uuid=None,
                        raw_bytes=100 * 10**6,
                        raw_sha256="0" * 64,
                        stored_path=f"{server}/binlogs/mysql-bin.{seq:06d}.zst",
                        stored_bytes=30 * 10**6,
                        stored_sha256="1" * 64,
                        compression="zstd",
                        archived_at=at + timedelta(minutes=1),
                        first_event_at=at,
                        last_event_at=at + timedelta(minutes=59),
                    )
                )
                seq += 1
            if day % 7 == 0:
                certs.append(
                    RestoreCertificate(
                        backup_id=backup_id,
                        server=server,
                        location="s3-eu",
                        tested_at=started + timedelta(hours=3),
                        passed=rng.random() > 0.02,
                        checks=(Check("row-counts", True), Check("checksums", True)),
                        durations={"download": total * 0.2, "restore": total * 2.5, "verify": total * 0.3},
                        source_version="10.11.9",
                        target_version="10.11.9",
                        recovery_point_seconds=3600.0,
                    )
                )
    return Catalog(
        backups=backups,
        binlogs=binlogs,
        certificates=certs,
        locations=LOCATIONS,
        policies={
            "local": {"keep_last": 7},
            "s3-eu": {"keep_daily": 14, "keep_weekly": 8, "keep_monthly": 12},
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=40)
    parser.add_argument("--binlogs-per-day", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    t = time.perf_counter()
    catalog = make_catalog(args.backups, args.servers, args.binlogs_per_day)
    generate_s = time.perf_counter() - t
    now = max(m.finished_at for m in catalog.backups) + timedelta(hours=2)

    runs = []
    report = None
    for _ in range(args.runs):
        t = time.perf_counter()
        report = build_report(catalog, now)
        runs.append(time.perf_counter() - t)
    assert report is not None

    t = time.perf_counter()
    records = {name: json_records(df) for name, df in report.frames().items()}
    json_s = time.perf_counter() - t
    t = time.perf_counter()
    charts = render_charts(report)
    charts_s = time.perf_counter() - t

    best = min(runs)
    result = {
        "benchmark": "build_report",
        "backups": len({(m.server, m.backup_id) for m in catalog.backups}),
        "backup_manifests": len(catalog.backups),
        "files": sum(len(m.files) for m in catalog.backups),
        "binlogs": len(catalog.binlogs),
        "certificates": len(catalog.certificates),
        "servers": args.servers,
        "build_report_s": {
            "best": round(best, 3),
            "median": round(statistics.median(runs), 3),
            "runs": [round(r, 3) for r in runs],
        },
        "target_s": TARGET_S,
        "meets_target": best < TARGET_S,
        "json_records_all_frames_s": round(json_s, 3),
        "render_charts_s": round(charts_s, 3),
        "generate_catalog_s": round(generate_s, 3),
        "rows": {name: len(df) for name, df in report.frames().items()},
        "anomalies": report.anomalies["kind"].value_counts().to_dict(),
        "chart_bytes": {k: len(v) for k, v in charts.items()},
        "json_records": sum(len(v) for v in records.values()),
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "machine": platform.machine(),
        "measured_at": datetime.now(UTC).isoformat(),
    }
    out = Path(__file__).resolve().parent / "results" / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"build_report over {result['backups']} backups ({result['backup_manifests']} manifests, "
        f"{result['files']} files), {result['binlogs']} binlogs, {result['certificates']} certificates: "
        f"best {best:.3f} s, median {statistics.median(runs):.3f} s (target < {TARGET_S} s: "
        f"{'ok' if best < TARGET_S else 'MISSED'})"
    )
    print(
        f"json_records all frames {json_s:.3f} s; render_charts {charts_s:.3f} s; anomalies {result['anomalies']}"
    )
    print(f"wrote {out}")
    return 0 if best < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
