"""GTID text in both flavors (pure text, no SQL: the floor under ``model``, ``sql`` and ``tools``)."""

from __future__ import annotations

import re

from mysqlops.errors import (
    ConfigError,
)


def normalize_gtid(text: str | None) -> str | None:
    """A GTID set/position without whitespace (MySQL prints sets over several lines); '' -> None."""
    if text is None:
        return None
    value = re.sub(r"\s+", "", str(text))
    return value or None


_MARIADB_GTID = re.compile(r"^\d+-\d+-\d+(,\d+-\d+-\d+)*$")
_MYSQL_GTID = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(:([A-Za-z_][A-Za-z0-9_]{0,31}|\d+(-\d+)?))+"
    r"(,[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(:([A-Za-z_][A-Za-z0-9_]{0,31}|\d+(-\d+)?))+)*$"
)


# =========================================================================== GTIDs (pure)
def parse_mariadb_gtids(text: str) -> dict[int, tuple[int, int]]:
    """``"0-1-5,1-2-9"`` -> ``{domain: (server_id, seq)}``; a ConfigError for anything else."""
    out: dict[int, tuple[int, int]] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        parts = item.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"{item!r} is not a MariaDB GTID (domain-server_id-sequence, e.g. 0-1-42)")
        domain, server_id, seq = (int(p) for p in parts)
        if domain in out:
            raise ConfigError(f"GTID list {text!r} names domain {domain} twice")
        out[domain] = (server_id, seq)
    return out
