"""Progress of a long byte stream (a backup's dump, a restore's load): bytes, throughput, ETA.

The one progress type of the core: every entry point that streams bytes calls a
:data:`ProgressFn` with a :class:`Progress`, at most every ``interval`` seconds and once at
the end (:class:`Ticker`). How a line is logged is the caller's (the flows' reporter)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ProgressFn = Callable[["Progress"], None]


# --------------------------------------------------------------------------- progress
@dataclass
class Progress:
    """Bytes done so far (``dumped_bytes``) against what is expected (``estimated_bytes``):
    for a backup (``stage`` "dump"), bytes dumped against the server's estimate; for a restore
    (``stage`` "load"), raw bytes loaded against the manifest's raw size. The field names are
    the backup's, kept so that every reader of a backup's progress keeps working."""

    started: float
    estimated_bytes: int
    dumped_bytes: int = 0
    per_database: dict[str, int] = field(default_factory=dict)
    stage: str = "dump"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def throughput(self) -> float:
        return self.dumped_bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float:
        """Done against the total, at most 0.99 (an estimate can be short: 100% is the end of the run)."""
        if self.estimated_bytes <= 0:
            return 0.0
        return min(self.dumped_bytes / self.estimated_bytes, 0.99)

    @property
    def eta_seconds(self) -> float | None:
        if self.throughput <= 0 or self.estimated_bytes <= self.dumped_bytes:
            return None
        return (self.estimated_bytes - self.dumped_bytes) / self.throughput


class Ticker:
    """Calls ``progress`` at most every ``interval`` seconds (and once at the end)."""

    def __init__(self, progress: Progress, callback: ProgressFn | None, interval: float) -> None:
        self.progress = progress
        self.callback = callback
        self.interval = interval
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, database: str | None, n: int) -> None:
        with self._lock:
            self.progress.dumped_bytes += n
            if database is not None:
                self.progress.per_database[database] = self.progress.per_database.get(database, 0) + n
            now = time.monotonic()
            due = now - self._last >= self.interval
            if due:
                self._last = now
        if due and self.callback:
            self.callback(self.progress)

    def done(self) -> None:
        """The last call, whatever the interval."""
        if self.callback:
            self.callback(self.progress)
