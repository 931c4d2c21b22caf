"""Backup and restore-test speed and memory, side by side with the plain tools (issues 3, 5).

    uv run python -m bench.bench_backup --gb 1          # ~1 GB database
    uv run python -m bench.bench_backup --gb 4 --memory-only   # 4x larger: peak memory only

Measured in one run on one sandbox server:
  dump > /dev/null | dump | gzip -6 > file | dump | zstd -3 -T2 > file | mysqlops backup to
  local dir + S3 (separate moto process) | plain `mariadb < dump.sql` into a default-configured
  server | mysqlops restore test (download, load into a tuned scratch server, verify).
The mysqlops runs execute in child processes so their peak RSS is theirs alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import CpuMeter, dir_size, start_moto, timed_shell, write_result
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.tools.client import client_option_file

CHILD = r"""
import json, resource, sys, time
from mysqlops import backup, catalog, restore
from mysqlops.streams.compression import codec
from mysqlops.model import Location, ServerSpec
from mysqlops.runs import RunContext
args = json.loads(sys.stdin.read())  # never argv: it holds a password
spec = ServerSpec(**args["spec"])
locs = [Location(**l) for l in args["locations"]]
t = time.monotonic()
if args["mode"] == "backup":
    r = backup.run_backup(backup.BackupRequest(spec, tuple(locs), compression=codec("zstd")), RunContext(staging_dir=args["staging"]))
    assert r.ok, r.locations
    out = {"backup_id": r.manifest.backup_id, "raw": r.manifest.raw_bytes, "stored": r.manifest.stored_bytes,
           "durations": r.manifest.durations}
else:
    scans = catalog.scan(locs)
    loc, m = catalog.find_backup(scans, None, args["backup_id"])[0]
    cert = restore.restore_test_copy(loc, m, RunContext(staging_dir=args["staging"]), sandbox_dir=args["sandbox_dir"])
    assert cert.passed, [c for c in cert.checks if not c.passed]
    out = {"durations": cert.durations}
