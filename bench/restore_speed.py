"""Restore speed side by side with the plain tools and a peer, and the backup side fairly (issue 18).

    uv run python -m bench.restore_speed          # ~300 MB of SQL; BENCH_RESTORE_MB=600 for more
    BENCH_RESTORE_ROUNDS=2 ...                    # paired rounds (plain, myloader, ours) repeated

In one run, on data with several tables with secondary indexes and foreign keys, a JSON/text
table, a FULLTEXT and a partitioned table (``sampledata.create_indexed_database``) and two bulk
tables with a secondary index, every load goes into a fresh server started with the SAME tuned
options as mysqlops' scratch servers (``sandbox.start_server(tuned=True, scratch=True)``):

- ``plain_load_s``: ``zstd -dc dump.sql.zst | mariadb`` (the plain tools' dump file);
- ``myloader_s``: ``myloader -t 2`` of a ``mydumper -t 2`` dump (Debian's mydumper; installed
  with apt-get when missing and root);
- ``restore_s``: mysqlops ``restore_backup`` load phase (parallel, keys deferred) from the local
  copy, ``restore_wall_s`` the whole call (sha256 check of the copy included);
- ``restore_test_s``: mysqlops ``restore_test_copy`` from S3 end to end (the scratch server starts
  while the copy is downloaded, checked and hashed per table; load with each table's rows
  re-dumped as soon as it is in; the rest re-dumped; certificate);
- ``single_table_s``: ``bench.single_table.single_table_seconds`` (issue 18a): ``ix.orders``
  (~7% of the dump, with FKs and a trigger) restored alone from the S3 copy into a fresh server;
- backup: the plain-tool pipeline ``dump | zstd -T2 | tee file | aws s3 cp -`` then both copies
  read back and hashed, vs mysqlops backup to local + S3 (verified): ``backup_vs_plain_pipeline``.

mysqlops runs execute in child processes, so their peak RSS is theirs alone. The machine's CPU
is shared: the JSON records the load average before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import start_moto, timed_shell, write_result
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
locs = [Location(**l) for l in args["locations"]]
t = time.monotonic()
out = {}
if args["mode"] == "backup":
    r = backup.run_backup(
    backup.BackupRequest(ServerSpec(**args["spec"]), tuple(locs), compression=codec("zstd")),
    RunContext(staging_dir=args["staging"]),
)
    assert r.ok, r.locations
    out = {"backup_id": r.manifest.backup_id, "raw": r.manifest.raw_bytes, "stored": r.manifest.stored_bytes,
           "durations": r.manifest.durations}
elif args["mode"] == "restore":
    copies = catalog.find_backup(catalog.scan(locs), None, args["backup_id"])
    r = restore.restore_backup(copies, ServerSpec(**args["target"]), RunContext(staging_dir=args["staging"]),
                               load=restore.LoadOptions(workers=args.get("workers")))
    out = {"durations": r.durations}
else:
    loc, m = catalog.find_backup(catalog.scan(locs), None, args["backup_id"])[0]
    cert = restore.restore_test_copy(loc, m, RunContext(staging_dir=args["staging"]), sandbox_dir=args["sandbox_dir"])
    assert cert.passed, [c for c in cert.checks if not c.passed]
    out = {"durations": cert.durations}
out["wall"] = time.monotonic() - t
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def child(payload: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def ensure_mydumper() -> None:
    if shutil.which("myloader") and shutil.which("mydumper"):
        return
    if os.geteuid() != 0:
        raise SystemExit("mydumper/myloader missing: sudo apt-get install -y mydumper")
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "mydumper"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def spec_of(server: sandbox.SandboxServer) -> dict[str, Any]:
    return {
        "name": server.name,
        "host": "127.0.0.1",
        "port": server.port,
        "user": "root",
        "password": server.root_password,
    }


def option_file(work: Path, server: sandbox.SandboxServer) -> Path:
    path = work / f"{server.name}.cnf"
    path.write_text(client_option_file(server.spec()))
    path.chmod(0o600)
    return path


def main() -> int:
    mb = float(os.environ.get("BENCH_RESTORE_MB", "300"))
    rounds = int(os.environ.get("BENCH_RESTORE_ROUNDS", "1"))
    ensure_mydumper()
    work = Path(tempfile.mkdtemp(prefix="mysqlops-rbench-", dir=os.environ.get("BENCH_DIR", "/tmp")))
    results: dict[str, Any] = {
        "target_mb": mb,
        "rounds": rounds,
        "cores": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    server = sandbox.start_server(
        work, "src", server_id=1,
        extra_options=["--innodb-buffer-pool-size=1G", "--innodb-flush-log-at-trx-commit=0", "--innodb-log-file-size=512M"],
    )  # fmt: skip
    moto, s3_url = start_moto(work)
    s3_env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    scratch_id = [100]

    def scratch(name: str) -> sandbox.SandboxServer:
        scratch_id[0] += 1
        return sandbox.start_server(work, name, server_id=scratch_id[0], tuned=True, scratch=True)

    try:
        t = time.monotonic()
        from mysqlops.sampledata import create_bulk_table, create_indexed_database

        # ~450 bytes of SQL per `rows` unit in the indexed tables, ~370 per bulk row
        with db.session(server.spec(), read_timeout=3600) as conn:
            create_indexed_database(conn, "ix", rows=int(mb * 0.5e6 / 450))
            for name in ("bulk1", "bulk2"):
                create_bulk_table(conn, "ix", name, int(mb * 0.25e6 / 370), payload_bytes=160)
        results["generate_s"] = round(time.monotonic() - t, 1)
        src_opt = option_file(work, server)
        dump = (
            f"mariadb-dump --defaults-extra-file={src_opt} --single-transaction --quick --routines --triggers "
            "--events --hex-blob --default-character-set=utf8mb4 --max-allowed-packet=1G --master-data=2 --gtid --databases ix"
        )
        # -- backup side: plain-tool pipeline vs mysqlops (local + S3, verified) --------------------
        s3 = f"--endpoint-url {s3_url}"
        plain_file = work / "dump.sql.zst"
        t = time.monotonic()
        subprocess.run(
            ["bash", "-o", "pipefail", "-c",
             f"{dump} | zstd -q -3 -T2 | tee {plain_file} | aws {s3} s3 cp - s3://bench/plain/dump.sql.zst"],
            check=True, env=s3_env,
        )  # fmt: skip
        h1 = subprocess.run(
            ["sha256sum", str(plain_file)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        h2 = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"aws {s3} s3 cp s3://bench/plain/dump.sql.zst - | sha256sum"],
            capture_output=True, text=True, check=True, env=s3_env,
        ).stdout.split()[0]  # fmt: skip
        assert h1 == h2, "the plain pipeline's two copies differ"
        results["plain_pipeline_s"] = round(time.monotonic() - t, 2)
        results["dump_raw_bytes"] = int(
            subprocess.run(
                f"zstd -dc {plain_file} | wc -c", shell=True, capture_output=True, text=True, check=True
            ).stdout
        )
        results["dump_zstd_bytes"] = plain_file.stat().st_size
        locations = [
            {"name": "local", "url": f"file://{work}/backups"},
            {"name": "s3", "url": "s3://bench/m",
             "storage_options": {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": s3_url}}},
        ]  # fmt: skip
        staging = work / "staging"
        staging.mkdir()
        ours = child(
            {"mode": "backup", "spec": spec_of(server), "locations": locations, "staging": str(staging)}
        )
        results["mysqlops_backup"] = ours
        results["backup_s"] = round(ours["wall"], 2)
        results["backup_vs_plain_pipeline"] = round(ours["wall"] / results["plain_pipeline_s"], 3)
        # mydumper's own dump for the peer loader (not timed against anything)
        t = time.monotonic()
        subprocess.run(
            ["mydumper", f"--defaults-file={src_opt}", "-t", "2", "-B", "ix", "-G", "-E", "-R", "--trx-consistency-only",
             "-o", str(work / "mydumper")],
            check=True, capture_output=True,
        )  # fmt: skip
        results["mydumper_dump_s"] = round(time.monotonic() - t, 2)
        sandbox.stop_server(server)  # nothing else competes with the loads
        runs: dict[str, list[float]] = {
            "plain_load_s": [],
            "myloader_s": [],
            "restore_s": [],
            "restore_wall_s": [],
            "restore_test_s": [],
        }
        peak: dict[str, float] = {}
        for r in range(rounds):
            results.setdefault("loadavg_per_round", []).append(os.getloadavg())
            target = scratch(f"plain{r}")
            try:
                opt = option_file(work, target)
                runs["plain_load_s"].append(
                    round(timed_shell(f"zstd -dc {plain_file} | mariadb --defaults-extra-file={opt}"), 2)
                )
            finally:
                sandbox.stop_server(target)
            target = scratch(f"myl{r}")
            try:
                opt = option_file(work, target)
                runs["myloader_s"].append(
                    round(timed_shell(f"myloader --defaults-file={opt} -t 2 -d {work / 'mydumper'} -o"), 2)
                )
            finally:
                sandbox.stop_server(target)
            target = scratch(f"ours{r}")
            try:
                got = child(
                    {"mode": "restore", "locations": locations[:1], "staging": str(staging),
                     "backup_id": ours["backup_id"], "target": spec_of(target)}
                )  # fmt: skip
                runs["restore_s"].append(round(got["durations"]["load"], 2))
                runs["restore_wall_s"].append(round(got["wall"], 2))
                peak["restore"] = max(peak.get("restore", 0.0), round(got["peak_rss_mib"], 1))
            finally:
                sandbox.stop_server(target)
            sb = work / f"rt{r}"
            sb.mkdir()
            got = child(
                {"mode": "restore_test", "locations": [locations[1]], "staging": str(staging),
                 "backup_id": ours["backup_id"], "sandbox_dir": str(sb)}
            )  # fmt: skip
            runs["restore_test_s"].append(round(got["wall"], 2))
            results.setdefault("restore_test_durations", []).append(got["durations"])
            peak["restore_test"] = max(peak.get("restore_test", 0.0), round(got["peak_rss_mib"], 1))
        results["runs"] = runs
        for key, values in runs.items():
            results[key] = round(statistics.median(values), 2)
        results["peak_rss_mib"] = peak
        results["peak_rss_mib"]["backup"] = round(ours["peak_rss_mib"], 1)
        # single-table restore (issue 18a) of `ix.orders` (~7% of the dump) from the S3 copy
        from bench.single_table import single_table_seconds
        from mysqlops import catalog
        from mysqlops.model import Location

        s3_copies = catalog.find_backup(catalog.scan([Location(**locations[1])]), None, ours["backup_id"])
        target = scratch("single")
        try:
            results["single_table_s"] = round(single_table_seconds(s3_copies, target.spec(), "ix.orders"), 2)
        finally:
            sandbox.stop_server(target)
        results["single_table_vs_restore"] = round(results["single_table_s"] / results["restore_wall_s"], 3)
        plain = results["plain_load_s"]
        results["ratios"] = {
            "myloader_vs_plain_load": round(results["myloader_s"] / plain, 3),
            "restore_vs_plain_load": round(results["restore_s"] / plain, 3),
            "restore_wall_vs_plain_load": round(results["restore_wall_s"] / plain, 3),
            "restore_test_vs_plain_load": round(results["restore_test_s"] / plain, 3),
            "restore_vs_myloader": round(results["restore_s"] / results["myloader_s"], 3),
            "paired_restore_vs_plain": [
                round(a / b, 3) for a, b in zip(runs["restore_s"], runs["plain_load_s"], strict=True)
            ],
            "paired_restore_test_vs_plain": [
                round(a / b, 3) for a, b in zip(runs["restore_test_s"], runs["plain_load_s"], strict=True)
            ],
            "backup_vs_plain_pipeline": results["backup_vs_plain_pipeline"],
        }
        results["loadavg_after"] = os.getloadavg()
    finally:
        sandbox.stop_all()
        moto.kill()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)
    ra = results["ratios"]
    md = "\n".join(
        [
            f"# Restore speed ({results['dump_raw_bytes'] / 1e6:.0f} MB of SQL, {results['dump_zstd_bytes'] / 1e6:.0f} MB zstd, "
            f"{rounds} round(s), {results['cores']} cores shared, load avg {results['loadavg_before'][0]:.1f} → {results['loadavg_after'][0]:.1f})",
            "",
            "| run | wall s (median) | vs plain load |",
            "|---|---|---|",
            f"| `zstd -dc dump.zst \\| mariadb` (plain load) | {results['plain_load_s']} | 1.00 |",
            f"| `myloader -t 2` (mydumper 0.10) | {results['myloader_s']} | {ra['myloader_vs_plain_load']} |",
            f"| mysqlops restore (load) | {results['restore_s']} | **{ra['restore_vs_plain_load']}** (target ≤ 0.65) |",
            f"| mysqlops restore (whole call, local copy) | {results['restore_wall_s']} | {ra['restore_wall_vs_plain_load']} |",
            f"| mysqlops restore-test from S3 (end to end) | {results['restore_test_s']} | **{ra['restore_test_vs_plain_load']}** (target ≤ 0.85) |",
            f"| single-table restore of ix.orders from S3 | {results['single_table_s']} | "
            f"{results['single_table_vs_restore']} of the whole restore |",
            "",
            f"Backup: plain pipeline (dump | zstd -T2 | tee file | aws s3 cp -, both copies read back and hashed) "
            f"{results['plain_pipeline_s']} s, mysqlops backup to local + S3 (verified) {results['backup_s']} s: "
            f"**{results['backup_vs_plain_pipeline']}×**.",
            f"Peak RSS (MiB): {results['peak_rss_mib']}. Paired restore/plain: {ra['paired_restore_vs_plain']}, "
            f"restore-test/plain: {ra['paired_restore_test_vs_plain']}.",
            f"Every round (s): {results['runs']}; load average (1 min) at the start of each round: "
            f"{[round(x[0], 1) for x in results['loadavg_per_round']]}.",
            "",
        ]
    )
    write_result("restore_speed", results, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
