"""Streaming sha256 while reading or writing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import IO

CHUNK = 1 << 20


class CountingHash:
    """sha256 + byte count of a stream fed chunk by chunk."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def iter_chunks(handle: IO[bytes], chunk: int = CHUNK) -> Iterable[bytes]:
    while True:
        data = handle.read(chunk)
        if not data:
            return
        yield data


def sha256_stream(handle: IO[bytes], chunk: int = CHUNK) -> tuple[str, int]:
    h = CountingHash()
    for data in iter_chunks(handle, chunk):
        h.update(data)
    return h.hexdigest(), h.size


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
