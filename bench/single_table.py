"""Single-table restore from S3 vs the whole restore, and what the table index costs a backup.

``single_table_seconds(...)`` is the measurement other benches call (restore_speed): wall
seconds of ``restore_backup(copies, target, tables=[table], ...)``.

Run alone (``python -m bench.single_table --mb 300``): a source server with three big tables,
two tables that are each ~5% of the dump (``small``: three secondary indexes, like ``ix.orders``
of restore_speed; ``plain5``: its primary key only) and 200 small tables; backups with the index
(this tree) and with ``--baseline-tree`` (default /work/main) to the same S3 endpoint (moto
server process) and a local directory; then into one tuned target server the whole restore
from S3 and the single-table restores of both 5% tables from S3, each in a child process (its
peak RSS is its own): this tree's, and the baseline tree's code on the same backup (interleaved,
when the baseline has ``restore_backup(tables=...)``). Writes ``bench/results/single_table.json``
with ``single_vs_whole`` (indexed table) and ``single_plain_vs_whole``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, start_moto

ROOT = Path(__file__).resolve().parents[1]


def single_table_seconds(
    copies: Sequence[tuple[Any, Any]],
    target: Any,
    table: str,
    *,
    rename: Mapping[str, str] | None = None,
    keyring: Any = None,
    overwrite: bool = True,
) -> float:
    """Wall seconds of one single-table restore (``table`` = "db.table") into ``target``."""
    from mysqlops import restore as core
    from mysqlops.runs import RunContext

    started = time.monotonic()
    core.restore_backup(
        copies, target, RunContext(keyring=keyring), tables=[table], rename=rename, overwrite=overwrite
    )
    return time.monotonic() - started


_BACKUP_CHILD = r"""
import json, sys, time
from mysqlops import backup as bk
from mysqlops.model import Location, ServerSpec
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec
p = json.loads(sys.stdin.read())
spec = ServerSpec(**p["spec"])
locations = [Location(**l) for l in p["locations"]]
t = time.monotonic()
if hasattr(bk, "BackupRequest") and "request" in bk.run_backup.__code__.co_varnames[:1]:
    r = bk.run_backup(bk.BackupRequest(spec, tuple(locations), compression=codec("zstd")), RunContext(staging_dir=p["staging"]))
else:  # a baseline tree from before the engines took (request, ctx)
    r = bk.run_backup(spec, locations, codec("zstd"), staging_dir=p["staging"])
wall = time.monotonic() - t
assert r.ok, r.locations
print("RESULT " + json.dumps({"wall": wall, "stored_bytes": r.manifest.stored_bytes,
      "raw_bytes": r.manifest.raw_bytes, "backup_id": r.manifest.backup_id,
      "indexed_tables": sum(len(getattr(f, "table_index", ())) for f in r.manifest.files)}))
"""


_SINGLE_CHILD = r"""
import json, resource, sys, time
from mysqlops import catalog
from mysqlops import restore as core
from mysqlops.model import Location, ServerSpec
p = json.loads(sys.stdin.read())
copies = catalog.find_backup(catalog.scan([Location(**l) for l in p["locations"]]), None, p["backup_id"])
t = time.monotonic()
if p["table"]:  # the one call both trees' restore_backup accept
    r = core.restore_backup(copies, ServerSpec(**p["target"]), tables=[p["table"]], rename=p["rename"], overwrite=True)
else:
    r = core.restore_backup(copies, ServerSpec(**p["target"]), allow_source_target=True, overwrite=True)
