"""Throughput of mysqlops.streams.crypto streaming encryption vs plain hashlib.sha256.

Feeds SIZE MiB of random data in 1 MiB pieces (the pipeline's feed size) through
Encryptor, Decryptor and hashlib.sha256, best of REPEATS runs each, and writes
bench/results/crypto.json.

    uv run python bench/bench_crypto.py [--size-mib 512] [--repeats 3] [--chunk-size 1048576]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mysqlops.streams.crypto import DEFAULT_CHUNK_SIZE, Decryptor, Encryptor, Keyring, generate_key

MIB = 1 << 20
RESULTS = Path(__file__).resolve().parent / "results" / "crypto.json"


def bench_sha256(block: bytes, feeds: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    h = hashlib.sha256()
    for _ in range(feeds):
        h.update(block)
    return time.perf_counter() - t0, h.hexdigest()


def bench_encrypt(key: bytes, block: bytes, feeds: int, chunk_size: int) -> float:
    """Output is dropped as it comes, as a streaming stage would pass it on (keeping 512 MiB
    alive would measure page faults, not encryption)."""
    t0 = time.perf_counter()
    enc = Encryptor(key, chunk_size)
    for _ in range(feeds):
        enc.update(block)
    enc.finalize()
    return time.perf_counter() - t0


def make_ciphertext(key: bytes, block: bytes, feeds: int, chunk_size: int) -> bytes:
    enc = Encryptor(key, chunk_size)
    return b"".join([*(enc.update(block) for _ in range(feeds)), enc.finalize()])


def bench_decrypt(keyring: Keyring, ciphertext: bytes, feed: int) -> tuple[float, str]:
    """Feeds are 1 MiB slices of the stored file, so they do not line up with the chunks."""
    view = memoryview(ciphertext)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    dec = Decryptor(keyring)
    for pos in range(0, len(view), feed):
        dec.update(view[pos : pos + feed])
    dec.finalize()
    elapsed = time.perf_counter() - t0
    # correctness check outside the timed loop
    dec2 = Decryptor(keyring)
    for pos in range(0, len(view), 64 * MIB):
        h.update(dec2.update(view[pos : pos + 64 * MIB]))
    h.update(dec2.finalize())
    return elapsed, h.hexdigest()


def bench_encrypt_sha256_pipeline(key: bytes, block: bytes, feeds: int, chunk_size: int) -> float:
    """encrypt -> sha256 of the ciphertext, as the upload pipeline does."""
    t0 = time.perf_counter()
    enc = Encryptor(key, chunk_size)
    h = hashlib.sha256()
    for _ in range(feeds):
        h.update(enc.update(block))
    h.update(enc.finalize())
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    feeds = args.size_mib
    total = feeds * MIB
    block = os.urandom(MIB)
    key = generate_key()
    keyring = Keyring(key)

    times: dict[str, list[float]] = {"sha256": [], "encrypt": [], "decrypt": [], "encrypt+sha256": []}
    plain_digest = ""
    ciphertext_len = 0
    for _ in range(args.repeats):
        t, plain_digest = bench_sha256(block, feeds)
        times["sha256"].append(t)
        times["encrypt"].append(bench_encrypt(key, block, feeds, args.chunk_size))
        ciphertext = make_ciphertext(key, block, feeds, args.chunk_size)
        ciphertext_len = len(ciphertext)
        t, digest = bench_decrypt(keyring, ciphertext, MIB)
        del ciphertext
        if digest != plain_digest:
            print("ERROR: decrypted data does not match the plaintext", file=sys.stderr)
            return 1
        times["decrypt"].append(t)
        times["encrypt+sha256"].append(bench_encrypt_sha256_pipeline(key, block, feeds, args.chunk_size))

    results = {}
    print(f"{args.size_mib} MiB in 1 MiB feeds, chunk size {args.chunk_size}, best of {args.repeats}")
    for name, ts in times.items():
        best, median = min(ts), statistics.median(ts)
        mb_s = total / best / 1e6
        results[name] = {
            "best_seconds": round(best, 4),
            "median_seconds": round(median, 4),
            "best_MB_per_s": round(mb_s, 1),
            "median_MB_per_s": round(total / median / 1e6, 1),
        }
        print(f"  {name:<15} {mb_s:8.1f} MB/s  (best {best:.3f} s, median {median:.3f} s)")
    sha = results["sha256"]["best_MB_per_s"]
    for name in ("encrypt", "decrypt", "encrypt+sha256"):
        results[name]["vs_sha256"] = round(results[name]["best_MB_per_s"] / sha, 2)

    doc = {
        "benchmark": "crypto",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "size_bytes": total,
        "feed_bytes": MIB,
        "chunk_size": args.chunk_size,
        "ciphertext_bytes": ciphertext_len,
        "overhead_bytes": ciphertext_len - total,
        "repeats": args.repeats,
        "results": results,
        "machine": {
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "openssl": openssl_backend.openssl_version_text(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "note": "MB = 10^6 bytes; throughput is plaintext bytes per second",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
