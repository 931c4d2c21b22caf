"""``make bench``: every benchmark, results as JSON + markdown in bench/results/."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ["bench.bench_retention"],
    ["bench.bench_report"],
    ["bench.bench_crypto"],
    ["bench.bench_backup", "--gb", "1"],
    ["bench.bench_binlogs"],
    ["bench.bench_physical"],
    ["bench.single_table", "--mb", "300"],
    ["bench.restore_speed"],
]


def main() -> int:
    failed = []
    for bench in BENCHES:
        print(f"\n=== {' '.join(bench)}", flush=True)
        if subprocess.run([sys.executable, "-m", *bench], check=False).returncode:
            failed.append(bench[0])
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
