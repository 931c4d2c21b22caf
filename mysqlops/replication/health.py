"""Replica health."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymysql

from mysqlops.adapters import mysql as db
from mysqlops.errors import (
    ConfigError,
    MysqlopsError,
)
from mysqlops.gtid import normalize_gtid
from mysqlops.model import ServerSpec
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.dialect import dialect_for

if TYPE_CHECKING:
    pass
from mysqlops.replication.plan import Log, _quiet
from mysqlops.replication.verify import DEFAULT_CHUNK_ROWS, verify_replicas

# --------------------------------------------------------------------------------------------
# health


@dataclass
class ReplicaHealth:
    replica: str
    endpoint: str
    source: str = ""
    io_running: str = ""
    sql_running: str = ""
    seconds_behind: int | None = None
    last_io_error: str = ""
    last_sql_error: str = ""
    executed_gtid: str | None = None
    retrieved_gtid: str | None = None
    primary_gtid: str | None = None
    read_only: bool | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    checked: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.drift

    def row(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "endpoint": self.endpoint,
            "status": "ok" if self.ok else "FAILED",
            "source": self.source,
            "io_thread": self.io_running,
            "sql_thread": self.sql_running,
            "seconds_behind": self.seconds_behind,
            "last_io_error": self.last_io_error,
            "last_sql_error": self.last_sql_error,
            "executed_gtid": self.executed_gtid,
            "retrieved_gtid": self.retrieved_gtid,
            "primary_gtid": self.primary_gtid,
            "read_only": self.read_only,
            "checksum": self.checked,
            "problems": "; ".join(self.problems + self.drift),
            "warnings": "; ".join(self.warnings),
        }


def _one_health(spec: ServerSpec, max_lag_seconds: int, primary_gtid: str | None) -> ReplicaHealth:
    health = ReplicaHealth(spec.name, spec.endpoint, primary_gtid=primary_gtid)
    try:
        with db.session(spec) as conn:
            dialect = dialect_for(db.server_version(conn))
            status = db.replica_status(conn, dialect)
            health.read_only = str(db.scalar(conn, sqlcat.READ_ONLY)) in ("1", "ON")
    except MysqlopsError as exc:
        health.problems.append(str(exc))
        return health
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        if code in (1227, 1142, 1045):  # access denied / missing privilege
            health.problems.append(
                f"{spec.user} may not read the replica status (error {code}): give the block an account "
                "with SLAVE MONITOR (MariaDB) / REPLICATION CLIENT (MySQL): "
                "python -m mysqlops users --role monitor --apply on that server"
            )
        else:
            health.problems.append(
                f"cannot read the replica status: error {code}: {exc.args[-1] if exc.args else exc}"
            )
        return health
    if status is None:
        health.problems.append("not a replica (no replica status): provision it")
        return health
    health.source = f"{status.source_host}:{status.source_port}"
    health.io_running, health.sql_running = status.io_running, status.sql_running
    health.seconds_behind = status.seconds_behind
    health.last_io_error, health.last_sql_error = status.last_io_error, status.last_sql_error
    health.executed_gtid, health.retrieved_gtid = status.executed_gtid, status.retrieved_gtid
    health.problems += status.problems(max_lag_seconds)
    if not health.read_only:
        health.warnings.append("read_only is OFF: client writes can break replication")
    if not status.using_gtid:
        health.warnings.append("not positioned by GTID")
    return health


def check_health(
    replicas: Sequence[ServerSpec],
    *,
    max_lag_seconds: int = 300,
    primary: ServerSpec | None = None,
    sample_checksum: bool = False,
    sample_chunks: int = 4,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timeout: float = 120,
    log: Log = _quiet,
) -> list[ReplicaHealth]:
    """Thread states, lag, last errors, GTID positions, read_only; optionally checksum drift."""
    if sample_checksum and primary is None:
        raise ConfigError("sample_checksum needs the primary to compare with: pass primary=")
    primary_gtid = None
    if primary is not None:
        with db.session(primary) as conn:
            primary_gtid = normalize_gtid(
                db.scalar(conn, dialect_for(db.server_version(conn)).replica.gtid_executed_query())
            )
    results = [_one_health(spec, max_lag_seconds, primary_gtid) for spec in replicas]
    if sample_checksum and primary is not None:
        healthy = [(spec, h) for spec, h in zip(replicas, results, strict=True) if not h.problems]
        for h in results:
            if h.problems:
                h.checked = "skipped (replication not running)"
        if healthy:
            comparisons = verify_replicas(
                primary,
                [spec for spec, _ in healthy],
                chunk_rows=chunk_rows,
                sample_chunks=sample_chunks,
                timeout=timeout,
                log=log,
            )
            for (_, h), c in zip(healthy, comparisons, strict=True):
                h.drift += [f"drift: {d}" for d in c.differences]
                if c.error:
                    h.problems.append(f"checksum not possible: {c.error}")
                h.checked = c.summary()
    return results


def health_failures(results: Sequence[ReplicaHealth]) -> list[str]:
    """One line per unhealthy replica, naming what broke."""
    return [f"{h.replica} ({h.endpoint}): " + "; ".join(h.problems + h.drift) for h in results if not h.ok]
