"""Seeding a replica and pointing it at its source."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mysqlops.adapters import clients, process
from mysqlops.adapters import mysql as db
from mysqlops.errors import (
    DumpIncomplete,
    ProcessError,
    ReplicationError,
    VerificationFailed,
)
from mysqlops.gtid import normalize_gtid
from mysqlops.model import ObjectCounts, ServerSpec
from mysqlops.redact import client_stderr
from mysqlops.sql import catalog as sqlcat
from mysqlops.sql.dialect import Dialect, dialect_for
from mysqlops.sql.replica import ReplicaSql
from mysqlops.sql.status import ReplicaStatus
from mysqlops.streams.dumpscan import DumpScanner
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv, mysql_argv
from mysqlops.units import human_bytes, human_rate

if TYPE_CHECKING:
    pass
from mysqlops.replication.plan import (
    Log,
    ProvisionPlan,
    ReplicaAction,
    ReplicaPlan,
    ReplicationSettings,
    ServerFacts,
    _execute_secret,
    _quiet,
)

_READ_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# 3./4. seed and connect


@dataclass(frozen=True)
class SeedResult:
    gtid: str | None
    databases: tuple[str, ...]
    bytes: int
    seconds: float


@dataclass(frozen=True)
class Attached:
    """What :func:`attach_replica` did to one replica."""

    replica: str
    action: str  # seeded | rebuilt | kept | re-pointed | reconnected
    gtid: str | None = None
    databases: tuple[str, ...] = ()
    bytes: int = 0
    seconds: float = 0.0
    dropped: tuple[str, ...] = ()


def seed_stream(
    primary: ServerFacts,
    replica: ServerFacts,
    *,
    timeout: float | None = None,
    log: Log = _quiet,
    progress_interval: float = 10.0,
) -> SeedResult:
    """Stream a consistent dump of the primary's user databases into the replica's client.

    No intermediate file: the dump's stdout is read in Python and written to the client's
    stdin, with :class:`DumpScanner` watching it (GTID position at the end, trailer, counts).
    """
    pd = primary.dialect
    started = time.monotonic()
    with db.session(primary.spec) as conn:
        before = normalize_gtid(db.scalar(conn, pd.replica.gtid_executed_query()))
        databases = tuple(db.user_databases(conn, pd.dump.system_schemas()))
        expected = {d: db.object_counts(conn, d) for d in databases}
    if not databases:
        log(
            f"{replica.spec.name}: the primary has no user databases; starting from GTID {before or '(empty)'}"
        )
        return SeedResult(before, (), 0, time.monotonic() - started)
    dump = dump_argv(
        clients.for_server(primary.version).dump,
        databases[0],
        DumpOptions(position_options=pd.dump.dump_position_options()),
    )
    if len(databases) > 1:
        dump = (*dump[:-1], *databases)  # --databases -- db1 db2 ...
    load = mysql_argv(clients.for_server(replica.version).mysql)
    scanner = DumpScanner()
    hint = "; the replica is partly loaded: re-run with rebuild=True"
    last = time.monotonic()
    with (
        process.Pipeline(
            [dump],
            credentials=client_option_file(primary.spec),
            stdout=process.PIPE,
            timeout=timeout,
            name=f"dump of {primary.spec.name}",
            stderr_filter=client_stderr,
        ) as dumper,
        process.Pipeline(
            [load],
            credentials=client_option_file(replica.spec),
            stdin=process.PIPE,
            stdout=process.DEVNULL,
            timeout=timeout,
            name=f"load into {replica.spec.name}",
            stderr_filter=client_stderr,
        ) as loader,
    ):
        source, sink = dumper.stdout_pipe, loader.stdin_pipe
        while True:
            chunk = source.read1(_READ_CHUNK) if hasattr(source, "read1") else source.read(_READ_CHUNK)
            if not chunk:
                break
            scanner.feed(chunk)
            try:
                sink.write(chunk)
            except BrokenPipeError:
                break  # the client died: its exit code and stderr say why
            now = time.monotonic()
            if now - last >= progress_interval:
                last = now
                rate = scanner.total_bytes / max(now - started, 1e-6)
                log(f"{replica.spec.name}: {human_bytes(scanner.total_bytes)} streamed ({human_rate(rate)})")
        scanner.finish()
        try:
            loader.wait()
        except ProcessError as exc:
            dumper.cancel()
            raise ReplicationError(f"loading the dump into {replica.spec.name} failed: {exc}{hint}") from None
        try:
            dumper.wait()
        except ProcessError as exc:
            raise ReplicationError(f"dumping {primary.spec.name} failed: {exc}{hint}") from None
    if not scanner.completed:
        raise DumpIncomplete(
            f"the dump of {primary.spec.name} ended without its '-- Dump completed' trailer{hint}"
        )
    missing = [
        f"{d}: " + "; ".join(diffs)
        for d in databases
        if (diffs := expected[d].differences(scanner.counts(d)))
    ]
    if missing:
        raise DumpIncomplete(
            "the dump is missing objects the primary has (the dump tool exits 0 when it silently skips "
            "objects it may not read): " + " | ".join(missing) + hint
        )
    file, position, gtid = pd.dump.parse_dump_coordinates(scanner.coordinates_text)
    if gtid is None and file and position is not None and pd.is_mariadb:
        with db.session(primary.spec) as conn:  # the dump wrote an empty or no gtid line
            gtid = normalize_gtid(db.scalar(conn, ReplicaSql.GTID_AT_POSITION, [file, int(position)]))
    if gtid is None and before:
        raise ReplicationError(
            f"the dump of {primary.spec.name} recorded no GTID position (options {' '.join(pd.dump.dump_position_options())}); "
            "is the binary log on and GTID mode enabled?"
        )
    with db.session(replica.spec) as conn:
        loaded = {d: db.object_counts(conn, d) for d in databases}
    wrong = [
        f"{d}: " + "; ".join(diffs)
        for d in databases
        if (diffs := scanner.counts(d).differences(loaded.get(d, ObjectCounts())))
    ]
    if wrong:
        raise VerificationFailed(
            f"{replica.spec.name} does not hold what the dump created: {' | '.join(wrong)}{hint}"
        )
    seconds = time.monotonic() - started
    log(
        f"{replica.spec.name}: seeded {len(databases)} database(s), {human_bytes(scanner.total_bytes)} in "
        f"{seconds:.1f}s, at GTID {gtid or '(empty)'}"
    )
    return SeedResult(gtid, databases, scanner.total_bytes, seconds)


def _change_source_sql(dialect: Dialect, host: str, port: int, settings: ReplicationSettings) -> str:
    return dialect.replica.change_source(
        host,
        port,
        settings.user,
        settings.password,
        tls=settings.tls,
        ca=settings.ca if settings.tls else None,
        cert=settings.cert if settings.tls else None,
        key=settings.key if settings.tls else None,
        verify_cert=settings.verifies,
        connect_retry=settings.connect_retry,
    )


def _point_at_source(
    conn: db.Connection, dialect: Dialect, plan: ProvisionPlan, settings: ReplicationSettings
) -> None:
    db.execute(conn, dialect.replica.stop_replica())
    _execute_secret(
        conn,
        _change_source_sql(dialect, plan.source_host, plan.source_port, settings),
        settings.password,
        "pointing the replica at the primary",
    )
    db.execute(conn, dialect.replica.start_replica())


def attach_replica(
    plan: ProvisionPlan,
    target: ReplicaPlan,
    settings: ReplicationSettings,
    *,
    account_changed: bool = False,
    timeout: float | None = None,
    log: Log = _quiet,
) -> Attached:
    """Seed (or rebuild) a replica and start it, or keep/reconnect one that replicates already."""
    facts = target.facts
    name = facts.spec.name
    dialect = facts.dialect
    if target.action is ReplicaAction.KEEP:
        status = facts.status
        differs = (
            account_changed
            or (status is not None and status.ssl_allowed != settings.tls)
            or (facts.source_user and facts.source_user != settings.user)
        )
        if not differs:
            log(f"{name}: {target.reason}; nothing to do")
            return Attached(name, "kept")
        with db.session(facts.spec) as conn:
            _point_at_source(conn, dialect, plan, settings)
        log(f"{name}: replication account or TLS changed: re-pointed without reseeding")
        return Attached(name, "re-pointed")
    if target.action is ReplicaAction.RECONNECT:
        with db.session(facts.spec) as conn:
            _point_at_source(conn, dialect, plan, settings)
        log(f"{name}: {target.reason}: restarted replication at its own GTID position")
        return Attached(name, "reconnected")
    dropped: list[str] = []
    with db.session(facts.spec) as conn:
        db.execute(conn, dialect.replica.stop_replica())
        db.execute(conn, dialect.replica.reset_replica_all())
        for sql in dialect.replica.read_only_statements(False):
            db.execute(conn, sql)
        if target.action is ReplicaAction.REBUILD:
            for database in db.user_databases(conn, dialect.dump.system_schemas()):
                db.execute(conn, sqlcat.drop_database(database))
                dropped.append(database)
            if dropped:
                log(f"{name}: dropped {len(dropped)} database(s) to rebuild: {', '.join(dropped)}")
        left = db.user_databases(conn, dialect.dump.system_schemas())
        if left:
            raise ReplicationError(
                f"{name} is no longer empty (databases {', '.join(left)} appeared after pre-flight): "
                "re-run with rebuild=True"
            )
    seeded = seed_stream(plan.primary, facts, timeout=timeout, log=log)
    with db.session(facts.spec) as conn:
        if seeded.gtid:
            position = dialect.replica.set_gtid_position(seeded.gtid, reset_binlog=facts.log_bin)
        else:
            position = dialect.replica.empty_position(reset_binlog=facts.log_bin)
        for sql in position:
            db.execute(conn, sql)
        _execute_secret(
            conn,
            _change_source_sql(dialect, plan.source_host, plan.source_port, settings),
            settings.password,
            f"pointing {name} at the primary",
        )
        db.execute(conn, dialect.replica.start_replica())
    action = "rebuilt" if target.action is ReplicaAction.REBUILD else "seeded"
    log(
        f"{name}: {action} and replicating from {plan.source_host}:{plan.source_port} after GTID {seeded.gtid}"
    )
    return Attached(name, action, seeded.gtid, seeded.databases, seeded.bytes, seeded.seconds, tuple(dropped))


# --------------------------------------------------------------------------------------------
# 5. catch up, protect


def _fatal(status: ReplicaStatus) -> list[str]:
    """Problems that waiting cannot fix: a stopped thread (a connecting IO thread may recover)."""
    out = []
    if status.sql_running != "Yes":
        out += [p for p in status.problems() if p.startswith("SQL thread")]
    if status.io_running == "No":
        out += [p for p in status.problems() if p.startswith("IO thread")]
    return out


def catch_up(
    primary: ServerSpec, replica: ServerSpec, *, timeout: float = 600, log: Log = _quiet, poll: int = 5
) -> str | None:
    """Wait until ``replica`` executed the primary's current GTID position; return that position."""
    with db.session(primary) as conn:
        target = normalize_gtid(
            db.scalar(conn, dialect_for(db.server_version(conn)).replica.gtid_executed_query())
        )
    if not target:
        return None
    started = time.monotonic()
    deadline = started + max(1.0, float(timeout))
    with db.session(replica, read_timeout=None) as conn:
        dialect = dialect_for(db.server_version(conn))
        while True:
            step = int(max(1, min(poll, math.ceil(deadline - time.monotonic()))))
            if dialect.replica.wait_succeeded(db.scalar(conn, dialect.replica.wait_for_gtid(target, step))):
                log(
                    f"{replica.name}: caught up with the primary at {target} in {time.monotonic() - started:.1f}s"
                )
                return target
            status = db.replica_status(conn, dialect)
            if status is None:
                raise ReplicationError(
                    f"{replica.name} is not a replica (no replica status): provision it first"
                )
            fatal = _fatal(status)
            if fatal:
                raise ReplicationError(
                    f"{replica.name} stopped replicating while catching up: {'; '.join(fatal)}"
                )
            if time.monotonic() >= deadline:
                raise ReplicationError(
                    f"{replica.name} did not reach the primary's position {target} within {timeout:.0f}s "
                    f"(it is at {status.executed_gtid or 'nothing'}"
                    + (f"; {'; '.join(status.problems())}" if status.problems() else "")
                    + "): raise catchup_timeout or check the replica's load"
                )
            log(
                f"{replica.name}: at {status.executed_gtid or 'nothing'}, waiting for {target} "
                f"(behind {status.seconds_behind if status.seconds_behind is not None else '?'}s)"
            )


def protect(replica: ServerSpec) -> bool:
    """Turn read_only on (MySQL: super_read_only too); False when it already was."""
    with db.session(replica) as conn:
        dialect = dialect_for(db.server_version(conn))
        names = ["read_only"] if dialect.is_mariadb else ["read_only", "super_read_only"]
        values = db.global_variables(conn, names)
        if all(values.get(n, "").upper() in ("ON", "1") for n in names):
            return False
        for sql in dialect.replica.read_only_statements(True):
            db.execute(conn, sql)
    return True
