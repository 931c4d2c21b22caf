"""The backup catalog as pandas DataFrames: sizes, speeds, growth, 3-2-1, restores, anomalies.

Pure pandas: ``build_report`` takes parsed manifests and a ``now`` (timezone-aware UTC) and
does no I/O. ``write_outputs`` is the one function that writes, and only through the fsspec
filesystem it is given. Every frame has a fixed set of columns and dtypes, also when empty,
so flows, notebooks and artifacts can rely on them.

Units: bytes are bytes, durations are seconds (``*_s``), throughput is decimal MB/s
(10**6 bytes per second) of raw (uncompressed) data, ``ratio`` is raw/stored (2.0 = 2:1).

Decisions the callers should know:

* Copies are reported under the location they were FOUND at (``Catalog.backups`` and
  ``Catalog.certificates`` come from ``catalog.scan``, which replaces a manifest's own claim).
* Each copy has a ``verdict`` from the restore certificates (``manifest.copy_verdicts``, or
  ``Catalog.verdicts`` from ``catalog.verdicts``): ``passed`` (its newest test passed),
  ``proven-by-copy`` (an identical copy passed), ``failed`` (its newest test FAILED),
  ``damaged`` (files missing), ``untested``.
* A backup copy is *verified* when its manifest is ``complete``, it holds data (an empty
  backup proves nothing) and it is not ``failed``/``damaged``; it is *proven* when, in
  addition, a restore test proved it (``passed``/``proven-by-copy``). A manifest proves only
  that an upload finished: freshness and 3-2-1 count proven copies only (the newest PROVEN
  backup decides freshness); growth and anomalies use verified copies.
* Growth uses verified *full* backups, per server and backup method (a physical and a logical
  backup of the same server differ in size by design), by least squares over time.
* Anomalies compare a backup with the median of up to ``window`` previous complete backups of
  the same server, kind and method (at least one previous backup is needed).
* Retention policies (``Catalog.policies``, per location) are estimated by applying the
  keep rules to the backups present now: ``keep_last``, ``keep_within`` (timedelta, days as a
  number, or a text such as ``"14d"``, ``"36h"``, ``"2w"``, ``"1y"``), ``keep_hourly``,
  ``keep_daily``, ``keep_weekly``, ``keep_monthly``, ``keep_yearly`` (newest full per UTC
  period, for the newest N periods that have one; weeks start on Monday) and
  ``min_redundancy`` (the newest N verified fulls), the names of ``retention.RetentionPolicy``,
  which is accepted as is. The rules select full backups; an incremental is retained when its
  parent is; ``keep_forever`` backups always are. A policy without any keep rule counts
  everything present. Other keys are ignored. Binlogs count from the oldest retained backup on.
  This is an estimate for capacity planning, not the deletion plan (``retention.plan``).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from mysqlops.errors import ConfigError, StorageError
from mysqlops.manifest import BackupManifest, BinlogManifest, RestoreCertificate, Verdict, copy_verdicts
from mysqlops.model import BackupKind, BackupStatus

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

MB = 1_000_000
TS = "datetime64[us, UTC]"
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_DAY = pd.Timedelta(days=1)
_SEP = "\x00"
EMPTY_MESSAGE = "no backups in the catalog"
ANOMALY_KINDS = ("size-drop", "duration-jump", "binlog-gap", "stale")
POLICY_KEYS = (
    "keep_last",
    "keep_within",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "min_redundancy",
)


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
    "throughput_mbps": "float64",
    "databases": "int64",
    "verified": "bool",
    "verdict": "str",
    "proven": "bool",
    "restore_tested": "bool",
    "parent_id": "str",
    "compression": "str",
    "keep_forever": "bool",
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
    "throughput_mbps": "float64",
}
GROWTH_SCHEMA: dict[str, str] = {
    "server": "str",
    "method": "str",
    "database": "str",  # "*" = the whole server
    "backups": "int64",
    "first_at": TS,
    "last_at": TS,
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


# --------------------------------------------------------------------------- the report


@dataclass
class Report:
    backups: pd.DataFrame
    databases: pd.DataFrame
    growth: pd.DataFrame
    locations: pd.DataFrame
    restores: pd.DataFrame
    freshness: pd.DataFrame
    anomalies: pd.DataFrame
    generated_at: datetime
    empty: bool
    message: str
    storage: pd.DataFrame = field(default_factory=lambda: _empty(STORAGE_SCHEMA))

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "backups": self.backups,
            "databases": self.databases,
            "growth": self.growth,
            "storage": self.storage,
            "locations": self.locations,
            "restores": self.restores,
            "freshness": self.freshness,
            "anomalies": self.anomalies,
        }

    def summary_markdown(self) -> str:
        return _summary_markdown(self)


def build_report(
    catalog: Catalog,
    now: datetime,
    freshness_target: timedelta = timedelta(hours=26),
    size_drop_ratio: float = 0.5,
    duration_jump_ratio: float = 2.0,
    window: int = 5,
) -> Report:
    """Turn a catalog into a ``Report``. ``now`` must be timezone-aware; nothing is read or written."""
    if now.tzinfo is None:
        raise ConfigError("build_report needs a timezone-aware `now` (UTC)")
    if window < 1:
        raise ConfigError(f"window must be at least 1, got {window}")
    if size_drop_ratio <= 0 or duration_jump_ratio <= 0:
        raise ConfigError("size_drop_ratio and duration_jump_ratio must be positive")
    if freshness_target <= timedelta(0):
        raise ConfigError("freshness_target must be positive")
    ts_now = pd.Timestamp(now).tz_convert("UTC")

    locinfo = {loc.name: loc for loc in catalog.locations}
    restores = _restores_frame(catalog.certificates)
    verdicts = (
        catalog.verdicts
        if catalog.verdicts is not None
        else copy_verdicts(catalog.backups, catalog.certificates)
    )
    backups = _backups_frame(catalog.backups, locinfo, verdicts)
    databases = _databases_frame(catalog.backups)
    binlogs = _binlogs_frame(catalog.binlogs)

    growth = _growth_frame(backups, databases, ts_now)
    storage = _storage_frame(backups, binlogs, growth, locinfo, catalog.policies, ts_now)
    if not storage.empty and not growth.empty:
        needed = storage.groupby("server")["storage_needed_90d"].sum()
        server_rows = growth["database"] == "*"
        growth.loc[server_rows, "storage_needed_bytes"] = growth.loc[server_rows, "server"].map(needed)
    locations = _locations_frame(backups, binlogs)
    freshness = _freshness_frame(backups, binlogs, restores, ts_now, freshness_target)
    anomalies = _anomalies_frame(backups, binlogs, freshness, size_drop_ratio, duration_jump_ratio, window)

    empty = backups.empty
    if empty:
        message = EMPTY_MESSAGE
    else:
        n_ids = backups[["server", "backup_id"]].drop_duplicates().shape[0]
        message = (
            f"{_plural(n_ids, 'backup')} ({_plural(len(backups), 'copy', 'copies')}) of "
            f"{_plural(backups['server'].nunique(), 'server')} at "
            f"{_plural(backups['location'].nunique(), 'location')}; {_plural(len(anomalies), 'anomaly', 'anomalies')}; "
            f"{int((~freshness['ok']).sum())} stale; "
            f"{int((~locations['meets_321']).sum())} short of 3-2-1"
        )
    return Report(
        backups=backups,
        databases=databases,
        growth=growth,
        locations=locations,
        restores=restores,
        freshness=freshness,
        anomalies=anomalies,
        generated_at=ts_now.to_pydatetime(),
        empty=empty,
        message=message,
        storage=storage,
    )


# --------------------------------------------------------------------------- frames from manifests


def _stage(m: BackupManifest, names: Sequence[str]) -> float:
    """A stage's seconds: the manifest total if recorded, else the sum over its files."""
    for name in names:
        value = m.durations.get(name)
        if value is not None:
            return float(value)
    for name in names:
        values = [f.durations[name] for f in m.files if name in f.durations]
        if values:
            return float(sum(values))
    return math.nan


