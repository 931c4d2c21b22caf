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

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mysqlops.errors import (
    ConfigError,
)
from mysqlops.model import ServerSpec

if TYPE_CHECKING:
    from mysqlops.adapters.sandbox import SandboxServer
from mysqlops.replication.plan import Log, ProvisionPlan, ReplicationSettings, _quiet, preflight
from mysqlops.replication.seed import Attached, attach_replica, catch_up, protect
from mysqlops.replication.user import ensure_replication_user
from mysqlops.replication.verify import DEFAULT_CHUNK_ROWS, Comparison, raise_on_differences, verify_replicas

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


# --------------------------------------------------------------------------------------------
# sandbox


def wire_sandbox_replication(primary: SandboxServer, replicas: list[SandboxServer]) -> None:
    """Make fresh sandbox ``replicas`` GTID replicas of ``primary`` (``sandbox up``).

    Uses the same recipe as the flow, with a random replication password that only the
    replicas' connection settings keep.
    """
    settings = ReplicationSettings(password=secrets.token_urlsafe(18))
    provision(primary.spec(), [r.spec() for r in replicas], settings, catchup_timeout=60)
