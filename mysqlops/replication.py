"""Provision GTID replicas from a primary, prove them equal, and check their health.

The recipe (:func:`provision`; the ``provision-replica`` flow runs the same steps as tasks):

1. :func:`preflight` reads both ends and raises :class:`PreflightFailed` (every problem with the
   my.cnf line that fixes it) before anything changes. It never restarts a server.
2. :func:`ensure_replication_user`: REPLICATION SLAVE only (REQUIRE SSL with TLS), created or
   converged idempotently, **not binary-logged** (``sql_log_bin=0``): the account must not
   replicate, because an ``ALTER USER`` replayed on a replica that lacks the account stops its
   SQL thread (error 1396), and replicas do not need it.
3. :func:`attach_replica`: for a replica to seed, stream ``mariadb-dump | mariadb`` with no
   intermediate file. The bytes pass through Python (:class:`DumpScanner`) so the dump's GTID
   position (MariaDB writes it at the END), its completeness trailer and its object counts are
   checked; then the GTID position is set and the replica pointed at the primary and started.
   A healthy replica of this primary is left alone (re-pointed only when the account changed).
4. :func:`catch_up` waits, bounded and with progress, for the primary's current GTID position.
5. :func:`protect` turns read_only on (a no-op when it already is).
6. :func:`verify_replicas` proves the data equal at one synchronized point, see below.

**The synchronized point.** Each replica is frozen first (MariaDB: ``STOP SLAVE``; MySQL: ``STOP
REPLICA SQL_THREAD``), so it is at or behind the primary. Then one transaction on the primary
opens a consistent snapshot and reads the GTID position *of that snapshot*: on MariaDB with
``binlog_snapshot_file/position`` (status values InnoDB fixes together with the snapshot, the
same mechanism ``mariadb-dump --single-transaction --master-data`` uses without locking) mapped
through ``BINLOG_GTID_POS()``; ``@@gtid_binlog_pos`` read inside the transaction would NOT be
snapshot-consistent. MySQL has no such pair, so there the snapshot is opened under a
``FLUSH TABLES WITH READ LOCK`` held for milliseconds (as ``mysqldump --source-data`` does; needs
RELOAD). Each replica is then restarted with ``UNTIL`` that position (MariaDB ``master_gtid_pos``,
MySQL ``SQL_AFTER_GTIDS``) and so stops exactly there. The primary's tables are checksummed inside
the snapshot while the replicas catch up to it, then each replica's, then replication restarts
(always, also on failure). Checksums are :func:`mysqlops.tablesum.content_checksum` per table,
or per primary-key range for big tables (pt-table-checksum style chunks; ``sample_chunks`` checks
a random subset). FLOAT columns are left out (a logical seed rounds them) and named in the notes.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pymysql

from mysqlops.adapters import mysql as db
from mysqlops.adapters import process
from mysqlops.commands import ClientTools, DumpOptions, client_option_file, dump_argv, mysql_argv
from mysqlops.dialect import Dialect, ReplicaStatus, dialect_for, normalize_gtid, quote_string
from mysqlops.dialect import quote_identifier as q
from mysqlops.dumpscan import DumpScanner
from mysqlops.errors import (
    ConfigError,
    ConnectionProblem,
    DumpIncomplete,
    EnvironmentProblem,
    MysqlopsError,
    PreflightFailed,
    ProcessError,
    ReplicationError,
    VerificationFailed,
)
from mysqlops.model import ObjectCounts, ServerSpec, ServerVersion, TLSOptions
from mysqlops.redact import client_stderr
from mysqlops.tablesum import content_checksum

if TYPE_CHECKING:
    from mysqlops.adapters.sandbox import SandboxServer

Log = Callable[[str], None]

__all__ = [
    "Attached",
    "Comparison",
    "ProvisionPlan",
    "ProvisionResult",
    "ReplicaAction",
    "ReplicaHealth",
    "ReplicaPlan",
    "ReplicationSettings",
    "ServerFacts",
    "attach_replica",
    "catch_up",
    "check_health",
    "chunk_bounds",
    "classify_replica",
    "ensure_replication_user",
    "health_failures",
    "preflight",
    "protect",
    "provision",
    "verify_replicas",
    "version_problem",
    "wire_sandbox_replication",
]

DEFAULT_CHUNK_ROWS = 50_000
MAX_CHUNKS = 1000  # per table: bigger tables get bigger chunks
_READ_CHUNK = 1 << 20
_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})


def _quiet(_message: str) -> None:
    return None


# --------------------------------------------------------------------------------------------
# settings and plans


@dataclass(frozen=True)
class ReplicationSettings:
    """How replicas log in to the primary. ``password`` never appears in repr.

    ``ca``/``cert``/``key`` are paths **as the replica servers see them** (the replica's server
    process reads them). ``verify_cert``: check the primary's certificate against ``ca``
    (MariaDB also checks that its name matches the host the replica connects to).
    ``source_host``/``source_port``: the primary's address as replicas reach it, when it differs
    from the address in the primary's connection settings (or that one is a socket).
    ``account_host``: the host part of the replication account (``'user'@'%'``).
    """

    user: str = "mysqlops_repl"
    password: str = field(default="", repr=False)
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify_cert: bool = True
    source_host: str | None = None
    source_port: int | None = None
    account_host: str = "%"
    connect_retry: int = 10

    @property
    def verifies(self) -> bool:
        return self.tls and bool(self.ca) and self.verify_cert

    def source_address(self, primary: ServerSpec) -> tuple[str, int]:
        return (self.source_host or primary.host, int(self.source_port or primary.port))


class ReplicaAction(StrEnum):
    SEED = "seed"  # empty and not replicating: dump + load
    REBUILD = "rebuild"  # rebuild=True: stop, reset, drop user databases, reseed
    KEEP = "keep"  # already a healthy replica of this primary
    RECONNECT = "reconnect"  # replica of this primary, IO thread down or stopped cleanly


@dataclass(frozen=True)
class ServerFacts:
    """What pre-flight read from one server."""

    spec: ServerSpec
    version: ServerVersion
    variables: Mapping[str, str] = field(repr=False)
    databases: tuple[str, ...] = ()
    status: ReplicaStatus | None = None
    source_user: str = ""

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.version)

    @property
    def server_id(self) -> int:
        try:
            return int(self.variables.get("server_id", "0"))
        except ValueError:
            return 0

    @property
    def log_bin(self) -> bool:
        return str(self.variables.get("log_bin", "")).upper() in ("ON", "1")


@dataclass(frozen=True)
class ReplicaPlan:
    facts: ServerFacts
    action: ReplicaAction
    reason: str

    @property
    def name(self) -> str:
        return self.facts.spec.name


@dataclass(frozen=True)
class ProvisionPlan:
    primary: ServerFacts
    replicas: tuple[ReplicaPlan, ...]
    source_host: str
    source_port: int
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# pure decisions


def version_problem(primary: ServerVersion, replica: ServerVersion, name: str = "replica") -> str | None:
    """A replica must be the same flavor and the same or a newer series than its primary."""
    if primary.flavor is not replica.flavor:
        return (
            f"{name} runs {replica} but the primary runs {primary}: replication needs the same flavor "
            "(MariaDB and MySQL GTIDs are incompatible); use a server of the primary's flavor"
        )
    if (replica.major, replica.minor) < (primary.major, primary.minor):
        return (
            f"{name} runs {replica}, an older series than the primary's {primary}: a replica must run "
            f"the same or a newer series; upgrade it to {primary.series} or later"
        )
    return None


def _same_host(a: str, b: str) -> bool:
    local = {"127.0.0.1", "localhost", "::1"}
    a, b = a.strip().lower(), b.strip().lower()
    return a == b or (a in local and b in local)


def classify_replica(
    status: ReplicaStatus | None,
    databases: Sequence[str],
    source: tuple[str, int],
    *,
    rebuild: bool,
    name: str = "replica",
) -> tuple[ReplicaAction | None, str]:
    """What provisioning does with a replica: an action and why, or ``None`` and the problem.

    ``rebuild=True`` rebuilds whatever the state (the way to repair drift or a broken replica).
    Without it: a healthy GTID replica of ``source`` is kept; one whose IO thread is down (or
    that was stopped cleanly) is reconnected; an empty non-replica is seeded; everything else
    (broken SQL thread, another source, data present) is refused with the fix.
    """
    where = f"{source[0]}:{source[1]}"
    same = (
        status is not None
        and _same_host(status.source_host, source[0])
        and int(status.source_port) == int(source[1])
        and status.using_gtid
    )
    if rebuild:
        return ReplicaAction.REBUILD, "rebuild=True: reset, drop its databases and reseed"
    if status is not None and same:
        if status.io_running == "Yes" and status.sql_running == "Yes":
            return ReplicaAction.KEEP, f"already a healthy GTID replica of {where}"
        if status.sql_running != "Yes" and status.last_sql_errno:
            return None, (
                f"{name} replicates from {where} but its SQL thread stopped: "
                + "; ".join(status.problems())
                + ". Re-run with rebuild=True to drop its data and reseed it"
            )
        return ReplicaAction.RECONNECT, f"replica of {where} with replication not running: reconnect it"
    if databases:
        listed = ", ".join(databases[:10]) + (" ..." if len(databases) > 10 else "")
        if status is not None:
            return None, (
                f"{name} already replicates from {status.source_host}:{status.source_port}"
                + ("" if status.using_gtid else " (without GTID)")
                + f", not from {where}, and holds databases ({listed}): re-run with rebuild=True to drop "
                "them and reseed it from this primary"
            )
        return None, (
            f"{name} is not empty (databases: {listed}): re-run with rebuild=True to drop them and "
            "reseed it, or point the flow at an empty server"
        )
    return ReplicaAction.SEED, "empty: seed it with a streamed dump"


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


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (also in its SQL-escaped form) replaced by ``***``."""
    if not secret:
        return text
    for form in {secret, quote_string(secret)[1:-1]}:
        text = text.replace(form, "***")
    return text