def _ratio(raw: pd.Series, stored: pd.Series) -> pd.Series:
    return raw / stored.where(stored > 0)


def _per_second(raw: pd.Series, seconds: pd.Series) -> pd.Series:
    return raw / MB / seconds.where(seconds > 0)


def _backups_frame(
    manifests: Sequence[BackupManifest],
    locinfo: Mapping[str, LocationInfo],
    verdicts: Mapping[tuple[str, str, str], Verdict],
) -> pd.DataFrame:
    if not manifests:
        return _empty(BACKUPS_SCHEMA)
    rows = [
        (
            m.backup_id,
            m.server,
            m.location,
            m.kind.value,
            m.method.value,
            m.status.value,
            m.started_at,
            m.finished_at,
            m.raw_bytes,
            m.stored_bytes,
            float(m.durations["total"])
            if "total" in m.durations
            else (m.finished_at - m.started_at).total_seconds(),
            _stage(m, ("dump",)),
            _stage(m, (f"upload:{m.location}", "upload")),
            _stage(m, (f"verify:{m.location}", "verify")),
            len(m.databases),
            m.parent_id,
            m.compression,
            m.keep_forever,
            verdicts.get((m.location, m.server, m.backup_id), Verdict.UNTESTED).value,
        )
        for m in manifests
    ]
    cols = [
        "backup_id",
        "server",
        "location",
        "kind",
        "method",
        "status",
        "started_at",
        "finished_at",
        "raw_bytes",
        "stored_bytes",
        "duration_s",
        "dump_s",
        "upload_s",
        "verify_s",
        "databases",
        "parent_id",
        "compression",
        "keep_forever",
        "verdict",
    ]
    df = pd.DataFrame.from_records(rows, columns=cols)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True)
    df["finished_at"] = pd.to_datetime(df["finished_at"], utc=True)
    kinds = {name: info.kind for name, info in locinfo.items()}
    df["location_kind"] = df["location"].map(kinds).fillna("unknown")
    df["offsite"] = df["location"].isin({n for n, info in locinfo.items() if info.offsite})
    df["ratio"] = _ratio(df["raw_bytes"], df["stored_bytes"])
    df["throughput_mbps"] = _per_second(df["raw_bytes"], df["duration_s"])
    damaged = df["verdict"].isin([Verdict.FAILED.value, Verdict.DAMAGED.value])
    complete = df["status"] == BackupStatus.COMPLETE.value
    df["verified"] = complete & (df["raw_bytes"] > 0) & (df["databases"] > 0) & ~damaged
    df["proven"] = df["verified"] & df["verdict"].isin([Verdict.PASSED.value, Verdict.PROVEN_BY_COPY.value])
    df["restore_tested"] = df["verdict"] == Verdict.PASSED.value
    df = df.sort_values(["server", "finished_at", "backup_id", "location"], kind="stable")
    return _conform(df, BACKUPS_SCHEMA)


