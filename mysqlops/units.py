"""Human units: one formatter for bytes and durations."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

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
