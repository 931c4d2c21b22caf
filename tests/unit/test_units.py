"""One formatter for bytes, rates, durations and times; progress lines that do not lie."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mysqlops.progress import Progress, describe_transfer
from mysqlops.sql.sizes import tablespace_prefix
from mysqlops.units import byte_unit, duration_unit, human_age, human_bytes, human_rate, human_time


def test_rates_and_ages_share_the_byte_and_duration_formatter() -> None:
    assert human_rate(1.5 * 2**20) == "1.5 MiB/s" == human_bytes(1.5 * 2**20) + "/s"
    assert human_rate(float("nan")) == "n/a"
    assert human_age(timedelta(minutes=3, seconds=5)) == "3m 05s"
    assert human_age(timedelta(seconds=-5)) == "in the future (clock skew?)"


def test_times_name_their_zone() -> None:
    at = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert human_time(at) == "2026-03-01 02:00 UTC"
    assert human_time(at.astimezone(timezone(timedelta(hours=1)))) == "2026-03-01 02:00 UTC"
    assert human_time(at, "Europe/Berlin") == "2026-03-01 03:00 CET"
    with pytest.raises(ValueError, match="timezone-aware"):
        human_time(datetime(2026, 3, 1))  # noqa: DTZ001 - the point of the test


def test_axis_units() -> None:
    assert byte_unit(900) == (1.0, "B")
    assert byte_unit(30 * 2**20) == (2.0**20, "MiB")
    assert byte_unit(3 * 2**40) == (2.0**40, "TiB")
    assert duration_unit(90) == (1.0, "seconds")
    assert duration_unit(600) == (60.0, "minutes")
    assert duration_unit(5 * 3600) == (3600.0, "hours")
    assert duration_unit(5 * 86400) == (86400.0, "days")


def test_progress_shows_no_percentage_or_eta_past_the_estimate() -> None:
    p = Progress(started=time.monotonic() - 10, estimated_bytes=128 * 1024, dumped_bytes=59 * 2**20)
    line = p.describe()
    assert line.startswith("dumped 59.0 MiB at 5.9 MiB/s (more than the estimate of ~128.0 KiB)"), line
    assert "%" not in line and "ETA" not in line and p.eta_seconds is None
    p = Progress(started=time.monotonic() - 10, estimated_bytes=40 * 2**20, dumped_bytes=10 * 2**20)
    assert p.describe() == "dumped 10.0 MiB of ~40.0 MiB (25%) at 1.0 MiB/s, ETA 30s"
    assert (
        describe_transfer("loaded", 5 * 2**20, 5 * 2**20, 2.0)
        == "loaded 5.0 MiB of 5.0 MiB (100%) at 2.5 MiB/s"
    )
    assert describe_transfer("loaded", 3, 0, 1.0) == "loaded 3 B at 3 B/s"
    p.finished = True  # the last line of a run says it is done, not "77%, ETA 1s"
    assert p.describe() == "dumped 10.0 MiB in 10s at 1.0 MiB/s (done)"
    load = Progress(
        started=time.monotonic() - 4, estimated_bytes=8 * 2**20, dumped_bytes=2 * 2**20, stage="load"
    )
    assert load.describe() == "loaded 2.0 MiB of 8.0 MiB (25%) at 512.0 KiB/s, ETA 12s"


def test_tablespace_names_use_the_server_file_name_encoding() -> None:
    assert tablespace_prefix("shop") == "shop"
    assert tablespace_prefix("my-db") == "my@002ddb"
    assert tablespace_prefix("a b") == "a@0020b"
    assert tablespace_prefix("ü") is None
