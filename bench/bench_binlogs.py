"""Binlog archiving vs a full logical dump, after changing ~1% of a table's rows.

Starts a sandbox MariaDB (binary log on, ROW format, full row images: the defaults), fills
``bench.t`` with ROWS generated rows, archives the binlogs once (baseline), updates ~1% of the
rows (``CHANGE_PCT``) in small transactions, then measures:

- ``archive_binlogs`` of what the update wrote (rotate, copy with mariadb-binlog --raw,
  header walk, zstd, upload to a local location with read-back verify, manifest);
- ``mariadb-dump --single-transaction bench | zstd -3 -T0`` of the whole table, the
  alternative way to capture the same change;
- the event-header walk (:func:`mysqlops.binlog.format.summarize_file`) on the big binlog the
  initial fill wrote, to show it is not the bottleneck.

Writes bench/results/binlogs.json.

    uv run python bench/bench_binlogs.py [--rows 1000000] [--change-pct 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mysqlops import binlog as binlog
from mysqlops.adapters import process, sandbox
from mysqlops.adapters.mysql import scalar, session
from mysqlops.binlog import format as binlog_format
from mysqlops.model import Location
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv

RESULTS = Path(__file__).resolve().parent / "results" / "binlogs.json"
MB = 1e6


def sql(spec, *statements: str) -> None:  # type: ignore[no-untyped-def]
    with session(spec, read_timeout=3600) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def dump_zstd(spec) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Bytes and seconds of ``mariadb-dump bench | zstd -3 -T0`` (output counted, discarded)."""
    started = time.monotonic()
    total = 0
    with process.Pipeline(
        [
            dump_argv("mariadb-dump", "bench", DumpOptions(routines=False, events=False)),
            ["zstd", "-3", "-T0", "-c"],
        ],
        credentials=[client_option_file(spec), None],
        stdout=process.PIPE,
        name="dump | zstd",
    ) as pipe:
        for chunk in iter(lambda: pipe.stdout_pipe.read(1 << 20), b""):
            total += len(chunk)
        pipe.wait()
    return total, time.monotonic() - started