def _databases_frame(manifests: Sequence[BackupManifest]) -> pd.DataFrame:
    """Per backup and database, from one copy of each backup (copies hold the same files)."""
    seen: set[str] = set()
    rows: list[tuple[Any, ...]] = []
    for m in sorted(manifests, key=lambda x: (x.server, x.backup_id, x.location)):
        key = m.server + _SEP + m.backup_id
        if key in seen:
            continue
        seen.add(key)
        rows.extend(
            (
                m.backup_id,
                m.server,
                f.database,
                m.kind.value,
                m.method.value,
                m.finished_at,
                f.raw_bytes,
                f.stored_bytes,
                f.durations.get("dump", math.nan),
            )
            for f in m.files
            if f.database is not None
        )
    if not rows:
        return _empty(DATABASES_SCHEMA)
    cols = ["backup_id", "server", "database", "kind", "method", "finished_at", "raw_bytes", "stored_bytes"]
    df = pd.DataFrame.from_records(rows, columns=[*cols, "dump_s"])
    df["finished_at"] = pd.to_datetime(df["finished_at"], utc=True)
    # a database may span several files (chunked dumps): sum them
    df = (
        df.groupby(cols[:6], sort=False)
        .agg(
            files=("raw_bytes", "size"),
            raw_bytes=("raw_bytes", "sum"),
            stored_bytes=("stored_bytes", "sum"),
            dump_s=("dump_s", "sum"),
            dump_n=("dump_s", "count"),
        )
        .reset_index()
    )
    df["dump_s"] = df["dump_s"].where(df["dump_n"] > 0)
    df["ratio"] = _ratio(df["raw_bytes"], df["stored_bytes"])
    df["throughput_mbps"] = _per_second(df["raw_bytes"], df["dump_s"])
    df = df.sort_values(["server", "finished_at", "database"], kind="stable")
    return _conform(df, DATABASES_SCHEMA)