# --------------------------------------------------------------------------------------------
# SQL that dialect.py does not have yet (same on both flavors unless noted)

_NO_BINLOG = "SET SESSION sql_log_bin = 0"
_BINLOG = "SET SESSION sql_log_bin = 1"


def _start_until(dialect: Dialect, gtid: str) -> str:
    """Start the (stopped) replica so it stops right after ``gtid``."""
    value = quote_string(dialect.check_gtid(gtid))
    if dialect.is_mariadb:  # needs both threads stopped (error 1254 otherwise, measured)
        return f"{dialect.start_replica()} UNTIL master_gtid_pos = {value}"
    return f"{dialect.start_replica_sql_thread()} UNTIL SQL_AFTER_GTIDS = {value}"


def _freeze(dialect: Dialect) -> str:
    return dialect.stop_replica() if dialect.is_mariadb else dialect.stop_replica_sql_thread()


def _empty_position(dialect: Dialect, *, reset_binlog: bool) -> list[str]:
    """Statements for a replica of a primary that has no GTID history yet."""
    out = []
    if reset_binlog:
        out.append(
            "RESET BINARY LOGS AND GTIDS"
            if not dialect.is_mariadb and dialect.version.at_least(8, 2)
            else "RESET MASTER"
        )
    if dialect.is_mariadb:
        out.append("SET GLOBAL gtid_slave_pos = ''")
    return out