def small_event_walk(events: int = 1_000_000, body: int = 60) -> dict[str, float]:
    """Worst case for the header walk: a synthetic binlog of tiny CRC32-checked events."""
    import struct
    import zlib

    fde_body = struct.pack("<H", 4) + b"10.11.19-MariaDB".ljust(50, b"\0") + struct.pack("<I", 1) + b"\x13"
    fde_body += bytes(164) + b"\x01"
    head = struct.pack("<IBIIIH", 1, 15, 1, 19 + len(fde_body) + 4, 0, 0)
    out = bytearray(b"\xfebin" + head + fde_body + struct.pack("<I", zlib.crc32(head + fde_body)))
    payload = bytes(body)
    for i in range(events):
        h = struct.pack("<IBIIIH", 1_700_000_000 + i // 1000, 2, 1, 19 + body + 4, 0, 0)
        out += h + payload + struct.pack("<I", zlib.crc32(h + payload))
    t0 = time.monotonic()
    summary = binlog_format.scan_binlog(bytes(out))
    seconds = time.monotonic() - t0
    return {
        "events": summary.events,
        "file_bytes": summary.size,
        "seconds": round(seconds, 3),
        "events_per_s": round(summary.events / seconds),
        "MB_per_s": round(summary.size / MB / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--change-pct", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=100, help="rows per UPDATE transaction")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="myops-bench-", dir="/tmp")
    server = None
    try:
        server = sandbox.start_server(root, "binlogbench", server_id=77)
        spec = server.spec()
        location = Location(name="bench", url=f"file://{root}/store")
        stage = os.path.join(root, "stage")
        zstd = codec("zstd")

        t0 = time.monotonic()
        sql(
            spec,
            "CREATE DATABASE bench",
            "CREATE TABLE bench.t (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, "
            "pad VARCHAR(60) NOT NULL, amount DECIMAL(12,2) NOT NULL, updated DATETIME(6) NOT NULL)",
            f"INSERT INTO bench.t SELECT seq, FLOOR(RAND(seq) * 1000000), "
            f"SHA2(seq, 256), REPEAT(CHAR(65 + seq % 26), 40 + seq % 20), seq / 7, "
            f"'2026-01-01' + INTERVAL seq SECOND FROM bench.seq_1_to_{args.rows}",
        )
        fill_seconds = time.monotonic() - t0
        sql(spec, "ANALYZE TABLE bench.t")
        with session(spec) as conn:
            table_bytes = int(
                scalar(
                    conn,
                    "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA='bench' AND TABLE_NAME='t'",
                )
            )
        with session(spec) as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            fill_binlog = str(cur.fetchone()["File"])  # type: ignore[index]

        # header walk speed on the fill's binlog (a big ROW-format file)
        fill_path = os.path.join(server.datadir, fill_binlog)
        t0 = time.monotonic()
        summary = binlog_format.summarize_file(fill_path)
        walk_seconds = time.monotonic() - t0
        walk = {
            "file_bytes": summary.size,
            "events": summary.events,
            "seconds": round(walk_seconds, 3),
            "MB_per_s": round(summary.size / MB / walk_seconds, 1),
        }

        walk["small_events"] = small_event_walk()

        baseline = binlog.archive_binlogs(
            spec, [location], zstd, RunContext(staging_dir=stage), datetime.now(UTC)
        )

        changed = max(1, int(args.rows * args.change_pct / 100))
        step = max(1, int(100 / args.change_pct))
        t0 = time.monotonic()
        with session(spec, read_timeout=3600) as conn, conn.cursor() as cur:
            ids_changed = list(range(1, args.rows + 1, step))[:changed]
            for i in range(0, len(ids_changed), args.batch):
                chunk = ids_changed[i : i + args.batch]
                cur.execute(
                    "UPDATE bench.t SET amount = amount + 1, updated = NOW(6) WHERE id IN ("
                    + ",".join(str(x) for x in chunk)
                    + ")"
                )
        change_seconds = time.monotonic() - t0

        result = binlog.archive_binlogs(
            spec, [location], zstd, RunContext(staging_dir=stage), datetime.now(UTC)
        )
        archive = {
            "files": result.files,
            "raw_bytes": result.raw_bytes,
            "stored_bytes": sum(a.stored_bytes for a in result.archived),
            "seconds": round(result.seconds, 3),
        }
        dump_bytes, dump_seconds = dump_zstd(spec)
        _, dump_seconds2 = dump_zstd(spec)

        doc = {
            "benchmark": "binlogs",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "server": f"MariaDB {server.version}",
            "rows": args.rows,
            "table_bytes_on_disk": table_bytes,
            "fill_seconds": round(fill_seconds, 2),
            "changed_rows": changed,
            "change_pct": args.change_pct,
            "update_transactions": (changed + args.batch - 1) // args.batch,
            "change_seconds": round(change_seconds, 2),
            "baseline_archive": {
                "files": len(baseline.files),
                "raw_bytes": baseline.raw_bytes,
                "seconds": round(baseline.seconds, 3),
            },
            "archive_after_change": archive,
            "full_dump_zstd": {
                "stored_bytes": dump_bytes,
                "seconds": round(min(dump_seconds, dump_seconds2), 3),
            },
            "header_walk": walk,
            "ratios": {
                "dump_stored_over_binlog_stored": round(dump_bytes / max(1, archive["stored_bytes"]), 1),
                "dump_seconds_over_archive_seconds": round(
                    min(dump_seconds, dump_seconds2) / max(1e-9, result.seconds), 1
                ),
            },
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
        print(json.dumps(doc, indent=2))
    finally:
        if server is not None:
            sandbox.stop_server(server)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
