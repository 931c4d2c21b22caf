"""Proof that a replica equals its primary."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymysql

from mysqlops.adapters import mysql as db
from mysqlops.errors import (
    ConfigError,
    ReplicationError,
    VerificationFailed,
)
from mysqlops.model import ServerSpec
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.dialect import Dialect, dialect_for
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.tablesum import checksum_of, content_checksum

if TYPE_CHECKING:
    pass
from mysqlops.replication.plan import Log, _quiet, _snapshot_gtid

DEFAULT_CHUNK_ROWS = 50_000
MAX_CHUNKS = 1000  # per table: bigger tables get bigger chunks
_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})


def chunk_bounds(low: int, high: int, rows: int, chunk_rows: int) -> list[tuple[int | None, int | None]]:
    """Primary-key ranges ``[lo, hi)`` of about ``chunk_rows`` rows covering every possible key.

    ``None`` is unbounded: the first range has no lower and the last no upper bound, so rows
    outside ``[low, high]`` (present on one side only) are still counted. At most
    :data:`MAX_CHUNKS` ranges: very big tables get bigger ranges.
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be at least 1, got {chunk_rows}")
    span = high - low + 1
    n = max(1, math.ceil(max(rows, 0) / chunk_rows))
    if n == 1 or span <= 1:
        return [(None, None)]
    n = min(n, span, MAX_CHUNKS)
    step = math.ceil(span / n)
    cuts = [low + i * step for i in range(1, n) if low + i * step <= high]
    bounds: list[tuple[int | None, int | None]] = []
    previous: int | None = None
    for cut in cuts:
        bounds.append((previous, cut))
        previous = cut
    bounds.append((previous, None))
    return bounds


def pick_sample(count: int, sample: int | None, rng: random.Random) -> list[int]:
    """Indexes of the chunks to check: all, or the two open-ended ones plus random others."""
    if sample is None or count <= max(sample, 2):
        return list(range(count))
    middle = list(range(1, count - 1))
    chosen = rng.sample(middle, max(0, min(len(middle), sample - 2)))
    return sorted({0, count - 1, *chosen})


# --------------------------------------------------------------------------------------------
# 6. proof: checksums at a synchronized point


@dataclass(frozen=True)
class _Table:
    database: str
    table: str
    engine: str
    rows: int
    exclude: tuple[str, ...]
    columns: tuple[str, ...]
    pk: str | None


@dataclass(frozen=True)
class _Chunk:
    table: _Table
    low: int | None = None
    high: int | None = None

    @property
    def whole(self) -> bool:
        return self.low is None and self.high is None

    @property
    def label(self) -> str:
        base = f"{self.table.database}.{self.table.table}"
        if self.whole:
            return base
        lo = "" if self.low is None else str(self.low)
        hi = "" if self.high is None else str(self.high)
        return f"{base} [{self.table.pk} {lo}..{hi})"


def _tables(conn: db.Connection, database: str) -> list[_Table]:
    rows = db.query(
        conn,
        sqlcat.BASE_TABLES_WITH_ENGINE,
        [database],
    )
    cols = db.query(
        conn,
        sqlcat.DATABASE_COLUMNS,
        [database],
    )
    by_table: dict[str, list[dict[str, Any]]] = {}
    for c in cols:
        by_table.setdefault(str(c["t"]), []).append(c)
    out = []
    for r in rows:
        name = str(r["t"])
        columns = by_table.get(name, [])
        floats = tuple(str(c["c"]) for c in columns if str(c["d"]).lower() == "float")
        keys = [c for c in columns if str(c["k"]) == "PRI"]
        pk = str(keys[0]["c"]) if len(keys) == 1 and str(keys[0]["d"]).lower() in _INT_TYPES else None
        out.append(
            _Table(
                database,
                name,
                str(r["e"] or ""),
                int(r["n"] or 0),
                floats,
                tuple(str(c["c"]) for c in columns if str(c["c"]) not in floats),
                pk,
            )
        )
    return out


def _range_checksum(conn: db.Connection, chunk: _Chunk) -> tuple[int, str]:
    """The :func:`content_checksum` expression over one primary-key range."""
    t = chunk.table
    if chunk.whole or t.pk is None:
        return content_checksum(conn, t.database, t.table, t.exclude)
    where, args = [], []
    if chunk.low is not None:
        where.append(f"{q(t.pk)} >= %s")
        args.append(chunk.low)
    if chunk.high is not None:
        where.append(f"{q(t.pk)} < %s")
        args.append(chunk.high)
    return checksum_of(
        db.query(conn, sqlcat.content_checksum(t.database, t.table, t.columns, where), args)[0]
    )


