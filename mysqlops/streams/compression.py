"""Codec registry: zstd (default, multi-threaded), gzip (compatibility), none.

Streaming objects only: ``compress(chunk) -> bytes`` / ``flush() -> bytes`` so memory stays
flat whatever the stream length.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Protocol

import zstandard

from mysqlops.errors import ConfigError, IntegrityError


class Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes: ...
    def flush(self) -> bytes: ...


class Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


@dataclass(frozen=True)
class Codec:
    name: str
    extension: str
    level: int
    threads: int = 0

    def compressor(self) -> Compressor:
        if self.name == "zstd":
            return _ZstdCompressor(self.level, self.threads)
        if self.name == "gzip":
            return _GzipCompressor(self.level)
        return _Identity()

    def decompressor(self) -> Decompressor:
        if self.name == "zstd":
            return _ZstdDecompressor()
        if self.name == "gzip":
            return _GzipDecompressor()
        return _Identity()

    @property
    def label(self) -> str:
        return f"{self.name}-{self.level}" if self.name != "none" else "none"


class _Identity:
    def compress(self, data: bytes | memoryview) -> bytes:
        return bytes(data)  # callers get bytes, never a view

    def decompress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


ZSTD_JOB_BYTES = 2 * 1024 * 1024


class _ZstdCompressor:
    def __init__(self, level: int, threads: int) -> None:
        # 2 MiB jobs instead of zstd's default (4x the window: 8 MiB at level 3): on a 300 MB dump,
        # buffers 53 -> 15 MiB, CPU 0.78 -> 0.64 s, and a slightly smaller output
        job = ZSTD_JOB_BYTES if threads > 0 else 0
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, write_checksum=1, job_size=job
        )
        self._cctx = zstandard.ZstdCompressor(compression_params=params)
        self._obj = self._cctx.compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        """End the frame; the next ``compress`` starts a new one (same context and threads:
        a frame per table section costs no new compressor)."""
        out = self._obj.flush()
        self._obj = self._cctx.compressobj()
        return out


class _ZstdDecompressor:
    """Decodes concatenated frames (the backup splitter writes one frame per section)."""

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                self._in_frame = True
                out.append(self._obj.decompress(data))
                if not self._obj.eof:
                    break
                self._in_frame = False
                data = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"zstd data is corrupt: {exc}") from None
        return b"".join(out)

    def finish(self) -> bytes:
        if self._in_frame:
            raise IntegrityError("zstd stream is truncated (no end of frame)")
        return b""


class _GzipCompressor:
    def __init__(self, level: int) -> None:
        self._level = level
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        """End the gzip member; the next ``compress`` starts a new one."""
        out = self._obj.flush()
        self._obj = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        return out


class _GzipDecompressor:
    """Decodes concatenated gzip members (as ``gunzip`` does)."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(47)
        self._in_member = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                self._in_member = True
                out.append(self._obj.decompress(data))
                if not self._obj.eof:
                    break
                self._in_member = False
                data = self._obj.unused_data
                self._obj = zlib.decompressobj(47)
        except zlib.error as exc:
            raise IntegrityError(f"gzip data is corrupt: {exc}") from None
        return b"".join(out)

    def finish(self) -> bytes:
        if self._in_member:
            raise IntegrityError("gzip stream is truncated")
        return b""


_DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": 0}
_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}


def codec(name: str = "zstd", level: int | None = None, threads: int | None = None) -> Codec:
    """A codec by name. zstd uses all cores by default (``threads``)."""
    key = (name or "").lower()
    if key in ("zst",):
        key = "zstd"
    if key in ("gz",):
        key = "gzip"
    if key not in _DEFAULT_LEVELS:
        raise ConfigError(f"unknown compression {name!r}: use one of zstd (default), gzip, none")
    lvl = _DEFAULT_LEVELS[key] if level is None else int(level)
    if key == "zstd" and not 1 <= lvl <= 22:
        raise ConfigError(f"zstd level {lvl} is out of range 1..22")
    if key == "gzip" and not 1 <= lvl <= 9:
        raise ConfigError(f"gzip level {lvl} is out of range 1..9")
    n = (os.cpu_count() or 1) if threads is None else int(threads)
    return Codec(key, _EXTENSIONS[key], lvl, n if key == "zstd" else 0)


def codec_from_label(label: str) -> Codec:
    """Inverse of :attr:`Codec.label` (as stored in manifests)."""
    name, _, level = label.partition("-")
    return codec(name, int(level) if level else None, threads=0)
