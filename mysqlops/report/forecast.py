"""Growth and storage forecasts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from mysqlops.errors import ConfigError, RetentionError
from mysqlops.manifest import BackupManifest, BinlogManifest, Verdict
from mysqlops.model import BackupKind, BackupStatus
from mysqlops.report.schemas import (
    _DAY,
    _EPOCH,
    _SEP,
    GROWTH_SCHEMA,
    STORAGE_SCHEMA,
    LocationInfo,
    _conform,
    _empty,
)
from mysqlops.retention.plan import plan as retention_plan
from mysqlops.retention.policy import RetentionPolicy

# --------------------------------------------------------------------------- growth

MIN_HISTORY = pd.Timedelta(days=7)
NOT_ENOUGH_HISTORY = "not enough history"


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
    out["history_days"] = (out["last_at"] - out["first_at"]).dt.total_seconds() / 86400
    enough = out["history_days"] >= MIN_HISTORY.total_seconds() / 86400
    for value, prefix in (("raw_bytes", ""), ("stored_bytes", "stored_")):
        dy = d[value] - g[value].transform("mean")
        slope = (dt * dy).groupby(by, sort=True).sum() / sxx.where(sxx > 1e-12)
        mean = g[value].mean()
        # a trend from backups minutes or days apart is noise, not growth: no figure at all
        out[f"{prefix}growth_bytes_per_day"] = slope.where(enough)
        for days in (30, 90):
            fc = mean + slope * (t_now + days - out["_tm"])
            out[f"{prefix}forecast_{days}d"] = fc.where(enough).clip(lower=0.0)
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

NO_POLICY = "none (all present counted)"


@dataclass(frozen=True)
class Retained:
    """What ``retention.plan`` keeps at one location: ``(server, backup id or binlog file)``."""

    policy: str
    keep: frozenset[tuple[str, str]]


def as_policy(location: str, value: Any) -> RetentionPolicy | None:
    """A location's policy as apply-retention reads it: a ``RetentionPolicy``, an object with
    ``to_policy()`` (the RetentionPolicyBlock) or a mapping for ``RetentionPolicy.from_mapping``."""
    if value is None:
        return None
    try:
        if isinstance(value, RetentionPolicy):
            return value
        to_policy = getattr(value, "to_policy", None)
        if callable(to_policy):
            policy = to_policy()
            if isinstance(policy, RetentionPolicy):
                return policy
        if isinstance(value, Mapping):
            return RetentionPolicy.from_mapping(value)
    except RetentionError as exc:
        raise ConfigError(f"retention policy of location {location!r}: {exc}") from exc
    raise ConfigError(
        f"retention policy of location {location!r}: {type(value).__name__} is not a policy; "
        "give a mapping such as {'keep_daily': 7, 'keep_within': '7d'} or a RetentionPolicyBlock"
    )


def describe_policy(policy: RetentionPolicy) -> str:
    """The keep rules and min_redundancy of ``policy.describe()``, without the size heuristic."""
    return "; ".join(policy.describe().split("; ")[:2])


def retained_by_policy(
    backups: Sequence[BackupManifest],
    binlogs: Sequence[BinlogManifest],
    verdicts: Mapping[tuple[str, str, str], Verdict],
    policies: Mapping[str, Any],
    now: datetime,
) -> dict[str, Retained]:
    """Per location with a policy, what ``retention.plan`` keeps today: the same engine and the
    same records (each copy proven by the same verdicts) as apply-retention, so the storage
    forecast never contradicts what retention deletes."""
    out: dict[str, Retained] = {}
    for location, value in policies.items():
        policy = as_policy(str(location), value)
        if policy is None:
            continue
        records = [
            m.to_record(
                proven=verdicts.get((m.location, m.server, m.backup_id), Verdict.UNTESTED).proven,
                verdict=verdicts.get((m.location, m.server, m.backup_id), Verdict.UNTESTED).value,
            )
            for m in backups
            if m.location == location
        ]
        records += [b.to_record(strict=False) for b in binlogs if b.location == location]
        try:
            decided = retention_plan(records, policy, now)
        except RetentionError as exc:
            raise ConfigError(f"retention policy of location {location!r}: {exc}") from exc
        keep = frozenset((d.record.server, d.record.backup_id) for d in decided.keep)
        out[str(location)] = Retained(describe_policy(policy), keep)
    return out


def _storage_frame(
    backups: pd.DataFrame,
    binlogs: pd.DataFrame,
    growth: pd.DataFrame,
    locinfo: Mapping[str, LocationInfo],
    retained: Mapping[str, Retained],
) -> pd.DataFrame:
    present = backups[backups["status"] == BackupStatus.COMPLETE.value]
    if present.empty and binlogs.empty:
        return _empty(STORAGE_SCHEMA)
    retained_parts = []
    policy_text: dict[str, str] = {}
    for location, at_loc in present.groupby("location", sort=True):
        loc = str(location)
        rule = retained.get(loc)
        policy_text[loc] = rule.policy if rule else NO_POLICY
        if rule is None:
            retained_parts.append(at_loc)
            continue
        kept = {server + _SEP + bid for server, bid in rule.keep}
        retained_parts.append(at_loc[(at_loc["server"] + _SEP + at_loc["backup_id"]).isin(kept)])
    retained_rows = pd.concat(retained_parts) if retained_parts else present.iloc[0:0]

    keys = ["server", "location"]
    counts = present.groupby(keys).size().rename("backups")
    kept_agg = retained_rows.groupby(keys).agg(
        retained_backups=("backup_id", "size"),
        retained_bytes=("stored_bytes", "sum"),
        oldest=("started_at", "min"),
    )
    out = pd.concat([counts, kept_agg], axis=1)
    if not binlogs.empty:
        bl = binlogs.join(out["oldest"], on=keys)
        by_rule = bl["location"].isin(list(retained))
        kept_binlogs = {
            loc + _SEP + server + _SEP + name for loc, rule in retained.items() for server, name in rule.keep
        }
        planned = (bl["location"] + _SEP + bl["server"] + _SEP + bl["file"]).isin(kept_binlogs)
        # no policy: binlogs from the oldest backup present on (what point-in-time recovery uses)
        bl = bl[
            (by_rule & planned) | (~by_rule & (bl["oldest"].isna() | (bl["archived_at"] >= bl["oldest"])))
        ]
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
        # NaN (not enough history) stays NaN: no forecast is better than a made-up one
        factor = (server_rows[f"stored_forecast_{days}d"].sum(min_count=1) / last.where(last > 0)).clip(
            lower=1.0
        )
        out[f"storage_needed_{days}d"] = out["storage_now_bytes"] * out["server"].map(factor)
    out["location_kind"] = out["location"].map({n: i.kind for n, i in locinfo.items()}).fillna("unknown")
    out["offsite"] = out["location"].isin({n for n, i in locinfo.items() if i.offsite})
    out["policy"] = [
        policy_text.get(n) or (retained[n].policy if n in retained else NO_POLICY) for n in out["location"]
    ]
    out = out.sort_values(keys, kind="stable")
    return _conform(out, STORAGE_SCHEMA)
