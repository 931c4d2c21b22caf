"""Report inputs and frame schemas."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from mysqlops.manifest import BackupManifest, BinlogManifest, RestoreCertificate, Verdict

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

MIB = 1024 * 1024
TS = "datetime64[us, UTC]"
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_DAY = pd.Timedelta(days=1)
_SEP = "\x00"
EMPTY_MESSAGE = "no backups in the catalog"
ANOMALY_KINDS = ("size-drop", "size-jump", "duration-jump", "binlog-gap", "stale")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class LocationInfo:
    """What the 3-2-1 rule needs to know about a location (see ``model.Location.kind``)."""

    name: str
    kind: str
    offsite: bool = False


@dataclass(frozen=True)
class Catalog:
    """Everything the report reads: manifests found at the locations, and location metadata.

    ``policies`` maps a location name to a retention policy: a mapping (or a dataclass, or an
    object with ``keep_*`` attributes) with the keys listed in the module docstring.
    ``verdicts`` (``catalog.verdicts``: also knows damaged copies) overrides the verdicts
    derived from ``certificates``.
    """

    backups: Sequence[BackupManifest]
    binlogs: Sequence[BinlogManifest] = ()
    certificates: Sequence[RestoreCertificate] = ()
    locations: Sequence[LocationInfo] = ()
    policies: Mapping[str, Any] = field(default_factory=dict)
    verdicts: Mapping[tuple[str, str, str], Verdict] | None = None


# --------------------------------------------------------------------------- frame schemas

BACKUPS_SCHEMA: dict[str, str] = {
    "backup_id": "str",
    "server": "str",
    "location": "str",
    "location_kind": "str",
    "offsite": "bool",
    "kind": "str",
    "method": "str",
    "status": "str",
    "started_at": TS,
    "finished_at": TS,
    "raw_bytes": "int64",
    "stored_bytes": "int64",
    "ratio": "float64",
    "duration_s": "float64",
    "dump_s": "float64",
    "upload_s": "float64",
    "verify_s": "float64",
    "throughput_mib_s": "float64",
    "databases": "int64",
    "verified": "bool",
    "verdict": "str",
    "proven": "bool",
    "restore_tested": "bool",
    "parent_id": "str",
    "compression": "str",
    "keep_forever": "bool",
    "retained": "bool",  # kept by the location's retention policy today (True without a policy)
}
DATABASES_SCHEMA: dict[str, str] = {
    "backup_id": "str",
    "server": "str",
    "database": "str",
    "kind": "str",
    "method": "str",
    "finished_at": TS,
    "files": "int64",
    "raw_bytes": "int64",
    "stored_bytes": "int64",
    "ratio": "float64",
    "dump_s": "float64",
    "throughput_mib_s": "float64",
}
GROWTH_SCHEMA: dict[str, str] = {
    "server": "str",
    "method": "str",
    "database": "str",  # "*" = the whole server
    "backups": "int64",
    "first_at": TS,
    "last_at": TS,
    "history_days": "float64",  # growth and forecasts are NaN below 7 days ("not enough history")
    "first_bytes": "int64",
    "last_bytes": "int64",
    "growth_bytes_per_day": "float64",
    "forecast_30d": "float64",
    "forecast_90d": "float64",
    "last_stored_bytes": "int64",
    "stored_growth_bytes_per_day": "float64",
    "stored_forecast_30d": "float64",
    "stored_forecast_90d": "float64",
    "storage_needed_bytes": "float64",  # server rows: sum over locations of storage_needed_90d
}
STORAGE_SCHEMA: dict[str, str] = {
    "server": "str",
    "location": "str",
    "location_kind": "str",
    "offsite": "bool",
    "policy": "str",
    "backups": "int64",
    "retained_backups": "int64",
    "retained_bytes": "int64",
    "binlog_bytes": "int64",
    "storage_now_bytes": "int64",
    "storage_needed_30d": "float64",
    "storage_needed_90d": "float64",
}
LOCATIONS_SCHEMA: dict[str, str] = {
    "server": "str",
    "backups": "int64",
    "copies_min": "int64",
    "copies_median": "float64",
    "locations": "str",
    "kinds": "str",
    "offsite": "bool",
    "newest_full_id": "str",
    "newest_copies": "int64",
    "newest_kinds": "int64",
    "newest_offsite": "bool",
    "meets_321": "bool",
    "reason": "str",
}
RESTORES_SCHEMA: dict[str, str] = {
    "server": "str",
    "backup_id": "str",
    "location": "str",
    "tested_at": TS,
    "passed": "bool",
    "restore_s": "float64",
    "recovery_point_s": "float64",
    "checks": "int64",
    "checks_failed": "int64",
    "failed_checks": "str",
    "lossy": "int64",
    "source_version": "str",
    "target_version": "str",
}
FRESHNESS_SCHEMA: dict[str, str] = {
    "server": "str",
    "newest_backup_id": "str",  # the newest PROVEN backup (a restore test passed)
    "newest_at": TS,
    "age_s": "float64",
    "newest_unproven_id": "str",  # a newer complete backup not proven (yet), if any
    "newest_unproven_at": TS,
    "target_s": "float64",
    "ok": "bool",
    "newest_binlog_at": TS,
    "binlog_age_s": "float64",
    "last_restore_test_at": TS,
    "last_passed_restore_at": TS,
}
RECOVERY_SCHEMA: dict[str, str] = {  # one row per server: ``recovery_window.recovery_windows``
    "server": "str",
    "oldest_backup_id": "str",  # the oldest backup a restore test proved (NaN: nothing proven)
    "oldest_at": TS,
    "newest_at": TS,  # the newest restorable point (its end, or binlogs archived without a gap)
    "from_binlogs": "bool",
    "window_s": "float64",
    "pitr_from_id": "str",
    "gaps": "int64",  # binlog files missing after the oldest point's position
    "untested": "int64",  # complete backups no restore test proved (not in the window)
}
ANOMALIES_SCHEMA: dict[str, str] = {
    "server": "str",
    "backup_id": "str",
    "kind": "str",
    "detail": "str",
    "at": TS,
    "value": "float64",  # size-drop: stored bytes; duration-jump: seconds; stale: age s; gap: files
    "expected": "float64",  # the median / target it was compared with
}
BINLOGS_SCHEMA: dict[str, str] = {
    "server": "str",
    "location": "str",
    "file": "str",
    "sequence": "float64",
    "server_id": "int64",
    "archived_at": TS,
    "first_event_at": TS,
    "last_event_at": TS,
    "raw_bytes": "int64",
    "stored_bytes": "int64",
}


def _empty(schema: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in schema.items()})


def _conform(df: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """Exactly the schema's columns, in order, with its dtypes (text columns keep missing values)."""
    if df.empty:
        return _empty(schema)
    out = df.reindex(columns=list(schema)).reset_index(drop=True)
    casts = {c: d for c, d in schema.items() if d != "str" and str(out[c].dtype) != d}
    return out.astype(casts) if casts else out