out["wall"] = time.monotonic() - t
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def child(payload: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0, help="approximate dump size in GB")
    ap.add_argument("--memory-only", action="store_true", help="only the mysqlops backup (peak memory)")
    ap.add_argument("--dir", default="/tmp", help="where sandboxes and files go")
    ap.add_argument("--skip-restore", action="store_true", help="skip the (slow) restore comparison")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mysqlops-bench-", dir=args.dir))
    rows = int(args.gb * 2_900_000)  # ~370 bytes of dump per row
    server = sandbox.start_server(
        work,
        "src",
        server_id=1,
        extra_options=[
            "--innodb-buffer-pool-size=2G",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-log-file-size=1G",
        ],
    )
    moto, s3_url = start_moto(work)
    results: dict[str, object] = {"gb": args.gb, "rows": rows}
    try:
        t = time.monotonic()
        from mysqlops.sampledata import create_bulk_table

        with db.session(server.spec(), read_timeout=3600) as conn:
            create_bulk_table(conn, "bench", "t", rows, payload_bytes=256)
        results["generate_s"] = round(time.monotonic() - t, 1)
        opt = work / "client.cnf"
        opt.write_text(client_option_file(server.spec()))
        opt.chmod(0o600)
        dump = f"mariadb-dump --defaults-extra-file={opt} --single-transaction --quick --routines --triggers --events --hex-blob --master-data=2 --gtid --databases bench"
        meter_pids = {"mariadbd": server.pid, "moto": moto.pid}
        cpu: dict[str, dict[str, float]] = {}

        def shell(name: str, cmd: str) -> float:
            with CpuMeter(**meter_pids) as m:
                timed_shell(cmd)
            cpu[name] = {**m.cpu, "total": m.total}
            return round(m.wall, 2)

        if not args.memory_only:
            results["dump_devnull_s"] = shell("dump > /dev/null", f"{dump} > /dev/null")
            results["dump_gzip_s"] = shell("dump | gzip -6", f"{dump} | gzip -6 > {work}/d.sql.gz")
            results["dump_zstd_s"] = shell(
                "dump | zstd -3 -T2", f"{dump} | zstd -q -3 -T2 > {work}/d.sql.zst"
            )
            results["dump_raw_bytes"] = int(
                subprocess.run(
                    f"zstd -dc {work}/d.sql.zst | wc -c", shell=True, capture_output=True, text=True
                ).stdout
            )
            results["zstd_file_bytes"] = os.path.getsize(work / "d.sql.zst")
            os.unlink(work / "d.sql.gz")
        locations = [
            {"name": "local", "url": f"file://{work}/backups"},
            {
                "name": "s3",
                "url": "s3://bench/m",
                "storage_options": {
                    "key": "bench",
                    "secret": "bench",
                    "client_kwargs": {"endpoint_url": s3_url},
                },
            },
        ]
        spec = {
            "name": "src",
            "host": "127.0.0.1",
            "port": server.port,
            "user": "root",
            "password": server.root_password,
        }
        staging = work / "staging"
        staging.mkdir()
        if not args.memory_only:
            # the same backup to the local directory only: what the S3 endpoint on this machine costs
            with CpuMeter(**meter_pids) as m:
                local_only = child(
                    {"mode": "backup", "spec": spec, "locations": locations[:1], "staging": str(staging)}
                )
            cpu["mysqlops → local"] = {**m.cpu, "total": m.total}
            results["mysqlops_backup_local_only"] = local_only
        with CpuMeter(**meter_pids) as m:
            ours = child({"mode": "backup", "spec": spec, "locations": locations, "staging": str(staging)})
        cpu["mysqlops → local + S3"] = {**m.cpu, "total": m.total}
        results["mysqlops_backup"] = ours
        results["cpu_seconds"] = cpu
        results["cores"] = os.cpu_count()
        results["local_location_bytes"] = dir_size(f"{work}/backups")
        if not args.memory_only:
            results["ratio_vs_zstd"] = round(ours["wall"] / results["dump_zstd_s"], 3)
            results["ratio_local_only_vs_zstd"] = round(local_only["wall"] / results["dump_zstd_s"], 3)
            results["speedup_vs_gzip"] = round(results["dump_gzip_s"] / ours["wall"], 2)
            results["best_possible_speedup_vs_gzip"] = round(
                results["dump_gzip_s"] / results["dump_devnull_s"], 2
            )
        if not args.memory_only and not args.skip_restore:
            # restore: plain load into a default-configured server vs the mysqlops restore test
            plain = sandbox.start_server(work, "plain", server_id=2)
            try:
                popt = work / "plain.cnf"
                popt.write_text(client_option_file(plain.spec()))
                popt.chmod(0o600)
                subprocess.run(f"zstd -dc {work}/d.sql.zst > {work}/dump.sql", shell=True, check=True)
                results["plain_load_s"] = timed_shell(
                    f"mariadb --defaults-extra-file={popt} < {work}/dump.sql"
                )
                os.unlink(work / "dump.sql")
            finally:
                sandbox.stop_server(plain)
            sb = work / "rt"
            sb.mkdir()
            rt = child(
                {
                    "mode": "restore",
                    "spec": spec,
                    "locations": [locations[1]],
                    "staging": str(staging),
                    "backup_id": ours["backup_id"],
                    "sandbox_dir": str(sb),
                }
            )
            results["mysqlops_restore_test"] = rt
            results["restore_ratio_vs_plain_load"] = round(rt["wall"] / results["plain_load_s"], 3)
    finally:
        sandbox.stop_server(server)
        moto.kill()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)
    b = results["mysqlops_backup"]
    md = [f"# Backup benchmark ({args.gb} GB target, {rows:,} rows)", ""]
    if not args.memory_only:
        md += [
            "| run | wall s | notes |",
            "|---|---|---|",
            f"| mariadb-dump > /dev/null | {results['dump_devnull_s']:.1f} | raw dump {results['dump_raw_bytes'] / 1e9:.2f} GB |",
            f"| mariadb-dump \\| gzip -6 > file | {results['dump_gzip_s']:.1f} | |",
            f"| mariadb-dump \\| zstd -3 -T2 > file | {results['dump_zstd_s']:.1f} | {results['zstd_file_bytes'] / 1e6:.0f} MB |",
            f"| mysqlops backup → local only, verified | {results['mysqlops_backup_local_only']['wall']:.1f} | peak RSS {results['mysqlops_backup_local_only']['peak_rss_mib']:.0f} MiB |",
            f"| mysqlops backup → local + S3, verified | {b['wall']:.1f} | peak RSS {b['peak_rss_mib']:.0f} MiB; stages {b['durations']} |",
            f"- backup wall / (dump | zstd -3 -T2): **{results['ratio_vs_zstd']}** (target ≤ 1.25); local only: {results['ratio_local_only_vs_zstd']}",
            f"- speed-up vs dump | gzip -6: **{results['speedup_vs_gzip']}×** (target ≥ 5; `dump > /dev/null` itself is only {results['best_possible_speedup_vs_gzip']}× faster than gzip here)",
            "",
            f"CPU seconds per run on {results['cores']} cores (client = the shell pipeline or the mysqlops process with its mariadb-dump):",
            "",
            "| run | client | mariadbd | moto (S3 endpoint) | total |",
            "|---|---|---|---|---|",
            *[
                f"| {name} | {c['client']} | {c['mariadbd']} | {c['moto']} | {c['total']} |"
                for name, c in cpu.items()
            ],
        ]
        if "plain_load_s" in results:
            rt = results["mysqlops_restore_test"]
            at = next(i for i, line in enumerate(md) if line.startswith("| mysqlops backup → local + S3")) + 1
            md[at:at] = [
                f"| plain `mariadb < dump.sql` (default server) | {results['plain_load_s']:.1f} | |",
                f"| mysqlops restore test (download+load+verify) | {rt['wall']:.1f} | {rt['durations']}, peak RSS {rt['peak_rss_mib']:.0f} MiB |",
            ]
            md.append(
                f"- restore test / plain load: **{results['restore_ratio_vs_plain_load']}** (target ≤ 0.7)"
            )
    else:
        md += [
            f"- mysqlops backup: wall {b['wall']:.1f} s, raw {b['raw'] / 1e9:.2f} GB, peak RSS **{b['peak_rss_mib']:.0f} MiB**"
        ]
    write_result(
        f"backup_{args.gb:g}gb" + ("_memory" if args.memory_only else ""), results, "\n".join(md) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