wall = time.monotonic() - t
print("RESULT " + json.dumps({"wall": wall, "durations": r.durations,
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run_child(tree: Path, code: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``code`` in a child process with ``tree``'s code, ``payload`` on its stdin (never
    argv: it holds passwords); its ``RESULT`` line."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=str(tree),
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def _restore_child(tree: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """One restore (a table, or the whole backup when ``table`` is empty) in a child running ``tree``."""
    return _run_child(tree, _SINGLE_CHILD, payload)


def _backup_child(tree: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """One backup in a child process running ``tree``'s code; with its CPU seconds (user +
    system of the child and the dump client it runs: steadier than wall time on a shared box)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = _run_child(tree, _BACKUP_CHILD, payload)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu"] = round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2)
    return result


def main() -> int:
    from mysqlops import catalog
    from mysqlops.adapters import mysql as db
    from mysqlops.adapters import sandbox
    from mysqlops.model import Location
    from mysqlops.sampledata import create_bulk_table

    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=300.0, help="approximate dump size in MB")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument(
        "--baseline-tree",
        default="/work/main",
        help="a checkout without the table index (the backup overhead is measured against it; '' skips it)",
    )
    ap.add_argument("--repeat", type=int, default=2, help="backups of each kind (the best is kept)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mysqlops-bench-st-", dir=args.dir))
    rows = int(args.mb / 1000 * 2_900_000)  # ~370 bytes of dump per row (bench_backup)
    tuned = ["--innodb-buffer-pool-size=1G", "--innodb-flush-log-at-trx-commit=0"]
    source = sandbox.start_server(work, "src", server_id=1, extra_options=tuned)
    target = sandbox.start_server(work, "tgt", server_id=2, tuned=True)
    moto, s3_url = start_moto(work)
    results: dict[str, Any] = {"mb": args.mb, "rows": rows, "cores": os.cpu_count()}
    try:
        with db.session(source.spec(), read_timeout=3600) as conn:
            small = int(rows * 0.05)
            for i in range(3):
                create_bulk_table(conn, "bench", f"big{i}", (rows - 2 * small) // 3, payload_bytes=256)
            # the 5% table with secondary indexes (as ix.orders has): made first, so that
            # create_bulk_table (CREATE TABLE IF NOT EXISTS) fills this definition
            db.execute(
                conn,
                """CREATE TABLE bench.small (
                  id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(255) NOT NULL,
                  amount DECIMAL(12,2) NOT NULL, ts DATETIME NOT NULL, payload TEXT NOT NULL, KEY (k),
                  KEY ix_ts_amount (ts, amount), KEY ix_amount (amount)
                ) ENGINE=InnoDB""",
            )
            create_bulk_table(conn, "bench", "small", small, payload_bytes=256)
            db.execute(
                conn,
                """CREATE TABLE bench.plain5 (
                  id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(255) NOT NULL,
                  amount DECIMAL(12,2) NOT NULL, ts DATETIME NOT NULL, payload TEXT NOT NULL
                ) ENGINE=InnoDB""",
            )
            create_bulk_table(conn, "bench", "plain5", small, payload_bytes=256)
            for i in range(200):
                db.execute(conn, f"CREATE TABLE bench.tiny{i:03d} (id INT PRIMARY KEY, v VARCHAR(40))")
                db.execute(conn, f"INSERT INTO bench.tiny{i:03d} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        opts = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": s3_url}}
        s3 = Location("s3", "s3://bench/m", opts)
        local = Location("local", f"file://{work}/backups")
        spec = source.spec()
        payload = {
            "spec": {
                "name": spec.name,
                "host": spec.host,
                "port": spec.port,
                "user": spec.user,
                "password": spec.password,
            },
            "locations": [
                {"name": "s3", "url": s3.url, "storage_options": opts},
                {"name": "local", "url": local.url},
            ],
            "staging": str(work),
        }
        baseline = Path(args.baseline_tree) if args.baseline_tree else None
        if baseline is not None and not (baseline / "mysqlops" / "backup" / "logical.py").is_file():
            print(f"no baseline tree at {baseline}: the backup overhead is not measured", file=sys.stderr)
            baseline = None
        runs: dict[str, list[dict[str, Any]]] = {"indexed": []}
        for _ in range(args.repeat):  # interleaved: the shared machine's load hits both alike
            if baseline is not None:
                runs.setdefault("baseline", []).append(_backup_child(baseline, payload))
            runs["indexed"].append(_backup_child(ROOT, payload))
        best = {k: min(v, key=lambda r: r["wall"]) for k, v in runs.items()}
        results["backup"] = {
            k: {"walls": [round(r["wall"], 2) for r in v], "cpus": [r["cpu"] for r in v], **best[k]}
            for k, v in runs.items()
        }
        if "baseline" in runs:
            cpu = {k: min(r["cpu"] for r in v) for k, v in runs.items()}
            results["backup_cpu_ratio_indexed_vs_baseline"] = round(cpu["indexed"] / cpu["baseline"], 3)
            results["backup_time_ratio_indexed_vs_baseline"] = round(
                best["indexed"]["wall"] / best["baseline"]["wall"], 3
            )
            results["backup_size_ratio_indexed_vs_baseline"] = round(
                best["indexed"]["stored_bytes"] / best["baseline"]["stored_bytes"], 5
            )
        backup_id = best["indexed"]["backup_id"]
        copies = catalog.find_backup(catalog.scan([s3]), None, backup_id)
        manifest = copies[0][1]
        f = next(f for f in manifest.files if f.database == "bench")
        for name in ("small", "plain5"):
            index = next(t for t in f.table_index if t.table == name)
            results[f"{name}_table_share_of_dump"] = round(index.raw_bytes / f.raw_bytes, 4)
        tspec = target.spec()
        restore_payload: dict[str, Any] = {
            "target": {
                "name": tspec.name,
                "host": tspec.host,
                "port": tspec.port,
                "user": tspec.user,
                "password": tspec.password,
            },
            "locations": [{"name": "s3", "url": s3.url, "storage_options": opts}],
            "backup_id": backup_id,
            "rename": {"bench": "bench_one"},
        }
        results["loadavg_before_restores"] = list(os.getloadavg())
        whole = _restore_child(ROOT, {**restore_payload, "table": ""})
        results["whole_restore_s"] = round(whole["wall"], 2)
        results["whole_restore_peak_rss_mib"] = round(whole["peak_rss_mib"], 1)
        results["whole_restore_durations"] = whole["durations"]
        trees = {"this": ROOT}
        if (
            baseline is not None
            and "tables" in (baseline / "mysqlops" / "restore" / "logical.py").read_text()
        ):
            trees["baseline"] = baseline
        singles: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for _ in range(2):  # interleaved
            for name in ("small", "plain5"):
                for kind, tree in trees.items():
                    got = _restore_child(tree, {**restore_payload, "table": f"bench.{name}"})
                    singles.setdefault(kind, {}).setdefault(name, []).append(got)
        for kind, by_table in singles.items():
            for name, runs_ in by_table.items():
                key = f"single_{name}_{kind}"
                results[key + "_walls"] = [round(r["wall"], 2) for r in runs_]
                results[key + "_s"] = round(min(r["wall"] for r in runs_), 2)
                results[key + "_peak_rss_mib"] = round(max(r["peak_rss_mib"] for r in runs_), 1)
                results[key + "_durations"] = min(runs_, key=lambda r: r["wall"])["durations"]
        results["single_table_s"] = results["single_small_this_s"]
        results["single_vs_whole"] = round(results["single_small_this_s"] / results["whole_restore_s"], 3)
        results["single_plain_vs_whole"] = round(
            results["single_plain5_this_s"] / results["whole_restore_s"], 3
        )
        if "baseline" in trees:
            results["single_vs_whole_baseline"] = round(
                results["single_small_baseline_s"] / results["whole_restore_s"], 3
            )
            results["single_plain_vs_whole_baseline"] = round(
                results["single_plain5_baseline_s"] / results["whole_restore_s"], 3
            )
        results["loadavg_after"] = list(os.getloadavg())
    finally:
        sandbox.stop_server(source)
        sandbox.stop_server(target)
        moto.kill()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "single_table.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
