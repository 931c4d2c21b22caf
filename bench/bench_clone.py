"""Physical backups of MySQL through CLONE vs mariabackup on MariaDB, on the same data.

Starts one sandbox server of each build (``--mysql`` default mysql-9.7, ``--mariadb`` default
mariadb-10.11, whose mariabackup is the system's), fills ``bench.t`` with ROWS rows generated
server-side (the same recursive CTE on both: id, k, SHA2 text, a 200-byte payload), then
measures each through the real engine: ``run_physical_backup`` full (best of ``--repeat``:
clone/backup → tar or mbstream → zstd → sha256 → staging → upload to a local location with
read-back verify → manifest), and one restore test (fetch, verify, unpack, prepare for
mariabackup, scratch server of the build, CHECKSUM TABLE of every table against the source).

Writes bench/results/clone.json and clone.md.

    uv run python bench/bench_clone.py [--rows 200000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from mysqlops import backup as backup
from mysqlops import catalog
from mysqlops import restore as restore
from mysqlops.adapters import sandbox
from mysqlops.adapters.mysql import session
from mysqlops.model import Location
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec

RESULTS = Path(__file__).resolve().parent / "results"


def _fill(server: sandbox.SandboxServer, rows: int, mysql: bool) -> None:
    with session(server.spec()) as conn, conn.cursor() as cur:
        if mysql:
            cur.execute("SET SESSION cte_max_recursion_depth = 100000000")
        else:
            cur.execute("SET SESSION max_recursive_iterations = 100000000")
        cur.execute("CREATE DATABASE bench")
        cur.execute(
            "CREATE TABLE bench.t (id INT PRIMARY KEY, k INT, c CHAR(64), pad VARCHAR(255), INDEX (k)) ENGINE=InnoDB"
        )
        step = 50_000
        for low in range(0, rows, step):
            high = min(rows, low + step)
            cur.execute(
                "INSERT INTO bench.t WITH RECURSIVE s(n) AS (SELECT %s UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
                "SELECT n, MOD(n, 1000), SHA2(n, 256), REPEAT(SUBSTRING(SHA2(n, 256), 1, 40), 5) FROM s",
                [low + 1, high],
            )


def _datadir_bytes(server: sandbox.SandboxServer) -> int:
    total = 0
    for root, _d, files in os.walk(os.path.join(server.directory, "data")):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def measure(build: str, rows: int, repeat: int, work: str) -> dict[str, Any]:
    root = os.path.join(work, build)
    os.makedirs(root)
    server = sandbox.start_server(root, "src", server_id=900, build=build)
    try:
        mysql = server.flavor.value == "mysql"
        _fill(server, rows, mysql)
        if mysql:
            with session(server.spec()) as conn, conn.cursor() as cur:
                cur.execute("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
        location = Location("local", f"file://{work}/{build}-backups")
        runs = []
        result = None
        for _ in range(repeat):
            t0 = time.monotonic()
            result = backup.run_physical_backup(server.spec(), [location], codec("zstd"), staging_dir=root)
            runs.append(round(time.monotonic() - t0, 2))
        assert result is not None
        m = result.manifest
        chain = restore.physical_chain(catalog.scan([location]), server.name, m.backup_id)
        t1 = time.monotonic()
        tested = restore.restore_test_physical(chain, RunContext(staging_dir=root), source=server.spec())
        test_seconds = round(time.monotonic() - t1, 2)
        return {
            "build": build,
            "server": f"{server.flavor.value} {server.version}",
            "tool": m.extra.get("physical_tool", "mariabackup"),
            "rows": rows,
            "datadir_bytes": _datadir_bytes(server),
            "backup_seconds": runs,
            "best_backup_seconds": min(runs),
            "raw_bytes": m.raw_bytes,
            "stored_bytes": m.stored_bytes,
            "durations": m.durations,
            "restore_test_passed": tested.passed,
            "restore_test_seconds": test_seconds,
            "restore_test_durations": tested.durations,
        }
    finally:
        sandbox.stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--mysql", default="mysql-9.7")
    parser.add_argument("--mariadb", default="mariadb-10.11")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="myops-bclone-", dir="/tmp")
    try:
        results = [measure(b, args.rows, args.repeat, work) for b in (args.mariadb, args.mysql)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "clone.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# CLONE (MySQL) vs mariabackup (MariaDB), {args.rows} rows, {out['machine']}, {out['when']}",
        "",
        "| build | tool | datadir MB | best backup s | raw MB | stored MB | restore test s | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['tool']} | {r['datadir_bytes'] / 1e6:.1f} | {r['best_backup_seconds']} | "
            f"{r['raw_bytes'] / 1e6:.1f} | {r['stored_bytes'] / 1e6:.1f} | {r['restore_test_seconds']} | "
            f"{r['restore_test_passed']} |"
        )
    (RESULTS / "clone.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