def _binlogs_frame(manifests: Sequence[BinlogManifest]) -> pd.DataFrame:
    if not manifests:
        return _empty(BINLOGS_SCHEMA)

    def seq(m: BinlogManifest) -> float:
        try:
            return float(m.sequence)
        except ConfigError:
            return math.nan

    rows = [
        (
            m.server,
            m.location,
            m.file,
            seq(m),
            m.server_id,
            m.archived_at,
            m.first_event_at,
            m.last_event_at,
            m.raw_bytes,
            m.stored_bytes,
        )
        for m in manifests
    ]
    df = pd.DataFrame.from_records(rows, columns=list(BINLOGS_SCHEMA))
    for col in ("archived_at", "first_event_at", "last_event_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return _conform(df, BINLOGS_SCHEMA)


def _restores_frame(certs: Sequence[RestoreCertificate]) -> pd.DataFrame:
    if not certs:
        return _empty(RESTORES_SCHEMA)
    rows = [
        (
            c.server,
            c.backup_id,
            c.location,
            c.tested_at,
            c.passed,
            float(sum(c.durations.values())),
            c.recovery_point_seconds,
            len(c.checks),
            sum(1 for ch in c.checks if not ch.passed),
            ", ".join(ch.name for ch in c.checks if not ch.passed),
            len(c.lossy),
            c.source_version,
            c.target_version,
        )
        for c in certs
    ]
    df = pd.DataFrame.from_records(rows, columns=list(RESTORES_SCHEMA))
    df["tested_at"] = pd.to_datetime(df["tested_at"], utc=True)
    df = df.sort_values(["server", "tested_at", "backup_id"], kind="stable")
    return _conform(df, RESTORES_SCHEMA)


# --------------------------------------------------------------------------- growth


def _one_copy(backups: pd.DataFrame) -> pd.DataFrame:
    """One row per (server, backup_id): sizes and durations as the largest of its copies."""
    if backups.empty:
        return backups
    agg = backups.groupby(["server", "backup_id"], sort=False).agg(
        kind=("kind", "first"),
        method=("method", "first"),
        status=("status", "first"),
        verified=("verified", "any"),
        proven=("proven", "any"),
        finished_at=("finished_at", "min"),
        raw_bytes=("raw_bytes", "max"),
        stored_bytes=("stored_bytes", "max"),
        duration_s=("duration_s", "max"),
    )
    return agg.reset_index()


def _trend(df: pd.DataFrame, keys: list[str], now: pd.Timestamp) -> pd.DataFrame:
    """Least-squares growth per group of ``raw_bytes`` and ``stored_bytes`` over ``finished_at``."""
    d = df.sort_values([*keys, "finished_at"], kind="stable").copy()
    d["_t"] = (d["finished_at"] - _EPOCH) / _DAY
    by = [d[k] for k in keys]
    g = d.groupby(by, sort=True)
    out = g.agg(
        backups=("_t", "size"),
        first_at=("finished_at", "first"),
        last_at=("finished_at", "last"),
        first_bytes=("raw_bytes", "first"),
        last_bytes=("raw_bytes", "last"),
        last_stored_bytes=("stored_bytes", "last"),
        _tm=("_t", "mean"),
    )
    dt = d["_t"] - g["_t"].transform("mean")
    sxx = (dt * dt).groupby(by, sort=True).sum()
    t_now = (now - _EPOCH) / _DAY
    for value, last, prefix in (
        ("raw_bytes", "last_bytes", ""),
        ("stored_bytes", "last_stored_bytes", "stored_"),
    ):
        dy = d[value] - g[value].transform("mean")
        slope = (dt * dy).groupby(by, sort=True).sum() / sxx.where(sxx > 1e-12)
        mean = g[value].mean()
        out[f"{prefix}growth_bytes_per_day"] = slope
        for days in (30, 90):
            fc = mean + slope * (t_now + days - out["_tm"])
            out[f"{prefix}forecast_{days}d"] = fc.fillna(out[last].astype("float64")).clip(lower=0.0)
    return out.drop(columns="_tm").reset_index()


def _growth_frame(backups: pd.DataFrame, databases: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    fulls = _one_copy(backups)
    if fulls.empty:
        return _empty(GROWTH_SCHEMA)
    fulls = fulls[fulls["verified"] & (fulls["kind"] == BackupKind.FULL.value)]
    if fulls.empty:
        return _empty(GROWTH_SCHEMA)
    servers = _trend(fulls, ["server", "method"], now)
    servers["database"] = "*"
    parts = [servers]
    dbs = databases[
        (databases["kind"] == BackupKind.FULL.value)
        & (databases["server"] + _SEP + databases["backup_id"]).isin(
            set(fulls["server"] + _SEP + fulls["backup_id"])
        )
    ]
    if not dbs.empty:
        parts.append(_trend(dbs, ["server", "method", "database"], now))
    out = pd.concat(parts, ignore_index=True)
    out["storage_needed_bytes"] = math.nan
    out["_order"] = (out["database"] != "*").astype(int)
    out = out.sort_values(["server", "method", "_order", "database"], kind="stable")
    return _conform(out, GROWTH_SCHEMA)


# --------------------------------------------------------------------------- retention estimate


_WITHIN_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([ywdh])")
_WITHIN_UNITS = {"y": 365.0, "w": 7.0, "d": 1.0, "h": 1.0 / 24}


def parse_keep_within(value: Any) -> timedelta | None:
    """``keep_within`` as a timedelta: a timedelta, a number of days, or text like ``"1y2w3d4h"``."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(days=float(value))
    text = str(value).strip().lower()
    parts = _WITHIN_RE.findall(text)
    if not parts or _WITHIN_RE.sub("", text).strip():
        raise ConfigError(f"keep_within {value!r} is not understood; use e.g. '14d', '36h', '2w', '1y'")
    return timedelta(days=sum(float(n) * _WITHIN_UNITS[u] for n, u in parts))


def _policy_rules(policy: Any) -> dict[str, Any]:
    if policy is None:
        return {}
    if isinstance(policy, Mapping):
        raw = dict(policy)
    elif is_dataclass(policy) and not isinstance(policy, type):
        raw = asdict(policy)
    else:
        raw = {k: getattr(policy, k) for k in POLICY_KEYS if hasattr(policy, k)}
    rules: dict[str, Any] = {}
    for key in POLICY_KEYS:
        value = raw.get(key)
        if key == "keep_within":
            within = parse_keep_within(value)
            if within:
                rules[key] = within
        elif value:
            rules[key] = int(value)
    if set(rules) <= {"min_redundancy"}:
        return {}  # no keep rule: nothing to estimate, everything present is counted
    return rules


def _describe_rules(rules: Mapping[str, Any]) -> str:
    if not rules:
        return "none (all present counted)"
    parts = []
    for key, value in rules.items():
        shown = f"{value.total_seconds() / 86400:g}d" if isinstance(value, timedelta) else str(value)
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def _retained_fulls(fulls: pd.DataFrame, rules: Mapping[str, Any], now: pd.Timestamp) -> pd.Series:
    """Which of the full backups (one location, newest first) the rules keep."""
    keep = fulls["keep_forever"].copy()
    rank = fulls.groupby("server", sort=False).cumcount()
    if "keep_last" in rules:
        keep |= rank < rules["keep_last"]
    if "keep_within" in rules:
        keep |= fulls["finished_at"] >= now - pd.Timedelta(rules["keep_within"])
    if "min_redundancy" in rules:
        good = fulls["verified"]
        keep |= good & (
            good.astype(int).groupby(fulls["server"], sort=False).cumsum() <= rules["min_redundancy"]
        )
    fin = fulls["finished_at"]
    buckets = {
        "keep_hourly": fin.dt.floor("h"),
        "keep_daily": fin.dt.floor("D"),
        "keep_weekly": (fin - pd.to_timedelta(fin.dt.weekday, unit="D")).dt.floor("D"),
        "keep_monthly": fin.dt.year * 12 + fin.dt.month,
        "keep_yearly": fin.dt.year,
    }
    for key, bucket in buckets.items():
        if key not in rules:
            continue
        newest = ~pd.DataFrame({"s": fulls["server"], "b": bucket}).duplicated()
        order = newest[newest].groupby(fulls.loc[newest, "server"], sort=False).cumcount()
        keep.loc[order.index[order < rules[key]]] = True
    return keep


def _storage_frame(
    backups: pd.DataFrame,
    binlogs: pd.DataFrame,
    growth: pd.DataFrame,
    locinfo: Mapping[str, LocationInfo],
    policies: Mapping[str, Any],
    now: pd.Timestamp,
) -> pd.DataFrame:
    present = backups[backups["status"] == BackupStatus.COMPLETE.value]
    if present.empty and binlogs.empty:
        return _empty(STORAGE_SCHEMA)
    present = present.sort_values("finished_at", ascending=False, kind="stable")
    retained_parts = []
    policy_text: dict[str, str] = {}
    for location, at_loc in present.groupby("location", sort=True):
        loc = str(location)
        rules = _policy_rules(policies.get(loc))
        policy_text[loc] = _describe_rules(rules)
        if not rules:
            retained_parts.append(at_loc)
            continue
        fulls = at_loc[at_loc["kind"] == BackupKind.FULL.value]
        kept = fulls[_retained_fulls(fulls, rules, now)]
        kept_ids = set(kept["server"] + _SEP + kept["backup_id"])
        incs = at_loc[at_loc["kind"] != BackupKind.FULL.value]
        inc_key = incs["server"] + _SEP + incs["backup_id"]
        parent_key = incs["server"] + _SEP + incs["parent_id"].fillna("")
        taken = pd.Series(False, index=incs.index)
        for _ in range(10_000):  # incremental chains: follow parents until nothing changes
            new = ~taken & parent_key.isin(kept_ids)
            if not new.any():
                break
            taken |= new
            kept_ids |= set(inc_key[new])
        retained_parts.append(pd.concat([kept, incs[taken]]))
    retained = pd.concat(retained_parts) if retained_parts else present.iloc[0:0]

    keys = ["server", "location"]
    counts = present.groupby(keys).size().rename("backups")
    kept_agg = retained.groupby(keys).agg(
        retained_backups=("backup_id", "size"),
        retained_bytes=("stored_bytes", "sum"),
        oldest=("started_at", "min"),
    )
    out = pd.concat([counts, kept_agg], axis=1)
    if not binlogs.empty:
        bl = binlogs.join(out["oldest"], on=keys)
        bl = bl[bl["oldest"].isna() | (bl["archived_at"] >= bl["oldest"])]
        out = out.join(bl.groupby(keys)["stored_bytes"].sum().rename("binlog_bytes"), how="outer")
    else:
        out["binlog_bytes"] = 0
    out = out.reset_index()
    for col in ("backups", "retained_backups", "retained_bytes", "binlog_bytes"):
        out[col] = out[col].fillna(0).astype("int64")
    out["storage_now_bytes"] = out["retained_bytes"] + out["binlog_bytes"]
    server_rows = growth[growth["database"] == "*"].groupby("server")
    last = server_rows["last_stored_bytes"].sum()
    for days in (30, 90):
        # capacity planning never plans below today's footprint, even for a shrinking server
        factor = (
            (server_rows[f"stored_forecast_{days}d"].sum() / last.where(last > 0)).fillna(1.0).clip(lower=1.0)
        )
        out[f"storage_needed_{days}d"] = out["storage_now_bytes"] * out["server"].map(factor).fillna(1.0)
    out["location_kind"] = out["location"].map({n: i.kind for n, i in locinfo.items()}).fillna("unknown")
    out["offsite"] = out["location"].isin({n for n, i in locinfo.items() if i.offsite})
    out["policy"] = [
        policy_text.get(n) or _describe_rules(_policy_rules(policies.get(n))) for n in out["location"]
    ]
    out = out.sort_values(keys, kind="stable")
    return _conform(out, STORAGE_SCHEMA)


# --------------------------------------------------------------------------- 3-2-1, freshness


def _join_sorted(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values.dropna()}))


def _locations_frame(backups: pd.DataFrame, binlogs: pd.DataFrame) -> pd.DataFrame:
    servers = sorted(set(backups["server"]) | set(binlogs["server"]))
    if not servers:
        return _empty(LOCATIONS_SCHEMA)
    v = backups[backups["proven"]].copy()  # a copy counts when a restore test proved it
    v["known_kind"] = v["location_kind"].where(v["location_kind"] != "unknown")
    per_backup = (
        v.groupby(["server", "backup_id"], sort=False)
        .agg(
            copies=("location", "nunique"),
            kinds=("known_kind", "nunique"),
            offsite=("offsite", "any"),
            kind=("kind", "first"),
            finished_at=("finished_at", "max"),
        )
        .reset_index()
    )
    per_server = per_backup.groupby("server").agg(
        backups=("copies", "size"), copies_min=("copies", "min"), copies_median=("copies", "median")
    )
    places = v.drop_duplicates(["server", "location"]).groupby("server")
    per_server["locations"] = places["location"].agg(_join_sorted)
    per_server["kinds"] = places["location_kind"].agg(_join_sorted)
    per_server["offsite"] = places["offsite"].any()
    newest = (
        per_backup[per_backup["kind"] == BackupKind.FULL.value]
        .sort_values(["finished_at", "backup_id"], kind="stable")
        .drop_duplicates("server", keep="last")
        .set_index("server")
    )
    copies_of_newest = v.merge(newest[["backup_id"]].reset_index(), on=["server", "backup_id"])
    newest_places = copies_of_newest.groupby("server")
    newest["where"] = newest_places["location"].agg(_join_sorted)
    newest["kind_list"] = newest_places["known_kind"].agg(_join_sorted)
    newest["offsite_list"] = (
        copies_of_newest[copies_of_newest["offsite"]].groupby("server")["location"].agg(_join_sorted)
    )
    newest["unknown"] = (
        copies_of_newest[copies_of_newest["known_kind"].isna()]
        .groupby("server")["location"]
        .agg(_join_sorted)
    )

    out = pd.DataFrame(index=pd.Index(servers, name="server"))
    out = out.join(per_server).join(
        newest.rename(
            columns={"backup_id": "newest_full_id", "copies": "newest_copies", "kinds": "newest_kinds"}
        )[
            [
                "newest_full_id",
                "newest_copies",
                "newest_kinds",
                "offsite",
                "where",
                "kind_list",
                "offsite_list",
                "unknown",
            ]
        ].rename(columns={"offsite": "newest_offsite"})
    )
    for col in ("backups", "copies_min", "newest_copies", "newest_kinds"):
        out[col] = out[col].fillna(0).astype("int64")
    for col in ("offsite", "newest_offsite"):
        out[col] = out[col].astype("boolean").fillna(False).astype(bool)
    out["meets_321"] = (
        out["newest_full_id"].notna()
        & (out["newest_copies"] >= 3)
        & (out["newest_kinds"] >= 2)
        & out["newest_offsite"]
    )
    reasons = []
    for r in out.itertuples():  # one per server, not per backup
        reasons.append(_reason_321(r))
    out["reason"] = reasons
    return _conform(out.reset_index(), LOCATIONS_SCHEMA)


def _reason_321(r: Any) -> str:
    if not isinstance(r.newest_full_id, str):
        return "no proven full backup of this server (no restore test passed): run restore-test"
    head = f"newest proven full {r.newest_full_id}"
    problems = []
    if r.newest_copies < 3:
        problems.append(
            f"only {r.newest_copies} {'copy' if r.newest_copies == 1 else 'copies'} ({r.where}); need 3"
        )
    if r.newest_kinds < 2:
        kinds = r.kind_list or "none known"
        problems.append(f"only {r.newest_kinds} kind of storage ({kinds}); need 2")
    if not r.newest_offsite:
        problems.append("no offsite copy; need 1")
    if isinstance(r.unknown, str) and r.unknown:
        problems.append(f"no location metadata for {r.unknown} (kind unknown, counted onsite)")
    if r.meets_321:
        text = (
            f"meets 3-2-1: {head} has {r.newest_copies} copies on {r.newest_kinds} kinds of "
            f"storage ({r.kind_list}), offsite at {r.offsite_list}"
        )
        return "; ".join([text, *problems])  # only the metadata note can be left here
    return f"{head}: " + "; ".join(problems)


def _freshness_frame(
    backups: pd.DataFrame,
    binlogs: pd.DataFrame,
    restores: pd.DataFrame,
    now: pd.Timestamp,
    target: timedelta,
) -> pd.DataFrame:
    servers = sorted(set(backups["server"]) | set(binlogs["server"]) | set(restores["server"]))
    if not servers:
        return _empty(FRESHNESS_SCHEMA)

    def newest_of(rows: pd.DataFrame, id_col: str, at_col: str) -> pd.DataFrame:
        return (
            rows.sort_values(["finished_at", "backup_id"], kind="stable")
            .drop_duplicates("server", keep="last")
            .set_index("server")[["backup_id", "finished_at"]]
            .rename(columns={"backup_id": id_col, "finished_at": at_col})
        )

    newest = newest_of(backups[backups["proven"]], "newest_backup_id", "newest_at")
    out = pd.DataFrame(index=pd.Index(servers, name="server")).join(newest)
    unproven = backups[backups["verified"] & ~backups["proven"]]
    unproven = unproven.join(out["newest_at"], on="server")
    unproven = unproven[unproven["newest_at"].isna() | (unproven["finished_at"] > unproven["newest_at"])]
    out = out.join(newest_of(unproven, "newest_unproven_id", "newest_unproven_at"))
    out["age_s"] = (now - out["newest_at"]).dt.total_seconds()
    out["target_s"] = target.total_seconds()
    out["ok"] = (out["age_s"] <= out["target_s"]).fillna(False).astype(bool)
    binlog_time = binlogs["last_event_at"].fillna(binlogs["archived_at"])
    out["newest_binlog_at"] = binlog_time.groupby(binlogs["server"]).max()
    out["binlog_age_s"] = (now - out["newest_binlog_at"]).dt.total_seconds()
    out["last_restore_test_at"] = restores.groupby("server")["tested_at"].max()
    passed = restores[restores["passed"]]
    out["last_passed_restore_at"] = passed.groupby("server")["tested_at"].max()
    return _conform(out.reset_index(), FRESHNESS_SCHEMA)


# --------------------------------------------------------------------------- anomalies


def _previous(d: pd.DataFrame, keys: list[str], col: str, window: int, how: str) -> pd.Series:
    """Per group, the rolling ``how`` (median/count) of the ``window`` rows before each row."""
    shifted = d.groupby(keys, sort=False)[col].shift(1)
    rolled = shifted.groupby([d[k] for k in keys], sort=False).rolling(window, min_periods=1)
    result = rolled.median() if how == "median" else rolled.count()
    return result.reset_index(level=list(range(len(keys))), drop=True).reindex(d.index)


def _anomalies_frame(
    backups: pd.DataFrame,
    binlogs: pd.DataFrame,
    freshness: pd.DataFrame,
    size_drop_ratio: float,
    duration_jump_ratio: float,
    window: int,
) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    once = _one_copy(backups)
    if not once.empty:
        d = once[once["status"] == BackupStatus.COMPLETE.value]
        d = d.sort_values(["server", "kind", "method", "finished_at", "backup_id"], kind="stable")
        d = d.reset_index(drop=True)
        keys = ["server", "kind", "method"]
        for kind, col, ratio in (
            ("size-drop", "stored_bytes", size_drop_ratio),
            ("duration-jump", "duration_s", duration_jump_ratio),
        ):
            med = _previous(d, keys, col, window, "median")
            value = d[col].astype("float64")
            hit = (value < ratio * med) if kind == "size-drop" else (value > ratio * med)
            hit = hit.fillna(False).astype(bool)
            if not hit.any():
                continue
            rows = d.loc[hit, ["server", "backup_id", "finished_at"]].rename(columns={"finished_at": "at"})
            rows["kind"] = kind
            rows["value"] = value[hit]
            rows["expected"] = med[hit]
            count = _previous(d, keys, col, window, "count")[hit].astype(int)
            if kind == "size-drop":
                rows["detail"] = [
                    f"stored size {human_bytes(v)} is below {ratio:g}× the median {human_bytes(e)} of "
                    f"the previous {n} {k} backups (a truncated dump?)"
                    for v, e, n, k in zip(
                        rows["value"], rows["expected"], count, d.loc[hit, "kind"], strict=True
                    )
                ]
            else:
                rows["detail"] = [
                    f"took {human_duration(v)}, more than {ratio:g}× the median {human_duration(e)} of "
                    f"the previous {n} {k} backups"
                    for v, e, n, k in zip(
                        rows["value"], rows["expected"], count, d.loc[hit, "kind"], strict=True
                    )
                ]
            parts.append(rows)
    parts.extend(_binlog_gaps(binlogs))
    stale = freshness[~freshness["ok"]]
    if not stale.empty:
        rows = pd.DataFrame(
            {
                "server": stale["server"],
                "backup_id": stale["newest_backup_id"],
                "kind": "stale",
                "at": stale["newest_at"],
                "value": stale["age_s"],
                "expected": stale["target_s"],
            }
        )
        rows["detail"] = [
            f"no proven backup: no restore test passed (target: one within {human_duration(t)})"
            if pd.isna(a)
            else f"newest proven backup is {human_duration(a)} old (target {human_duration(t)})"
            for a, t in zip(stale["age_s"], stale["target_s"], strict=True)
        ]
        parts.append(rows)
    if not parts:
        return _empty(ANOMALIES_SCHEMA)
    out = pd.concat([p.reset_index(drop=True) for p in parts], ignore_index=True)
    out["at"] = pd.to_datetime(out["at"], utc=True)
    out["_k"] = out["kind"].map({k: i for i, k in enumerate(ANOMALY_KINDS)})
    out = out.sort_values(["server", "_k", "at", "backup_id"], kind="stable", na_position="first")
    return _conform(out, ANOMALIES_SCHEMA)


def _binlog_gaps(binlogs: pd.DataFrame) -> list[pd.DataFrame]:
    b = binlogs[binlogs["sequence"].notna()].copy()
    if b.empty:
        return []
    b["_t"] = b["first_event_at"].fillna(b["archived_at"])
    b = b.sort_values(["server", "_t", "sequence", "archived_at"], kind="stable")
    b = b.drop_duplicates(["server", "server_id", "file"]).reset_index(drop=True)
    g = b.groupby("server", sort=False)
    prev_seq = g["sequence"].shift(1)
    prev_sid = g["server_id"].shift(1)
    prev_file = g["file"].shift(1)
    restart = prev_seq.notna() & ((b["sequence"] <= prev_seq) | (b["server_id"] != prev_sid))
    gap = prev_seq.notna() & ~restart & (b["sequence"] - prev_seq > 1)
    parts = []
    if gap.any():
        rows = b.loc[gap, ["server", "file", "_t"]].rename(columns={"file": "backup_id", "_t": "at"})
        lo = (prev_seq[gap] + 1).astype(int)
        hi = (b.loc[gap, "sequence"] - 1).astype(int)
        rows["kind"] = "binlog-gap"
        rows["value"] = (hi - lo + 1).astype(float)
        rows["expected"] = 0.0
        rows["detail"] = [
            f"missing binlog {'sequence ' + str(a) if a == z else f'sequences {a}..{z}'} between {p} and {f}"
            f"; point-in-time recovery cannot cross this gap"
            for a, z, p, f in zip(lo, hi, prev_file[gap], b.loc[gap, "file"], strict=True)
        ]
        parts.append(rows)
    if restart.any():
        rows = b.loc[restart, ["server", "file", "_t"]].rename(columns={"file": "backup_id", "_t": "at"})
        rows["kind"] = "binlog-gap"
        rows["value"] = math.nan
        rows["expected"] = math.nan
        rows["detail"] = [
            f"binlog sequence restarted: {p} (server_id {int(ps)}) followed by {f} (server_id {int(s)}); "
            "continuity cannot be proven, take a new full backup"
            for p, ps, f, s in zip(
                prev_file[restart],
                prev_sid[restart],
                b.loc[restart, "file"],
                b.loc[restart, "server_id"],
                strict=True,
            )
        ]
        parts.append(rows)
    return parts


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


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _fmt_time(value: Any) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return lines


def _summary_markdown(report: Report) -> str:
    lines = [
        "# Backup report",
        "",
        f"Generated {_fmt_time(report.generated_at)}: {report.message}.",
    ]
    if report.empty and report.freshness.empty:
        return "\n".join(lines) + "\n"
    once = _one_copy(report.backups)
    fulls = once[once["verified"] & (once["kind"] == BackupKind.FULL.value)] if not once.empty else once
    last_full: dict[str, Any] = {
        str(r["server"]): r
        for r in fulls.sort_values("finished_at").drop_duplicates("server", keep="last").to_dict("records")
    }
    server_growth = report.growth[report.growth["database"] == "*"]
    growth = {
        str(k): float(v) for k, v in server_growth.groupby("server")["growth_bytes_per_day"].sum().items()
    }
    meets = dict(zip(report.locations["server"], report.locations["meets_321"], strict=True))
    rows = []
    for f in report.freshness.to_dict("records"):
        server = str(f["server"])
        lf = last_full.get(server)
        rows.append(
            (
                server,
                _fmt_time(f["newest_at"]),
                human_duration(float(f["age_s"])),
                "ok" if f["ok"] else "STALE",
                _fmt_time(f["newest_unproven_at"]) if isinstance(f["newest_unproven_id"], str) else "none",
                human_bytes(float(lf["raw_bytes"])) if lf else "n/a",
                human_bytes(float(lf["stored_bytes"])) if lf else "n/a",
                human_duration(float(lf["duration_s"])) if lf else "n/a",
                human_bytes(growth[server]) + "/day" if server in growth else "n/a",
                "yes" if meets.get(server) else "no",
            )
        )
    lines += ["", "## Servers", ""]
    lines += _md_table(
        [
            "server",
            "newest proven",
            "age",
            "freshness",
            "newer, not proven",
            "last full raw",
            "stored",
            "took",
            "growth",
            "3-2-1",
        ],
        rows,
    )
    bad = report.backups[report.backups["verdict"].isin([Verdict.FAILED.value, Verdict.DAMAGED.value])]
    if not bad.empty:
        lines += ["", "## Copies not usable", ""]
        lines += [
            f"- **{x.server}** {x.backup_id} at {x.location}: "
            + (
                "newest restore test FAILED"
                if x.verdict == Verdict.FAILED.value
                else "damaged (files missing)"
            )
            for x in bad.itertuples()
        ]
    short = report.locations[~report.locations["meets_321"]]
    if not short.empty:
        lines += ["", "## 3-2-1 gaps", ""]
        lines += [f"- **{r.server}**: {r.reason}" for r in short.itertuples()]
    if not report.storage.empty:
        lines += ["", "## Storage under retention", ""]
        lines += _md_table(
            ["server", "location", "kind", "policy", "retained", "now", "in 90 days"],
            [
                (
                    r["server"],
                    r["location"],
                    str(r["location_kind"]) + (" (offsite)" if r["offsite"] else ""),
                    r["policy"],
                    f"{r['retained_backups']}/{r['backups']}",
                    human_bytes(float(r["storage_now_bytes"])),
                    human_bytes(float(r["storage_needed_90d"])),
                )
                for r in report.storage.to_dict("records")
            ],
        )
    r = report.restores
    lines += ["", "## Restore tests", ""]
    if r.empty:
        lines.append("No restore test certificates: no backup has been proven restorable.")
    else:
        failed = r[~r["passed"]]
        lines.append(
            f"{_plural(len(r), 'test')}, {len(r) - len(failed)} passed, {len(failed)} failed; median restore "
            f"{human_duration(float(r['restore_s'].median()))}, newest {_fmt_time(r['tested_at'].max())}."
        )
        lines += [
            f"- FAILED {x.server} {x.backup_id} at {x.location}: {x.failed_checks}"
            for x in failed.itertuples()
        ]
    a = report.anomalies
    lines += ["", f"## Anomalies ({len(a)})", ""]
    if a.empty:
        lines.append("None.")
    else:
        limit = 50
        lines += [
            f"- {x.kind} **{x.server}** {x.backup_id if isinstance(x.backup_id, str) else ''}: {x.detail}"
            for x in a.head(limit).itertuples()
        ]
        if len(a) > limit:
            lines.append(f"- … and {len(a) - limit} more (see anomalies.csv)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- outputs


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (ISO timestamps, None for missing): what Prefect artifacts accept."""
    records: list[dict[str, Any]] = json.loads(df.to_json(orient="records", date_format="iso"))
    return records


_HTML_ROWS = 500
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
    "img{max-width:100%;display:block;margin:1em 0}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"
)


def render_html(report: Report, charts: Mapping[str, bytes]) -> str:
    """A self-contained HTML page: summary, charts as base64 PNG, and the frames."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mysqlops backup report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>mysqlops backup report</h1>",
        f"<pre>{html.escape(report.summary_markdown())}</pre>",
    ]
    for name, png in charts.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
        )
    for name, df in report.frames().items():
        parts.append(f"<h2>{html.escape(name)} ({len(df)} rows)</h2>")
        shown = df
        if len(df) > _HTML_ROWS:
            shown = df.tail(_HTML_ROWS)
            parts.append(f"<p>Newest {_HTML_ROWS} rows shown; all rows are in {html.escape(name)}.csv.</p>")
        parts.append(shown.to_html(index=False, na_rep="", escape=True, border=0))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_outputs(report: Report, fs: AbstractFileSystem, base_path: str) -> list[str]:
    """CSV per frame, parquet per frame (if pyarrow is installed), charts as PNG, summary.md and a
    self-contained report.html, all under ``base_path`` on ``fs``. Returns the written paths."""
    from mysqlops.charts import render_charts  # matplotlib only when outputs are written

    base = base_path.rstrip("/")
    protocol = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    local = bool({"file", "local"} & set(protocol))
    if local:  # reports name servers, sizes and timings: 0700 directories, 0600 files
        from mysqlops.adapters.localfs import makedirs_private

        makedirs_private(base)
    else:
        fs.makedirs(base, exist_ok=True)
    files: dict[str, bytes] = {}
    parquet = importlib.util.find_spec("pyarrow") is not None
    if not parquet:
        log.warning("pyarrow is not installed: parquet files skipped (CSV and HTML written)")
    for name, df in report.frames().items():
        files[f"{name}.csv"] = df.to_csv(index=False).encode("utf-8")
        if parquet:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            files[f"{name}.parquet"] = buf.getvalue()
    charts = render_charts(report)
    for name, png in charts.items():
        files[f"{name}.png"] = png
    files["summary.md"] = report.summary_markdown().encode("utf-8")
    files["report.html"] = render_html(report, charts).encode("utf-8")
    written = []
    for name, data in files.items():  # each file is complete in memory before it is written
        path = f"{base}/{name}"
        try:
            if local:
                from mysqlops.adapters.localfs import write_private

                write_private(path, data)
            else:
                fs.pipe_file(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write report file {path}: {exc}") from exc
        written.append(path)
    return written


__all__ = [
    "ANOMALY_KINDS",
    "EMPTY_MESSAGE",
    "Catalog",
    "LocationInfo",
    "Report",
    "build_report",
    "human_bytes",
    "human_duration",
    "json_records",
    "parse_keep_within",
    "render_html",
    "write_outputs",
]