def _plan_chunks(
    conn: db.Connection,
    tables: Sequence[_Table],
    chunk_rows: int,
    sample_chunks: int | None,
    rng: random.Random,
) -> list[_Chunk]:
    out: list[_Chunk] = []
    for t in tables:
        if t.pk is None or t.rows <= chunk_rows:
            out.append(_Chunk(t))
            continue
        row = db.query(conn, sqlcat.key_range(t.database, t.table, t.pk))[0]
        if row["lo"] is None:
            out.append(_Chunk(t))
            continue
        bounds = chunk_bounds(int(row["lo"]), int(row["hi"]), t.rows, chunk_rows)
        out += [_Chunk(t, *bounds[i]) for i in pick_sample(len(bounds), sample_chunks, rng)]
    return out


def _wait_reached(
    conn: db.Connection, dialect: Dialect, gtid: str, timeout: float, poll: int = 2
) -> str | None:
    """Wait for a replica (restarted with UNTIL) to reach ``gtid``; None, or why it did not.

    Fails fast on a replication error; a thread stopped *without* error is the UNTIL stop.
    """
    deadline = time.monotonic() + max(1.0, float(timeout))
    while True:
        step = int(max(1, min(poll, math.ceil(deadline - time.monotonic()))))
        if dialect.replica.wait_succeeded(db.scalar(conn, dialect.replica.wait_for_gtid(gtid, step))):
            return None
        status = db.replica_status(conn, dialect)
        if status is None:
            return "it is no longer a replica"
        errors = [
            p
            for p in status.problems()
            if (p.startswith("SQL thread") and status.last_sql_errno)
            or (p.startswith("IO thread") and status.last_io_errno and status.io_running == "No")
        ]
        if errors:
            return "; ".join(errors)
        if time.monotonic() >= deadline:
            return (
                f"did not reach {gtid} within {timeout:.0f}s (it is at {status.executed_gtid or 'nothing'})"
            )


@dataclass
class Comparison:
    """Checksums of one replica against the primary at one GTID position."""

    replica: str
    gtid: str | None
    chunks: int = 0
    rows: int = 0
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""  # set when the replica could not be brought to the point (nothing compared)

    @property
    def ok(self) -> bool:
        return not self.differences and not self.error

    def summary(self) -> str:
        if self.error:
            return f"not compared: {self.error}"
        if self.ok:
            return f"{self.chunks} table chunk(s), {self.rows} rows equal at {self.gtid or '(empty)'}"
        return f"{len(self.differences)} difference(s): " + "; ".join(self.differences[:10])

    def problem(self) -> str:
        return self.summary() if not self.ok else ""


def _compare(
    replica: str,
    gtid: str | None,
    expected: Mapping[_Chunk, tuple[int, str]],
    conn: db.Connection,
    primary_dbs: Sequence[str],
    system: frozenset[str],
) -> Comparison:
    result = Comparison(replica, gtid, chunks=len(expected), rows=sum(n for n, _ in expected.values()))
    replica_dbs = set(db.user_databases(conn, system))
    for extra in sorted(replica_dbs - set(primary_dbs)):
        result.differences.append(f"database {extra} exists only on the replica")
    known: dict[str, set[str]] = {}
    for database in primary_dbs:
        if database not in replica_dbs:
            result.differences.append(f"database {database} is missing on the replica")
            continue
        primary_tables = {c.table.table for c in expected if c.table.database == database}
        known[database] = {t.table for t in _tables(conn, database)}
        for extra in sorted(known[database] - primary_tables):
            result.differences.append(f"table {database}.{extra} exists only on the replica")
    for chunk, (count, checksum) in expected.items():
        t = chunk.table
        if t.database not in known:
            continue
        if t.table not in known[t.database]:
            result.differences.append(f"table {t.database}.{t.table} is missing on the replica")
            continue
        got_count, got_sum = _range_checksum(conn, chunk)
        if (got_count, got_sum) != (count, checksum):
            what = (
                f"rows {count} vs {got_count}" if got_count != count else "same row count, different content"
            )
            engine = (
                ""
                if t.engine.lower() == "innodb"
                else f" ({t.engine} is not transactional: writes during the check can cause this)"
            )
            result.differences.append(f"{chunk.label}: {what}{engine}")
    return result


