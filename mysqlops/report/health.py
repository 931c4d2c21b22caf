"""3-2-1, freshness, anomalies."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from mysqlops.model import BackupKind, BackupStatus

if TYPE_CHECKING:
    pass
from mysqlops.report.forecast import _one_copy
from mysqlops.report.schemas import (
    ANOMALIES_SCHEMA,
    ANOMALY_KINDS,
    FRESHNESS_SCHEMA,
    LOCATIONS_SCHEMA,
    _conform,
    _empty,
)
from mysqlops.units import human_bytes, human_duration

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
        & (out["newest_copies"] + 1 >= 3)  # the live server is the first of the three copies
        & (out["newest_kinds"] >= 2)
        & out["newest_offsite"]
    )
    reasons = []
    for r in out.itertuples():  # one per server, not per backup
        reasons.append(_reason_321(r))
    out["reason"] = reasons
    return _conform(out.reset_index(), LOCATIONS_SCHEMA)


RULE_321 = (
    "3-2-1: 3 copies of the data (the live server and 2 proven backup copies), "
    "on 2 kinds of storage, 1 of them off-site"
)


def _reason_321(r: Any) -> str:
    """The rule, then every leg that is not met by name (copies, media, off-site)."""
    if not isinstance(r.newest_full_id, str):
        return f"{RULE_321}; copies: no proven full backup of this server (no restore test passed): run restore-test"
    head = f"newest proven full {r.newest_full_id}"
    problems = []
    if r.newest_copies + 1 < 3:
        problems.append(
            f"copies: the live server and {r.newest_copies} backup "
            f"{'copy' if r.newest_copies == 1 else 'copies'} ({r.where}) make {r.newest_copies + 1}; "
            "need 3: add a location (off-site, e.g. S3) to the backup"
        )
    if r.newest_kinds < 2:
        kinds = r.kind_list or "none known"
        problems.append(f"media: 1 kind of storage ({kinds}); need 2, e.g. local disk and S3")
    if not r.newest_offsite:
        problems.append("off-site: no off-site copy; need 1 (a location with offsite = true, e.g. S3)")
    note = ""
    if isinstance(r.unknown, str) and r.unknown:
        note = f"; note: no location metadata for {r.unknown} (kind unknown, counted onsite)"
    if r.meets_321:
        return (
            f"meets {RULE_321}: {head} has {r.newest_copies} backup copies on {r.newest_kinds} kinds "
            f"of storage ({r.kind_list}), off-site at {r.offsite_list}{note}"
        )
    return f"short of {RULE_321}: {head}: " + "; ".join(problems) + note


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
    min_duration_jump_s: float = 60.0,
) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    once = _one_copy(backups)
    if not once.empty:
        d = once[once["status"] == BackupStatus.COMPLETE.value]
        d = d.sort_values(["server", "kind", "method", "finished_at", "backup_id"], kind="stable")
        d = d.reset_index(drop=True)
        keys = ["server", "kind", "method"]
        for kind, col in (
            ("size-drop", "stored_bytes"),
            ("size-jump", "stored_bytes"),
            ("duration-jump", "duration_s"),
        ):
            med = _previous(d, keys, col, window, "median")
            value = d[col].astype("float64")
            if kind == "size-drop":
                ratio = size_drop_ratio
                hit = value < ratio * med
            elif kind == "size-jump":
                ratio = 1 / size_drop_ratio
                hit = value > ratio * med
            else:
                # a 3 s backup taking 6 s is noise: the jump must also be long in absolute terms
                ratio = duration_jump_ratio
                hit = (value > ratio * med) & (value - med >= min_duration_jump_s)
            hit = hit.fillna(False).astype(bool)
            if not hit.any():
                continue
            rows = d.loc[hit, ["server", "backup_id", "finished_at"]].rename(columns={"finished_at": "at"})
            rows["kind"] = kind
            rows["value"] = value[hit]
            rows["expected"] = med[hit]
            count = _previous(d, keys, col, window, "count")[hit].astype(int)
            facts = zip(rows["value"], rows["expected"], count, d.loc[hit, "kind"], strict=True)
            if kind == "size-drop":
                rows["detail"] = [
                    f"stored size {human_bytes(v)} is {v / e:.2g}× the median {human_bytes(e)} of "
                    f"the previous {n} {k} backups (below {ratio:g}×: a truncated dump?)"
                    for v, e, n, k in facts
                ]
            elif kind == "size-jump":
                rows["detail"] = [
                    f"stored size {human_bytes(v)} is {v / e:.2g}× the median {human_bytes(e)} of "
                    f"the previous {n} {k} backups (above {ratio:g}×: a bulk load, or data that should not be there?)"
                    for v, e, n, k in facts
                ]
            else:
                rows["detail"] = [
                    f"took {human_duration(v)}, {v / e:.2g}× the median {human_duration(e)} of "
                    f"the previous {n} {k} backups"
                    for v, e, n, k in facts
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
