"""FollowReader: reading a staging file while it is written."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from mysqlops.errors import BackupAborted
from mysqlops.streams.follow import FollowReader, Growth


def _writer(path: str, growth: Growth, chunks: list[bytes], fail: bool = False) -> threading.Thread:
    def run() -> None:
        with open(path, "ab", buffering=0) as fh:
            for c in chunks:
                fh.write(c)
                time.sleep(0.01)
        if fail:
            growth.fail("the dump failed")
        else:
            growth.finish(sum(map(len, chunks)))

    return threading.Thread(target=run)


def test_reader_returns_every_byte_written_while_it_grows(tmp_path: Any) -> None:
    path = str(tmp_path / "f")
    open(path, "wb").close()
    chunks = [os.urandom(n) for n in (1, 70_000, 3, 1 << 20, 0, 12345)]
    growth = Growth()
    writer = _writer(path, growth, chunks)
    reader = FollowReader(path, growth, poll_seconds=0.005)
    writer.start()
    got = bytearray()
    reads = 0
    while data := reader.read(64 * 1024):
        got += data
        reads += 1
    writer.join()
    reader.close()
    assert bytes(got) == b"".join(chunks)
    assert reads > 1


def test_reader_stops_at_the_final_size_and_never_reads_past_it(tmp_path: Any) -> None:
    path = str(tmp_path / "f")
    with open(path, "wb") as fh:
        fh.write(b"abcdef")
    growth = Growth()
    growth.finish(4)  # bytes after the final size are not the file's (never happens, but bounded)
    with FollowReader(path, growth) as reader:
        assert reader.read() == b"abcd"


def test_a_failed_writer_aborts_the_reader(tmp_path: Any) -> None:
    path = str(tmp_path / "f")
    open(path, "wb").close()
    growth = Growth()
    writer = _writer(path, growth, [b"x" * 1000, b"y" * 1000], fail=True)
    writer.start()
    with (
        FollowReader(path, growth, poll_seconds=0.005) as reader,
        pytest.raises(BackupAborted, match="dump failed"),
    ):
        while reader.read(100):
            pass
    writer.join()


def test_a_file_shorter_than_its_final_size_is_an_error(tmp_path: Any) -> None:
    path = str(tmp_path / "f")
    with open(path, "wb") as fh:
        fh.write(b"abc")
    growth = Growth()
    growth.finish(10)
    with FollowReader(path, growth) as reader, pytest.raises(BackupAborted, match="expected 10"):
        while reader.read(100):
            pass


def test_s3_parts_of_a_file_of_unknown_size_reach_the_object_limit_with_flat_memory() -> None:
    from mysqlops.adapters.storage import S3_MAX_PARTS
    from mysqlops.adapters.writers import S3_MIN_PART, s3_part_size

    sizes = [s3_part_size(n) for n in range(S3_MAX_PARTS)]
    assert sizes[0] == sizes[999] == S3_MIN_PART  # files up to ~8 GB keep 8 MiB parts
    assert sizes == sorted(sizes) and all(5 * 1024**2 <= p <= 5 * 1024**3 for p in sizes)  # S3's part limits
    assert sum(sizes) >= 5 * 1024**4  # 10,000 parts hold S3's largest object (5 TiB)
    assert s3_part_size(0, 64 * 1024**2) == 64 * 1024**2  # a file known to be big starts bigger
