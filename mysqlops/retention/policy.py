"""Retention policies: every field with one meaning."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from mysqlops.errors import RetentionError

# --------------------------------------------------------------------------- durations

_UNIT_SECONDS: dict[str, int] = {}
for _names, _seconds in (
    (("w", "wk", "week", "weeks"), 604800),
    (("d", "day", "days"), 86400),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("s", "sec", "secs", "second", "seconds"), 1),
):
    for _name in _names:
        _UNIT_SECONDS[_name] = _seconds

_UNIT_ALT = "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))
_COMPACT_PART = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT_ALT})(?![a-z])")
_COMPACT_FULL = re.compile(rf"(?:\d+(?:\.\d+)?\s*(?:{_UNIT_ALT})(?![a-z])\s*)+")
_ISO = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)
_DURATION_HELP = "use e.g. '7d', '36h', '2w', '1d12h', 'P7D', 'PT36H' or a number of seconds"


def parse_duration(text: str) -> timedelta:
    """Parse ``7d``, ``36h``, ``2w``, ``90m``, ``1d12h``, ``P7D``, ``P1DT12H`` or ``3600`` (seconds).

    Units: s, m (minutes), h, d, w (and their long names). Months and years are refused: they
    have no fixed length. The result must be positive.
    """
    if not isinstance(text, str):
        raise RetentionError(f"duration {text!r} is not a string; {_DURATION_HELP}")
    s = text.strip().lower()
    seconds: float
    if not s:
        raise RetentionError(f"empty duration; {_DURATION_HELP}")
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        seconds = float(s)
    elif s.startswith("p"):
        m = _ISO.fullmatch(s.upper())
        if not m or s in ("p", "pt") or s.endswith("t"):
            if re.match(r"^p(\d+y|\d+m)", s):
                raise RetentionError(
                    f"duration {text!r}: months and years have no fixed length; use days, e.g. 'P30D' or '365d'"
                )
            raise RetentionError(f"cannot parse duration {text!r}; {_DURATION_HELP}")
        parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
        seconds = parts["w"] * 604800 + parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    elif _COMPACT_FULL.fullmatch(s):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _COMPACT_PART.findall(s))
    else:
        if re.search(r"\d\s*(y|yr|yrs|years?|mo|mon|months?)(?![a-z])", s):
            raise RetentionError(
                f"duration {text!r}: months and years have no fixed length; use days, e.g. '30d' or '365d'"
            )
        raise RetentionError(f"cannot parse duration {text!r}; {_DURATION_HELP}")
    if seconds <= 0:
        raise RetentionError(f"duration {text!r} must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Compact form for reasons and descriptions: ``7d``, ``36h``, ``90m``, ``45s``."""
    total = value.total_seconds()
    if total != int(total):
        return f"{total:g}s"
    secs = int(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


_BARE_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise RetentionError(f"keep_within: {value!r} is not a duration; {_DURATION_HELP}")
    if isinstance(value, int | float) or (isinstance(value, str) and _BARE_NUMBER.fullmatch(value)):
        # a bare number read as seconds by one tool and as days by another is how 7 came to mean
        # both: the unit is always written
        n = str(value).strip()
        raise RetentionError(
            f"keep_within: {value!r} has no unit; write it with one, e.g. '{n}d' for {n} days, "
            f"'{n}h' for hours or '{n}s' for seconds"
        )
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except RetentionError as exc:
            raise RetentionError(f"keep_within: {exc}") from exc
    raise RetentionError(f"keep_within: {value!r} is not a duration; {_DURATION_HELP}")


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RetentionError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise RetentionError(f"{name} must be an integer, got {value!r}")


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RetentionError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise RetentionError(f"{name} must be a number, got {value!r}")


# --------------------------------------------------------------------------- policy


def option(default: Any, help: str, *, minimum: int | None = None, count: bool = False) -> Any:
    """A policy field with its one description: the block and the docs read it from here."""
    return field(default=default, metadata={"help": help, "minimum": minimum, "count": count})


def rule(help: str) -> Any:
    """A ``keep_*`` count rule: how many buckets to keep (0 disables it)."""
    return option(0, help, minimum=0, count=True)


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep. All ``keep_*`` rules combine; see the module docstring for the safety rules.

    ``keep_hourly``..``keep_yearly`` keep the newest good full in each of the N most recent UTC
    calendar buckets (weekly = ISO week) that have one. ``keep_within`` keeps every record
    newer than ``now - keep_within``. ``min_redundancy`` good fulls always stay.
    A full whose stored size is below ``suspicious_ratio`` x the median of the previous
    ``suspicious_window`` proven fulls of its server is flagged ``suspicious-size``.
    """

    keep_last: int = rule("Keep the N newest proven backups (a restore test passed).")
    keep_hourly: int = rule("Keep the newest backup of each of the last N hours.")
    keep_daily: int = rule("Keep the newest backup of each of the last N days.")
    keep_weekly: int = rule("Keep the newest backup of each of the last N ISO weeks.")
    keep_monthly: int = rule("Keep the newest backup of each of the last N months.")
    keep_yearly: int = rule("Keep the newest backup of each of the last N years.")
    keep_within: timedelta | None = option(None, "Keep everything newer than this, e.g. '7d', '36h'.")
    min_redundancy: int = option(1, "Proven backups (a restore test passed) that always stay.", minimum=1)
    suspicious_ratio: float = option(
        0.5, "A full below this share of the median of recent ones is suspicious."
    )
    suspicious_window: int = option(5, "How many previous proven fulls the median is taken over.", minimum=1)

    def __post_init__(self) -> None:
        for name in _COUNT_RULES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RetentionError(f"{name} must be a non-negative integer (0 disables it), got {value!r}")
        mr = self.min_redundancy
        if isinstance(mr, bool) or not isinstance(mr, int) or mr < 1:
            raise RetentionError(
                f"min_redundancy must be an integer >= 1 (the newest proven full always stays), got {mr!r}"
            )
        sw = self.suspicious_window
        if isinstance(sw, bool) or not isinstance(sw, int) or sw < 1:
            raise RetentionError(f"suspicious_window must be an integer >= 1, got {sw!r}")
        ratio = self.suspicious_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1:
            raise RetentionError(
                f"suspicious_ratio must be a number strictly between 0 and 1 (e.g. 0.5), got {ratio!r}"
            )
        within = self.keep_within
        if within is not None and (not isinstance(within, timedelta) or within <= timedelta(0)):
            raise RetentionError(f"keep_within must be a positive duration, got {within!r}")

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> RetentionPolicy:
        """Build from configuration (a block, YAML, JSON). ``None`` values mean "default".

        ``keep_within`` may be a timedelta or a string with a unit like ``7d``, ``36h``, ``2w``
        or ``P7D``; a bare number (``7``, ``"7"``) is refused, naming the unit to add. Unknown keys and an empty policy are refused.
        """
        if not isinstance(d, Mapping):
            raise RetentionError(f"a retention policy must be a mapping, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise RetentionError(
                f"unknown retention option(s): {', '.join(unknown)}; known options: {', '.join(known)}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if value is None:
                continue
            if key == "keep_within":
                kwargs[key] = _to_duration(value)
            elif key == "suspicious_ratio":
                kwargs[key] = _to_float(key, value)
            else:
                kwargs[key] = _to_int(key, value)
        policy = cls(**kwargs)
        policy.require_rules()
        return policy

    @property
    def is_empty(self) -> bool:
        """No keep_* rule and no keep_within: only min_redundancy would be left."""
        return self.keep_within is None and not any(getattr(self, name) for name in _COUNT_RULES)

    def require_rules(self) -> None:
        """Raise :class:`RetentionError` for an empty policy (plan() calls this)."""
        if self.is_empty:
            raise RetentionError(
                "refusing an empty policy: it would delete everything but min_redundancy; "
                "set keep_last/keep_hourly/keep_daily/keep_weekly/keep_monthly/keep_yearly or keep_within"
            )

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``keep last 3, 7 daily, within 7d; ...``."""
        parts = []
        if self.keep_last:
            parts.append(f"last {self.keep_last}")
        for name in ("hourly", "daily", "weekly", "monthly", "yearly"):
            n = getattr(self, f"keep_{name}")
            if n:
                parts.append(f"{n} {name}")
        if self.keep_within is not None:
            parts.append(f"within {format_duration(self.keep_within)}")
        rules = "keep " + ", ".join(parts) if parts else "no keep rule (empty policy, refused)"
        return (
            f"{rules}; min_redundancy {self.min_redundancy}; a full below "
            f"{self.suspicious_ratio:.0%} of the median of the previous {self.suspicious_window} "
            "proven fulls is suspicious"
        )


_COUNT_RULES = tuple(f.name for f in fields(RetentionPolicy) if f.metadata["count"])


def policy_options() -> dict[str, dict[str, Any]]:
    """Every field of a policy: ``{name: {"default", "description", "minimum"}}``, the one
    listing configuration surfaces (the Prefect block) build their fields from."""
    return {
        f.name: {"default": f.default, "description": f.metadata["help"], "minimum": f.metadata["minimum"]}
        for f in fields(RetentionPolicy)
    }
