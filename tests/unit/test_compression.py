"""Codecs: streaming round trips, concatenated frames, truncation/corruption detection, CLI compatibility."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mysqlops.errors import ConfigError, IntegrityError
from mysqlops.streams.compression import codec, codec_from_label

CODECS = ["zstd", "gzip", "none"]


def _frames(name: str, parts: list[bytes]) -> bytes:
    c = codec(name, threads=0)
    out = b""
    for part in parts:  # one frame per part, like the backup splitter
        comp = c.compressor()
        out += comp.compress(part) + comp.flush()
    return out


def _decode(name: str, data: bytes, step: int) -> bytes:
    d = codec(name).decompressor()
    out = b"".join(d.decompress(data[i : i + step]) for i in range(0, len(data), step))
    return out + d.finish()


@pytest.mark.parametrize("name", CODECS)
@settings(max_examples=25, deadline=None)
@given(parts=st.lists(st.binary(max_size=3000), min_size=1, max_size=4), step=st.integers(1, 5000))
def test_concatenated_frames_round_trip(name: str, parts: list[bytes], step: int) -> None:
    assert _decode(name, _frames(name, parts), step) == b"".join(parts)


@pytest.mark.parametrize("name", ["zstd", "gzip"])
def test_truncation_and_corruption_are_detected(name: str) -> None:
    data = _frames(name, [os.urandom(5000) * 20, b"tail" * 1000])
    with pytest.raises(IntegrityError):
        _decode(name, data[: len(data) - 7], 1000)
    broken = bytearray(data)
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(IntegrityError):
        _decode(name, bytes(broken), 1000)


@pytest.mark.parametrize(("name", "tool"), [("zstd", "zstd"), ("gzip", "gzip")])
def test_the_plain_cli_tools_read_our_files(name: str, tool: str) -> None:
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")
    parts = [b"-- header\n", b"CREATE TABLE t (id int);\n" * 100, b"-- Dump completed\n"]
    out = subprocess.run([tool, "-dc"], input=_frames(name, parts), capture_output=True, check=True).stdout
    assert out == b"".join(parts)


def test_bad_codec_and_levels() -> None:
    with pytest.raises(ConfigError, match="unknown compression"):
        codec("lz5")
    with pytest.raises(ConfigError):
        codec("zstd", 40)
    with pytest.raises(ConfigError):
        codec("gzip", 0)
    assert codec_from_label(codec("gzip", 9).label).level == 9
    assert codec("zstd").extension == ".zst" and codec("none").extension == ""