def _execute_secret(conn: db.Connection, sql: str, secret: str, what: str) -> None:
    """Run a statement holding a secret: a failure message never repeats it."""
    try:
        db.execute(conn, sql)
    except pymysql.MySQLError as exc:
        text = " ".join(str(a) for a in exc.args)
        raise ReplicationError(f"{what} failed: {redact(text, secret)}") from None


def _snapshot_gtid(conn: db.Connection, dialect: Dialect) -> str | None:
    """Open a consistent snapshot on ``conn`` and return the GTID position it reflects."""
    db.execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    if dialect.is_mariadb:
        db.execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
        status = {
            str(r["Variable_name"]).lower(): r["Value"]
            for r in db.query(conn, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        }
        file = status.get("binlog_snapshot_file")
        position = status.get("binlog_snapshot_position")
        if not file:
            raise ReplicationError("the primary has no binary log: cannot find a synchronized point")
        return normalize_gtid(db.scalar(conn, "SELECT BINLOG_GTID_POS(%s, %s)", [file, int(position or 0)]))
    db.execute(conn, "FLUSH TABLES WITH READ LOCK")
    try:
        db.execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
        gtid = normalize_gtid(db.scalar(conn, dialect.gtid_executed_query()))
    finally:
        db.execute(conn, "UNLOCK TABLES")
    return gtid


def _source_user(conn: db.Connection, dialect: Dialect) -> str:
    rows = db.query(conn, dialect.show_replica_status())
    if not rows:
        return ""
    row = rows[0]
    return str(row.get("Source_User") or row.get("Master_User") or "")


# --------------------------------------------------------------------------------------------
# 1. pre-flight


def _facts(spec: ServerSpec, *, replica: bool) -> ServerFacts:
    with db.session(spec) as conn:
        version = db.server_version(conn)
        dialect = dialect_for(version)
        variables = db.global_variables(conn)
        databases = tuple(db.user_databases(conn, dialect.system_schemas()))
        status = db.replica_status(conn, dialect) if replica else None
        source_user = _source_user(conn, dialect) if status is not None else ""
    return ServerFacts(spec, version, variables, databases, status, source_user)


def _float_warnings(spec: ServerSpec, databases: Sequence[str]) -> list[str]:
    if not databases:
        return []
    with db.session(spec) as conn:
        found = [f"{d}.{c}" for d in databases for c in db.float_columns(conn, d)]
    if not found:
        return []
    shown = ", ".join(found[:10]) + (" ..." if len(found) > 10 else "")
    return [
        f"FLOAT columns ({shown}): a logical seed rounds them to 6 significant digits, so the replica's "
        "values can differ; they are left out of the checksums, and row events on such tables without a "
        "primary key may fail on the replica: use DOUBLE or DECIMAL"
    ]


def preflight(
    primary: ServerSpec,
    replicas: Sequence[ServerSpec],
    settings: ReplicationSettings,
    *,
    rebuild: bool = False,
) -> ProvisionPlan:
    """Check both ends; raise :class:`PreflightFailed` listing every problem, changing nothing."""
    if not replicas:
        raise ConfigError("no replicas given: name at least one replica server")
    names = [r.name for r in replicas]
    if len(set(names)) != len(names) or primary.name in names:
        raise ConfigError(f"primary and replicas must be distinct servers, got {primary.name} and {names}")
    problems: list[str] = []
    warnings: list[str] = []
    if not settings.user:
        problems.append("the replication user name is empty")
    if not settings.password:
        problems.append("the replication password is empty: store one in the Secret block")
    if primary.socket and not settings.source_host:
        problems.append(
            f"the primary {primary.name} is reached through a socket, but replicas need its TCP address: "
            "give source_host/source_port"
        )
    try:
        pf = _facts(primary, replica=False)
    except MysqlopsError as exc:
        raise PreflightFailed([f"primary: {exc}", *problems]) from None
    pd = pf.dialect
    problems += [f"primary {primary.name}: {p}" for p in pd.replication_requirements(pf.variables, "primary")]
    warnings += [
        f"primary {primary.name}: {w}" for w in pd.replication_recommendations(pf.variables, "primary")
    ]
    if settings.password and settings.user:
        try:
            pd.replication_user_grants(settings.user, settings.account_host, settings.password, settings.tls)
        except ConfigError as exc:
            problems.append(str(exc))
    if settings.tls:
        have = pf.variables.get("have_ssl")
        if have is not None and have.upper() != "YES":
            problems.append(
                f"primary {primary.name}: TLS is off (have_ssl={have}); add to [mysqld]: "
                "ssl_ca = /path/ca.pem, ssl_cert = /path/server-cert.pem, ssl_key = /path/server-key.pem"
            )
        if not settings.ca:
            warnings.append(
                "TLS without a CA: replication is encrypted but the primary's certificate is not verified; "
                "give the CA (tls_ca of the primary's block)"
            )
    elif settings.ca or settings.cert or settings.key:
        problems.append("CA/certificate files were given but tls is off: set tls=True")
    source = settings.source_address(primary)
    plans: list[ReplicaPlan] = []
    ids: dict[int, str] = {pf.server_id: primary.name}
    for spec in replicas:
        try:
            rf = _facts(spec, replica=True)
        except MysqlopsError as exc:
            problems.append(f"replica {spec.name}: {exc}")
            continue
        rd = rf.dialect
        label = f"replica {spec.name}"
        problems += [f"{label}: {p}" for p in rd.replication_requirements(rf.variables, "replica")]
        warnings += [
            f"{label}: {w}"
            for w in rd.replication_recommendations(rf.variables, "replica")
            if "accepts client writes" not in w  # provisioning turns read_only on itself
        ]
        problems += [f"{label}: {p}" for p in pd.replication_pair_problems(pf.variables, rf.variables)]
        other = ids.get(rf.server_id)
        if other and other != primary.name and rf.server_id:
            problems.append(
                f"{label} and replica {other} both have server_id = {rf.server_id}: give each server its own "
                f"in [mysqld]: server_id = {max(ids) + 1}"
            )
        ids.setdefault(rf.server_id, spec.name)
        vp = version_problem(pf.version, rf.version, label)
        if vp:
            problems.append(vp)
        if str(rf.variables.get("event_scheduler", "")).upper() == "ON":
            warnings.append(
                f"{label}: event_scheduler is ON, so events copied by the seed run on the replica too: "
                "add to [mysqld]: event_scheduler = OFF"
            )
        action, reason = classify_replica(rf.status, rf.databases, source, rebuild=rebuild, name=label)
        if action is None:
            problems.append(reason)
            continue
        plans.append(ReplicaPlan(rf, action, reason))
    # the dump and load clients run only when there is something to copy: an empty primary
    # (a fresh sandbox) is replicated from its first GTID without them
    if pf.databases and any(p.action in (ReplicaAction.SEED, ReplicaAction.REBUILD) for p in plans):
        tools = [ClientTools.for_flavor(pf.version.flavor).dump] + [
            ClientTools.for_flavor(p.facts.version.flavor).mysql for p in plans
        ]
        for program in dict.fromkeys(tools):
            try:
                process.require_program(program, package_hint="mariadb-client (or mysql-client)")
            except EnvironmentProblem as exc:
                problems.append(str(exc))
        warnings += _float_warnings(primary, pf.databases)
    if problems:
        raise PreflightFailed(problems)
    return ProvisionPlan(pf, tuple(plans), source[0], source[1], tuple(warnings))


# --------------------------------------------------------------------------------------------
# 2. the replication account


_GLOBAL_GRANT = re.compile(r"^\s*GRANT\s+(?P<privs>.+?)\s+ON\s+\*\.\*\s+TO\s", re.IGNORECASE)


def grants_replication(show_grants_lines: Sequence[str]) -> bool:
    """Whether SHOW GRANTS lines give REPLICATION SLAVE (or ALL) on ``*.*``."""
    for line in show_grants_lines:
        m = _GLOBAL_GRANT.match(line)
        if not m:
            continue
        privs = {" ".join(p.split()).upper() for p in m.group("privs").split(",")}
        if privs & {"REPLICATION SLAVE", "REPLICATION REPLICA", "ALL PRIVILEGES", "ALL"}:
            return True
    return False


def _login_works(primary: ServerSpec, settings: ReplicationSettings) -> bool:
    host, port = settings.source_address(primary)
    tls = primary.tls or (TLSOptions(verify_cert=False) if settings.tls else None)
    spec = ServerSpec(
        name=primary.name, host=host, port=port, user=settings.user, password=settings.password, tls=tls
    )
    try:
        db.connect(spec, connect_timeout=5).close()
    except ConnectionProblem as exc:
        # only a refused login says the password (or TLS requirement) is wrong; a network problem
        # from this machine says nothing about it
        return "access denied" not in str(exc).lower()
    return True


def ensure_replication_user(primary: ServerSpec, settings: ReplicationSettings) -> str:
    """Create or converge the replication account; ``created``, ``updated`` or ``unchanged``.

    Nothing is run when the account exists with REPLICATION SLAVE, the wanted REQUIRE setting and
    a password that logs in. The statements run with ``sql_log_bin=0`` (see the module doc).
    """
    with db.session(primary) as conn:
        dialect = dialect_for(db.server_version(conn))
        statements = dialect.replication_user_grants(
            settings.user, settings.account_host, settings.password, settings.tls
        )
        rows = db.query(
            conn,
            "SELECT ssl_type AS t FROM mysql.user WHERE User = %s AND Host = %s",
            [settings.user, settings.account_host],
        )
        exists = bool(rows)
        if exists:
            ssl_type = str(rows[0]["t"] or "").upper()
            grants = [
                str(next(iter(r.values()))) for r in db.query(conn, "SHOW GRANTS FOR " + _account(settings))
            ]
            wanted = "ANY" if settings.tls else ""
            if ssl_type == wanted and grants_replication(grants) and _login_works(primary, settings):
                return "unchanged"
        db.execute(conn, _NO_BINLOG)
        try:
            for sql in statements:
                _execute_secret(
                    conn, sql, settings.password, f"setting up replication user {settings.user!r}"
                )
        finally:
            db.execute(conn, _BINLOG)
    return "updated" if exists else "created"


def _account(settings: ReplicationSettings) -> str:
    return f"{quote_string(settings.user)}@{quote_string(settings.account_host)}"


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


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


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
        before = normalize_gtid(db.scalar(conn, pd.gtid_executed_query()))
        databases = tuple(db.user_databases(conn, pd.system_schemas()))
        expected = {d: db.object_counts(conn, d) for d in databases}
    if not databases:
        log(
            f"{replica.spec.name}: the primary has no user databases; starting from GTID {before or '(empty)'}"
        )
        return SeedResult(before, (), 0, time.monotonic() - started)
    dump = dump_argv(
        ClientTools.for_flavor(primary.version.flavor).dump,
        databases[0],
        DumpOptions(position_options=pd.dump_position_options()),
    )
    if len(databases) > 1:
        dump = (*dump[:-1], *databases)  # --databases -- db1 db2 ...
    load = mysql_argv(ClientTools.for_flavor(replica.version.flavor).mysql)
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
                log(f"{replica.spec.name}: {_human(scanner.total_bytes)} streamed ({_human(rate)}/s)")
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
    file, position, gtid = pd.parse_dump_coordinates(scanner.coordinates_text)
    if gtid is None and file and position is not None and pd.is_mariadb:
        with db.session(primary.spec) as conn:  # the dump wrote an empty or no gtid line
            gtid = normalize_gtid(db.scalar(conn, "SELECT BINLOG_GTID_POS(%s, %s)", [file, int(position)]))
    if gtid is None and before:
        raise ReplicationError(
            f"the dump of {primary.spec.name} recorded no GTID position (options {' '.join(pd.dump_position_options())}); "
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
        f"{replica.spec.name}: seeded {len(databases)} database(s), {_human(scanner.total_bytes)} in "
        f"{seconds:.1f}s, at GTID {gtid or '(empty)'}"
    )
    return SeedResult(gtid, databases, scanner.total_bytes, seconds)


def _change_source_sql(dialect: Dialect, host: str, port: int, settings: ReplicationSettings) -> str:
    return dialect.change_source(
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
    db.execute(conn, dialect.stop_replica())
    _execute_secret(
        conn,
        _change_source_sql(dialect, plan.source_host, plan.source_port, settings),
        settings.password,
        "pointing the replica at the primary",
    )
    db.execute(conn, dialect.start_replica())


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
        db.execute(conn, dialect.stop_replica())
        db.execute(conn, dialect.reset_replica_all())
        for sql in dialect.read_only_statements(False):
            db.execute(conn, sql)
        if target.action is ReplicaAction.REBUILD:
            for database in db.user_databases(conn, dialect.system_schemas()):
                db.execute(conn, f"DROP DATABASE {q(database)}")
                dropped.append(database)
            if dropped:
                log(f"{name}: dropped {len(dropped)} database(s) to rebuild: {', '.join(dropped)}")
        left = db.user_databases(conn, dialect.system_schemas())
        if left:
            raise ReplicationError(
                f"{name} is no longer empty (databases {', '.join(left)} appeared after pre-flight): "
                "re-run with rebuild=True"
            )
    seeded = seed_stream(plan.primary, facts, timeout=timeout, log=log)
    with db.session(facts.spec) as conn:
        if seeded.gtid:
            position = dialect.set_gtid_position(seeded.gtid, reset_binlog=facts.log_bin)
        else:
            position = _empty_position(dialect, reset_binlog=facts.log_bin)
        for sql in position:
            db.execute(conn, sql)
        _execute_secret(
            conn,
            _change_source_sql(dialect, plan.source_host, plan.source_port, settings),
            settings.password,
            f"pointing {name} at the primary",
        )
        db.execute(conn, dialect.start_replica())
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
        target = normalize_gtid(db.scalar(conn, dialect_for(db.server_version(conn)).gtid_executed_query()))
    if not target:
        return None
    started = time.monotonic()
    deadline = started + max(1.0, float(timeout))
    with db.session(replica, read_timeout=None) as conn:
        dialect = dialect_for(db.server_version(conn))
        while True:
            step = int(max(1, min(poll, math.ceil(deadline - time.monotonic()))))
            if dialect.wait_succeeded(db.scalar(conn, dialect.wait_for_gtid(target, step))):
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
        for sql in dialect.read_only_statements(True):
            db.execute(conn, sql)
    return True


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
        "SELECT TABLE_NAME AS t, ENGINE AS e, TABLE_ROWS AS n FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_NAME",
        [database],
    )
    cols = db.query(
        conn,
        "SELECT TABLE_NAME AS t, COLUMN_NAME AS c, DATA_TYPE AS d, COLUMN_KEY AS k FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME, ORDINAL_POSITION",
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
    parts = ", ".join(f"HEX({q(c)}), ISNULL({q(c)})" for c in t.columns) or "''"
    row = db.query(
        conn,
        f"SELECT COUNT(*) AS n, COALESCE(BIT_XOR(CAST(CRC32(CONCAT_WS('#', {parts})) AS UNSIGNED)), 0) AS x, "
        f"COALESCE(SUM(CAST(CRC32(CONCAT_WS('|', {parts})) AS UNSIGNED)), 0) AS s "
        f"FROM {q(t.database)}.{q(t.table)} WHERE {' AND '.join(where)}",
        args,
    )[0]
    return int(row["n"]), f"{int(row['x']):08x}-{int(row['s']):x}"


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
        row = db.query(
            conn, f"SELECT MIN({q(t.pk)}) AS lo, MAX({q(t.pk)}) AS hi FROM {q(t.database)}.{q(t.table)}"
        )[0]
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
        if dialect.wait_succeeded(db.scalar(conn, dialect.wait_for_gtid(gtid, step))):
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
            db.execute(entry[1], _freeze(entry[2]))
            frozen.append(entry)
        pconn = db.connect(primary, read_timeout=None, autocommit=True)
        pd = dialect_for(db.server_version(pconn))
        gtid = _snapshot_gtid(pconn, pd)
        for _spec, conn, dialect in frozen:
            if gtid:
                db.execute(conn, _start_until(dialect, gtid))
        system = pd.system_schemas()
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
                db.execute(conn, _freeze(dialect))
                db.execute(conn, dialect.start_replica())
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


# --------------------------------------------------------------------------------------------
# the whole recipe


@dataclass
class ProvisionResult:
    plan: ProvisionPlan
    account: str
    attached: list[Attached]
    caught_up: dict[str, str | None]
    protected: dict[str, bool]
    comparisons: list[Comparison]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    def rows(self) -> list[dict[str, Any]]:
        return provision_rows(
            self.plan, self.account, self.attached, self.caught_up, self.protected, self.comparisons
        )


def provision_rows(
    plan: ProvisionPlan,
    account: str,
    attached: Sequence[Attached],
    caught_up: Mapping[str, str | None],
    protected: Mapping[str, bool],
    comparisons: Sequence[Comparison],
) -> list[dict[str, Any]]:
    """One row per server for the topology/checks artifact."""
    p = plan.primary
    rows: list[dict[str, Any]] = [
        {
            "server": p.spec.name,
            "role": "primary",
            "endpoint": f"{plan.source_host}:{plan.source_port}",
            "version": str(p.version),
            "server_id": p.server_id,
            "action": f"replication user {account}",
            "gtid": next((g for g in caught_up.values() if g), None),
            "checks": "pre-flight ok",
            "read_only": None,
        }
    ]
    by_attached = {a.replica: a for a in attached}
    by_cmp = {c.replica: c for c in comparisons}
    for rp in plan.replicas:
        name = rp.name
        a = by_attached.get(name)
        c = by_cmp.get(name)
        rows.append(
            {
                "server": name,
                "role": "replica",
                "endpoint": rp.facts.spec.endpoint,
                "version": str(rp.facts.version),
                "server_id": rp.facts.server_id,
                "action": a.action if a else rp.action.value,
                "gtid": caught_up.get(name),
                "checks": c.summary() if c else "not compared",
                "read_only": "turned on"
                if protected.get(name)
                else "already on"
                if name in protected
                else None,
            }
        )
    return rows


def provision(
    primary: ServerSpec,
    replicas: Sequence[ServerSpec],
    settings: ReplicationSettings,
    *,
    seed: str = "stream",
    rebuild: bool = False,
    catchup_timeout: float = 600,
    seed_timeout: float | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    log: Log = _quiet,
) -> ProvisionResult:
    """Pre-flight, account, seed/connect, catch up, protect, prove (raises VerificationFailed).

    ``seed_timeout``: seconds the dump and the load may take (None: no limit; they are killed
    as process groups on failure either way).
    """
    if seed != "stream":
        raise ConfigError(f"seed {seed!r} is not supported: use 'stream' (dump piped into the replica)")
    plan = preflight(primary, replicas, settings, rebuild=rebuild)
    for warning in plan.warnings:
        log(f"warning: {warning}")
    account = ensure_replication_user(primary, settings)
    log(f"replication user {settings.user!r} on {primary.name}: {account}")
    attached = [
        attach_replica(
            plan, rp, settings, account_changed=account == "updated", timeout=seed_timeout, log=log
        )
        for rp in plan.replicas
    ]
    caught = {
        rp.name: catch_up(primary, rp.facts.spec, timeout=catchup_timeout, log=log) for rp in plan.replicas
    }
    protected = {rp.name: protect(rp.facts.spec) for rp in plan.replicas}
    comparisons = verify_replicas(
        primary,
        [rp.facts.spec for rp in plan.replicas],
        chunk_rows=chunk_rows,
        timeout=catchup_timeout,
        log=log,
    )
    result = ProvisionResult(plan, account, attached, caught, protected, comparisons)
    raise_on_differences(comparisons, primary.name)
    return result


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
            health.read_only = str(db.scalar(conn, "SELECT @@GLOBAL.read_only")) in ("1", "ON")
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
                db.scalar(conn, dialect_for(db.server_version(conn)).gtid_executed_query())
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


# --------------------------------------------------------------------------------------------
# sandbox


def wire_sandbox_replication(primary: SandboxServer, replicas: list[SandboxServer]) -> None:
    """Make fresh sandbox ``replicas`` GTID replicas of ``primary`` (``sandbox up``).

    Uses the same recipe as the flow, with a random replication password that only the
    replicas' connection settings keep.
    """
    settings = ReplicationSettings(password=secrets.token_urlsafe(18))
    provision(primary.spec(), [r.spec() for r in replicas], settings, catchup_timeout=60)