def verify_replicas(
    primary: ServerSpec,
    replicas: Sequence[ServerSpec],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    sample_chunks: int | None = None,
    timeout: float = 300,
    log: Log = _quiet,
    seed: int | None = None,
) -> list[Comparison]:
    """Checksum the primary and each replica at one synchronized GTID point (see module doc).

    Replicas must be replicating (both threads running). ``sample_chunks``: check only that
    many chunks of big tables (the open-ended first and last always). Replication is restarted
    on every replica afterwards, also when something fails.
    """
    rng = random.Random(seed)  # sampling, not security
    conns: list[tuple[ServerSpec, db.Connection, Dialect]] = []
    frozen: list[tuple[ServerSpec, db.Connection, Dialect]] = []
    pconn: db.Connection | None = None
    restart_errors: list[str] = []
    try:
        for spec in replicas:
            conn = db.connect(spec, read_timeout=None)
            conns.append((spec, conn, dialect_for(db.server_version(conn))))
        for spec, conn, dialect in conns:
            status = db.replica_status(conn, dialect)
            if status is None or status.io_running != "Yes" or status.sql_running != "Yes":
                why = "; ".join(status.problems()) if status else "not a replica"
                raise ReplicationError(f"cannot compare {spec.name} with the primary: {why}")
        for entry in conns:
            db.execute(entry[1], entry[2].replica.freeze())
            frozen.append(entry)
        pconn = db.connect(primary, read_timeout=None, autocommit=True)
        pd = dialect_for(db.server_version(pconn))
        gtid = _snapshot_gtid(pconn, pd)
        for _spec, conn, dialect in frozen:
            if gtid:
                db.execute(conn, dialect.replica.start_until(gtid))
        system = pd.dump.system_schemas()
        databases = db.user_databases(pconn, system)
        tables = [t for d in databases for t in _tables(pconn, d)]
        chunks = _plan_chunks(pconn, tables, chunk_rows, sample_chunks, rng)
        expected = {c: _range_checksum(pconn, c) for c in chunks}
        db.execute(pconn, "COMMIT")
        log(
            f"primary {primary.name}: {len(chunks)} chunk(s) of {len(tables)} table(s) checksummed at {gtid or '(empty)'}"
        )
        notes = [
            f"FLOAT columns left out of the checksum: {t.database}.{t.table}.{c}"
            for t in tables
            for c in t.exclude
        ]
        results = []
        for spec, conn, dialect in frozen:
            error = _wait_reached(conn, dialect, gtid, timeout) if gtid else None
            if error:
                results.append(Comparison(spec.name, gtid, error=error))
                log(f"{spec.name}: not compared: {error}")
                continue
            comparison = _compare(spec.name, gtid, expected, conn, databases, system)
            comparison.notes += notes
            log(f"{spec.name}: {comparison.summary()}")
            results.append(comparison)
        return results
    finally:
        if pconn is not None:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                pconn.close()
        for spec, conn, dialect in frozen:
            try:
                conn.ping(reconnect=True)
                db.execute(conn, dialect.replica.freeze())
                db.execute(conn, dialect.replica.start_replica())
            except (pymysql.MySQLError, OSError) as exc:
                restart_errors.append(f"{spec.name}: {exc}")
        for _spec, conn, _dialect in conns:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                conn.close()
        if restart_errors:
            raise ReplicationError(
                "could not restart replication after the checksum on: "
                + "; ".join(restart_errors)
                + ". Run START SLAVE / START REPLICA on them"
            )


def raise_on_differences(comparisons: Sequence[Comparison], primary: str) -> None:
    """VerificationFailed naming each replica and table that differs (or could not be compared)."""
    bad = [c for c in comparisons if not c.ok]
    if bad:
        raise VerificationFailed(
            f"replica check against {primary} failed: "
            + " | ".join(
                f"{c.replica} at {c.gtid}: "
                + (f"not compared: {c.error}" if c.error else "; ".join(c.differences[:20]))
                for c in bad
            )
            + f". Re-run provisioning with rebuild=True to reseed from {primary}"
        )
