"""Progress of a long byte stream (a backup's dump, a restore's load): bytes, throughput, ETA,
and the one line that says it (:meth:`Progress.describe`).

The one progress type of the core: every entry point that streams bytes calls a
:data:`ProgressFn` with a :class:`Progress`, at most every ``interval`` seconds and once at
the end (:class:`Ticker`). A backup's total is an estimate from the server
(``backup.preflight``: the larger of the table statistics and the InnoDB tablespace files,
since statistics are stale right after a bulk load): once the bytes exceed it, no percentage
and no ETA are shown, only the bytes and the rate, in the binary units of ``mysqlops.units``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mysqlops.units import human_bytes, human_duration, human_rate

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
    finished: bool = False  # set by Ticker.done(): the run is over, whatever the estimate said

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
    def exceeded(self) -> bool:
        """More was dumped than estimated: the estimate says nothing any more."""
        return self.dumped_bytes > self.estimated_bytes

    @property
    def eta_seconds(self) -> float | None:
        if self.throughput <= 0 or self.estimated_bytes <= self.dumped_bytes:
            return None
        return (self.estimated_bytes - self.dumped_bytes) / self.throughput

    def describe(self) -> str:
        """``dumped 12.0 MiB of ~59.0 MiB (20%) at 4.1 MiB/s, ETA 11s``; past the estimate:
        ``dumped 59.0 MiB at 4.1 MiB/s (more than the estimate of ~128 KiB)``. A restore
        (stage "load") says ``loaded``, and its total is exact (the manifest's raw size)."""
        verb = "loaded" if self.stage == "load" else "dumped"
        if self.finished:  # the end: no percentage of an estimate, no ETA
            return (
                f"{verb} {human_bytes(self.dumped_bytes)} in {human_duration(self.elapsed)} "
                f"at {human_rate(self.throughput)} (done)"
            )
        if self.stage == "load":
            return describe_transfer("loaded", self.dumped_bytes, self.estimated_bytes, self.elapsed)
        return describe_transfer(
            "dumped", self.dumped_bytes, self.estimated_bytes, self.elapsed, estimate=True
        )


def describe_transfer(verb: str, done: int, total: int, elapsed: float, *, estimate: bool = False) -> str:
    """One progress line for logs: bytes, percentage and ETA only while ``done <= total``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    of = "~" if estimate else ""
    if total <= 0:
        return f"{verb} {human_bytes(done)} at {human_rate(rate)}"
    if done > total:
        what = "the estimate" if estimate else "the expected size"
        return (
            f"{verb} {human_bytes(done)} at {human_rate(rate)} (more than {what} of {of}{human_bytes(total)})"
        )
    line = f"{verb} {human_bytes(done)} of {of}{human_bytes(total)} ({100 * done / total:.0f}%) at {human_rate(rate)}"
    if rate > 0 and done < total:
        line += f", ETA {human_duration((total - done) / rate)}"
    return line


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
        self.progress.finished = True
        if self.callback:
            self.callback(self.progress)
