"""One progress type for every byte stream (backup dump, restore load)."""

from __future__ import annotations

import time

from mysqlops.progress import Progress, Ticker


def test_ticker_reports_at_most_every_interval_and_once_at_the_end() -> None:
    for interval, expected in ((0.0, [100, 200, 300, 300]), (1e12, [300])):
        seen: list[int] = []
        ticker = Ticker(
            Progress(time.monotonic(), 300, stage="load"),
            lambda p, seen=seen: seen.append(p.dumped_bytes),
            interval,
        )
        for _ in range(3):
            ticker.add("shop", 100)
        ticker.done()
        assert seen == expected
        assert ticker.progress.per_database == {"shop": 300}


def test_fraction_and_eta() -> None:
    p = Progress(time.monotonic() - 10, estimated_bytes=1000, dumped_bytes=500)
    assert p.fraction == 0.5
    assert p.eta_seconds is not None and 8 < p.eta_seconds < 12
    assert (
        Progress(time.monotonic(), estimated_bytes=100, dumped_bytes=150).fraction == 0.99
    )  # a short estimate
    assert Progress(time.monotonic(), estimated_bytes=0).fraction == 0.0
