"""Read a staging file while the dump is still writing it (``tail -f`` with an end).

The backup uploads each staged file while it grows, so the upload overlaps the dump instead of
following it. The writer owns a :class:`Growth` and calls :meth:`Growth.finish` with the final
size once the file is complete and fsynced, or :meth:`Growth.fail` when the dump failed; a
:class:`FollowReader` returns the file's bytes as they appear, ``b""`` only at the final size,
and raises :class:`~mysqlops.errors.BackupAborted` once the writer failed. Bytes of an
append-only file never change once written, so reading what is there is always correct.

A reader never buffers more than one read, and a retry simply opens a new reader at offset 0:
the whole file stays on local disk until the backup ends.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import Any

from mysqlops.errors import BackupAborted


class Growth:
    """Writer-side state of one file: growing, finished (final size known) or failed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.final_size: int | None = None
        self.failure: str | None = None

    def finish(self, size: int) -> None:
        with self._cond:
            self.final_size = size
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        with self._cond:
            if self.final_size is None:
                self.failure = reason
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            if self.final_size is None and self.failure is None:
                self._cond.wait(timeout)


class FollowReader(io.RawIOBase):
    """A raw reader of ``path`` that waits for more bytes until ``growth`` is finished."""

    def __init__(
        self,
        path: str,
        growth: Growth,
        poll_seconds: float = 0.2,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._growth = growth
        self._poll = poll_seconds
        self._on_read = on_read
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            final = self._growth.final_size
            want = len(view) if final is None else min(len(view), final - self._pos)
            if want <= 0:
                return 0
            n = os.readv(self._fd, [view[:want]])
            if n:
                self._pos += n
                if self._on_read is not None:
                    self._on_read(n)
                return n
            if self._growth.failure is not None:
                raise BackupAborted(self._growth.failure)
            if final is not None:
                raise BackupAborted(f"staging file ended at {self._pos} bytes, expected {final}")
            self._growth.wait(self._poll)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
