"""Human units: the one formatter for bytes, rates, durations and times, used by reports, logs,
checks and artifacts alike (binary units: KiB, MiB, GiB; rates in MiB/s; times with their zone)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

# --------------------------------------------------------------------------- formatting


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units, one decimal; ``n/a`` for missing values."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 1024:
        return f"{sign}{value:.0f} B"
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if round(value, 1) >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{sign}{value:.1f} {_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """``3725`` -> ``"1h 02m"``, ``62`` -> ``"1m 02s"``, ``4.2`` -> ``"4.2s"``, days as ``"2d 03h"``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    value = float(seconds)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 10:
        return f"{sign}{value:.1f}s"
    total = round(value)
    if total < 60:
        return f"{sign}{total}s"
    if total < 3600:
        return f"{sign}{total // 60}m {total % 60:02d}s"
    minutes = round(value / 60)
    if minutes < 24 * 60:
        return f"{sign}{minutes // 60}h {minutes % 60:02d}m"
    hours = round(value / 3600)
    return f"{sign}{hours // 24}d {hours % 24:02d}h"


def human_rate(bytes_per_second: float) -> str:
    """``1572864`` -> ``"1.5 MiB/s"``: the same binary units as :func:`human_bytes`."""
    if bytes_per_second is None or (isinstance(bytes_per_second, float) and math.isnan(bytes_per_second)):
        return "n/a"
    return f"{human_bytes(bytes_per_second)}/s"


def human_age(delta: timedelta | float) -> str:
    """An age (``now - then``): :func:`human_duration`, or a clock-skew note when negative."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        return "in the future (clock skew?)"
    return human_duration(seconds)


def human_time(value: datetime | None, tz: str = "UTC") -> str:
    """``2026-03-01 02:00 UTC``: minutes, always with the zone named (UTC unless ``tz`` says)."""
    if value is None:
        return "n/a"
    if value.tzinfo is None:
        raise ValueError(f"human_time needs a timezone-aware datetime, got {value!r}")
    if tz == "UTC":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def byte_unit(largest: float) -> tuple[float, str]:
    """``(divisor, name)`` of the binary unit :func:`human_bytes` would show ``largest`` in, for
    a chart axis or a column of numbers in one unit."""
    value = abs(float(largest)) if largest is not None and not math.isnan(largest) else 0.0
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return float(1024**unit), _UNITS[unit]


def duration_unit(largest: float) -> tuple[float, str]:
    """``(divisor, name)``: seconds below 2 minutes, minutes below 2 hours, hours below 3 days, days."""
    value = abs(float(largest)) if largest is not None and not math.isnan(largest) else 0.0
    for limit, divisor, name in (
        (120, 1.0, "seconds"),
        (7200, 60.0, "minutes"),
        (3 * 86400, 3600.0, "hours"),
    ):
        if value < limit:
            return divisor, name
    return 86400.0, "days"
