"""The one carry of a line split across chunks (streams/lines.py), used by dumpscan and tablesplit."""

from __future__ import annotations

import itertools

import pytest

from mysqlops.streams.lines import LineChunks

STREAM = b"-- a\nINSERT x;\n\n" + b"y" * 50 + b"\nlast without newline"


def _runs(stream: bytes, size: int, max_carry: int) -> list[tuple[bytes, bool, bool]]:
    runs: list[tuple[bytes, bool, bool]] = []
    lines = LineChunks(lambda b, lo, hi, s, e: runs.append((bytes(b[lo:hi]), s, e)), max_carry)
    for i in range(0, len(stream), size):
        lines.feed(stream[i : i + size])
    lines.finish()
    assert lines.total_bytes == len(stream)
    return runs


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 1000])
def test_line_chunks_give_whole_lines_whatever_the_chunk_size(size: int) -> None:
    runs = _runs(STREAM, size, max_carry=1 << 20)
    assert b"".join(r for r, _, _ in runs) == STREAM
    assert all(start and end for _, start, end in runs)  # no line is ever cut
    assert all(r.endswith(b"\n") for r, _, _ in runs[:-1]) and runs[-1][0].endswith(b"newline")


@pytest.mark.parametrize("size", [1, 5, 9, 1000])
def test_line_chunks_pass_an_enormous_line_through_in_pieces(size: int) -> None:
    runs = _runs(STREAM, size, max_carry=8)
    assert b"".join(r for r, _, _ in runs) == STREAM
    pieces = [r for r in runs if not (r[1] and r[2])]
    assert pieces, runs  # the 50-byte line (and the last one) were not held whole
    assert all(len(r) <= max(size, 8) + 8 or r.endswith(b"\n") for r, _, _ in runs)
    # every run that does not start a line continues the one before it, which did not end one
    for before, after in itertools.pairwise(runs):
        assert after[1] == before[2]
