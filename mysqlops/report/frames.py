"""The backup catalog as pandas DataFrames: sizes, speeds, growth, 3-2-1, restores, anomalies.

Pure pandas: ``build_report`` takes parsed manifests and a ``now`` (timezone-aware UTC) and
does no I/O. ``write_outputs`` is the one function that writes, and only through the fsspec
filesystem it is given. Every frame has a fixed set of columns and dtypes, also when empty,
so flows, notebooks and artifacts can rely on them.

Units: bytes are bytes, durations are seconds (``*_s``), throughput is MiB/s
(``throughput_mib_s``: 2**20 bytes per second) of raw (uncompressed) data, ``ratio`` is
raw/stored (2.0 = 2:1). Text for people goes through ``mysqlops.units`` (one formatter).

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
  the same server, kind and method (at least one previous backup is needed): a stored size
  below ``size_drop_ratio`` x the median (size-drop) or above its inverse (size-jump: 2x by
  default, so a 4.3x jump is one), a duration above ``duration_jump_ratio`` x the median that
  is also at least ``min_duration_jump`` longer (3 s -> 6 s is noise, not an anomaly).
* Retention policies (``Catalog.policies``, per location: a mapping, a ``RetentionPolicy`` or
  the RetentionPolicyBlock apply-retention loads) are applied by ``retention.plan`` itself to
  the backups present now, with the same verdicts, so ``backups.retained`` and the storage
  forecast are exactly what apply-retention would keep today (one meaning of every field; a
  bare number for ``keep_within`` is refused, naming the unit to add). A location without a
  policy counts everything present, and binlogs from its oldest backup on.
* Growth and forecasts need at least ``MIN_HISTORY`` (7 days) between the first and the last
  verified full of a server and method; shorter histories show "not enough history".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from mysqlops.errors import ConfigError
from mysqlops.manifest import BackupManifest, BinlogManifest, RestoreCertificate, Verdict, copy_verdicts
from mysqlops.model import BackupStatus
from mysqlops.recovery_window import recovery_windows

if TYPE_CHECKING:
    pass
from mysqlops.report.forecast import Retained, _growth_frame, _storage_frame, retained_by_policy
from mysqlops.report.health import _anomalies_frame, _freshness_frame, _locations_frame
from mysqlops.report.render import Report, _plural
from mysqlops.report.schemas import (
    _SEP,
    BACKUPS_SCHEMA,
    BINLOGS_SCHEMA,
    DATABASES_SCHEMA,
    EMPTY_MESSAGE,
    MIB,
    RECOVERY_SCHEMA,
    RESTORES_SCHEMA,
    Catalog,
    LocationInfo,
    _conform,
    _empty,
)


def build_report(
    catalog: Catalog,
    now: datetime,
    freshness_target: timedelta = timedelta(hours=26),
    size_drop_ratio: float = 0.5,
    duration_jump_ratio: float = 2.0,
    window: int = 5,
    min_duration_jump: timedelta = timedelta(minutes=1),
) -> Report:
    """Turn a catalog into a ``Report``. ``now`` must be timezone-aware; nothing is read or written."""
    if now.tzinfo is None:
        raise ConfigError("build_report needs a timezone-aware `now` (UTC)")
    if window < 1:
        raise ConfigError(f"window must be at least 1, got {window}")
    if not 0 < size_drop_ratio < 1:
        raise ConfigError(f"size_drop_ratio must be between 0 and 1 (e.g. 0.5), got {size_drop_ratio!r}")
    if duration_jump_ratio <= 1:
        raise ConfigError(f"duration_jump_ratio must be above 1 (e.g. 2.0), got {duration_jump_ratio!r}")
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
    retained = retained_by_policy(catalog.backups, catalog.binlogs, verdicts, catalog.policies, now)
    backups = _backups_frame(catalog.backups, locinfo, verdicts, retained)
    databases = _databases_frame(catalog.backups)
    binlogs = _binlogs_frame(catalog.binlogs)

    growth = _growth_frame(backups, databases, ts_now)
    storage = _storage_frame(backups, binlogs, growth, locinfo, retained)
    if not storage.empty and not growth.empty:
        needed = storage.groupby("server")["storage_needed_90d"].sum()
        server_rows = growth["database"] == "*"
        growth.loc[server_rows, "storage_needed_bytes"] = growth.loc[server_rows, "server"].map(needed)
    locations = _locations_frame(backups, binlogs)
    freshness = _freshness_frame(backups, binlogs, restores, ts_now, freshness_target)
    anomalies = _anomalies_frame(
        backups,
        binlogs,
        freshness,
        size_drop_ratio,
        duration_jump_ratio,
        window,
        min_duration_jump.total_seconds(),
    )

    recovery = _recovery_frame(catalog.backups, catalog.binlogs, verdicts)

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
        recovery=recovery,
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
    return raw / MIB / seconds.where(seconds > 0)


def _backups_frame(
    manifests: Sequence[BackupManifest],
    locinfo: Mapping[str, LocationInfo],
    verdicts: Mapping[tuple[str, str, str], Verdict],
    retained: Mapping[str, Retained],
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
    df["throughput_mib_s"] = _per_second(df["raw_bytes"], df["duration_s"])
    df["retained"] = [
        loc not in retained or (server, bid) in retained[loc].keep
        for loc, server, bid in zip(df["location"], df["server"], df["backup_id"], strict=True)
    ]
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
    df["throughput_mib_s"] = _per_second(df["raw_bytes"], df["dump_s"])
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


def _recovery_frame(
    backups: Sequence[BackupManifest],
    binlogs: Sequence[BinlogManifest],
    verdicts: Mapping[tuple[str, str, str], Verdict],
) -> pd.DataFrame:
    """One row per server: the recovery window (``recovery_window``, the one definition)."""
    windows = recovery_windows(backups, binlogs, verdicts)
    if not windows:
        return _empty(RECOVERY_SCHEMA)
    rows = [
        (
            w.server,
            w.oldest.backup_id if w.oldest is not None else None,
            w.oldest_at,
            w.newest_at,
            w.from_binlogs,
            w.seconds if w.seconds is not None else math.nan,
            w.pitr_from.backup_id if w.pitr_from is not None else None,
            len(w.gaps),
            w.untested,
        )
        for w in windows.values()
    ]
    df = pd.DataFrame.from_records(rows, columns=list(RECOVERY_SCHEMA))
    for col in ("oldest_at", "newest_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return _conform(df, RECOVERY_SCHEMA)


def _certificate_seconds(c: RestoreCertificate) -> float:
    """The restore time the certificate states: its ``total`` when recorded (the stages are part
    of it: adding them up counted each stage twice), else the sum of its stages."""
    if "total" in c.durations:
        return float(c.durations["total"])
    return float(sum(c.durations.values())) if c.durations else math.nan


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
            _certificate_seconds(c),
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
