"""Growth and storage forecasts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from mysqlops.errors import ConfigError
from mysqlops.model import BackupKind, BackupStatus

if TYPE_CHECKING:
    pass
from mysqlops.report.schemas import (
    _DAY,
    _EPOCH,
    _SEP,
    GROWTH_SCHEMA,
    POLICY_KEYS,
    STORAGE_SCHEMA,
    LocationInfo,
    _conform,
    _empty,
)

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
