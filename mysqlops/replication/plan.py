"""Provisioning plan and pre-flight."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import pymysql

from mysqlops.adapters import clients
from mysqlops.adapters import mysql as db
from mysqlops.errors import (
    ConfigError,
    MysqlopsError,
    PreflightFailed,
    ReplicationError,
)
from mysqlops.gtid import normalize_gtid
from mysqlops.model import ServerSpec, ServerVersion
from mysqlops.sql.dialect import Dialect, dialect_for
from mysqlops.sql.quoting import quote_string
from mysqlops.sql.status import ReplicaStatus

if TYPE_CHECKING:
    pass

Log = Callable[[str], None]


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


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (also in its SQL-escaped form) replaced by ``***``."""
    if not secret:
        return text
    for form in {secret, quote_string(secret)[1:-1]}:
        text = text.replace(form, "***")
    return text


def _execute_secret(conn: db.Connection, sql: str, secret: str, what: str) -> None:
    """Run a statement holding a secret: a failure message never repeats it."""
    try:
        db.execute(conn, sql)
    except pymysql.MySQLError as exc:
        text = " ".join(str(a) for a in exc.args)
        raise ReplicationError(f"{what} failed: {redact(text, secret)}") from None


def _snapshot_gtid(conn: db.Connection, dialect: Dialect) -> str | None:
    """Open a consistent snapshot on ``conn`` and return the GTID position it reflects."""
    db.execute(conn, dialect.replica.SNAPSHOT_ISOLATION)
    if dialect.is_mariadb:
        db.execute(conn, dialect.replica.START_SNAPSHOT)
        status = {
            str(r["Variable_name"]).lower(): r["Value"]
            for r in db.query(conn, dialect.replica.SNAPSHOT_BINLOG_STATUS)
        }
        file = status.get("binlog_snapshot_file")
        position = status.get("binlog_snapshot_position")
        if not file:
            raise ReplicationError("the primary has no binary log: cannot find a synchronized point")
        return normalize_gtid(db.scalar(conn, dialect.replica.GTID_AT_POSITION, [file, int(position or 0)]))
    db.execute(conn, dialect.replica.GLOBAL_READ_LOCK)
    try:
        db.execute(conn, dialect.replica.START_SNAPSHOT)
        gtid = normalize_gtid(db.scalar(conn, dialect.replica.gtid_executed_query()))
    finally:
        db.execute(conn, dialect.replica.UNLOCK)
    return gtid


def _source_user(conn: db.Connection, dialect: Dialect) -> str:
    rows = db.query(conn, dialect.replica.show_replica_status())
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
        databases = tuple(db.user_databases(conn, dialect.dump.system_schemas()))
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
    problems += [
        f"primary {primary.name}: {p}"
        for p in pd.requirements.replication_requirements(pf.variables, "primary")
    ]
    warnings += [
        f"primary {primary.name}: {w}"
        for w in pd.requirements.replication_recommendations(pf.variables, "primary")
    ]
    if settings.password and settings.user:
        try:
            pd.accounts.replication_user_grants(
                settings.user, settings.account_host, settings.password, settings.tls
            )
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
        problems += [
            f"{label}: {p}" for p in rd.requirements.replication_requirements(rf.variables, "replica")
        ]
        warnings += [
            f"{label}: {w}"
            for w in rd.requirements.replication_recommendations(rf.variables, "replica")
            if "accepts client writes" not in w  # provisioning turns read_only on itself
        ]
        problems += [
            f"{label}: {p}" for p in pd.requirements.replication_pair_problems(pf.variables, rf.variables)
        ]
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
        found, _ = clients.check(clients.for_server(pf.version), pf.version, roles=("dump",))
        for version in dict.fromkeys(p.facts.version for p in plans):
            found += clients.check(clients.for_server(version), version, roles=("client",))[0]
        problems += list(dict.fromkeys(found))
        warnings += _float_warnings(primary, pf.databases)
    if problems:
        raise PreflightFailed(problems)
    return ProvisionPlan(pf, tuple(plans), source[0], source[1], tuple(warnings))
