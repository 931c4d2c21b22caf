"""``provision-replica`` and ``replica-health``: GTID replicas as a recipe over :mod:`mysqlops.replication`.

provision-replica: pre-flight (nothing changes when it fails) -> replication account -> seed each
replica by streaming a dump (or keep a healthy one) -> catch up -> read_only -> checksums at one
synchronized point -> table artifact of the topology and checks. Re-running on healthy replicas
changes nothing. replica-health ends Failed, naming what broke, so automations can react.

The replication password comes from a Prefect ``Secret`` block, loaded inside the tasks that need
it: it is never a flow or task parameter, never logged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE

import mysqlops.replication as replication
from flows.common import load_block, load_server, publish_metrics, table_artifact
from mysqlops import metrics
from mysqlops.errors import ConfigError, ReplicationError
from mysqlops.model import ServerSpec


def _with_password(
    settings: replication.ReplicationSettings, secret_block: str
) -> replication.ReplicationSettings:
    """``settings`` with the password of the ``Secret`` block ``secret_block``."""
    value = load_block(Secret, secret_block, "Secret", "Secret(value='...')").get()
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the Secret block {secret_block!r} must hold the replication password as a string")
    return replace(settings, password=value)


@task(cache_policy=NO_CACHE)
def preflight_task(
    primary: ServerSpec,
    replicas: list[ServerSpec],
    settings: replication.ReplicationSettings,
    secret_block: str,
    rebuild: bool,
) -> replication.ProvisionPlan:
    logger = get_run_logger()
    plan = replication.preflight(primary, replicas, _with_password(settings, secret_block), rebuild=rebuild)
    logger.info("pre-flight ok: primary %s (%s)", primary.name, plan.primary.version)
    for rp in plan.replicas:
        logger.info("%s: %s (%s)", rp.name, rp.action.value, rp.reason)
    for warning in plan.warnings:
        logger.warning(warning)
    return plan


@task(cache_policy=NO_CACHE)
def replication_user_task(
    primary: ServerSpec, settings: replication.ReplicationSettings, secret_block: str
) -> str:
    account = replication.ensure_replication_user(primary, _with_password(settings, secret_block))
    get_run_logger().info("replication user %r on %s: %s", settings.user, primary.name, account)
    return account


@task(cache_policy=NO_CACHE)
def attach_task(
    plan: replication.ProvisionPlan,
    target: replication.ReplicaPlan,
    settings: replication.ReplicationSettings,
    secret_block: str,
    account_changed: bool,
) -> replication.Attached:
    return replication.attach_replica(
        plan,
        target,
        _with_password(settings, secret_block),
        account_changed=account_changed,
        log=get_run_logger().info,
    )


@task(cache_policy=NO_CACHE)
def catch_up_task(primary: ServerSpec, replica: ServerSpec, timeout: int) -> str | None:
    return replication.catch_up(primary, replica, timeout=timeout, log=get_run_logger().info)


@task(cache_policy=NO_CACHE)
def protect_task(replica: ServerSpec) -> bool:
    changed = replication.protect(replica)
    get_run_logger().info("%s: read_only %s", replica.name, "turned on" if changed else "was already on")
    return changed


@task(cache_policy=NO_CACHE)
def verify_task(
    primary: ServerSpec, replicas: list[ServerSpec], timeout: int
) -> list[replication.Comparison]:
    return replication.verify_replicas(primary, replicas, timeout=timeout, log=get_run_logger().info)


@flow(name="provision-replica")
def provision_replica(
    primary: str,
    replicas: list[str],
    replication_user: str = "mysqlops_repl",
    replication_password: str = "mysqlops-replication-password",
    tls: bool = False,
    seed: str = "stream",
    rebuild: bool = False,
    catchup_timeout: int = 600,
) -> list[dict[str, Any]]:
    """Make ``replicas`` (MySQLServer block names) GTID replicas of ``primary`` and prove them equal.

    replication_password: name of a Prefect Secret block holding the replication password.
    tls: the replication account REQUIRES SSL; replicas verify the primary's certificate with the
    primary block's ``tls_ca`` (the same path must exist on the replica hosts) when ``tls_verify``.
    seed: ``stream`` (dump piped into the replica, no intermediate file). rebuild: drop and reseed
    the listed replicas whatever their state (the repair for a broken or drifted replica).
    catchup_timeout: seconds a replica may take to reach the primary's position.
    Never restarts a server: pre-flight lists the my.cnf lines to set instead.

    Args:
        primary: MySQLServer block of the primary.
        replicas: MySQLServer blocks to make replicas of the primary.
        replication_user: Account the replicas connect as (created on the primary when missing).
        replication_password: Name of a Secret block holding the replication password.
        tls: Require TLS for replication (replicas verify the primary's certificate).
        seed: How replicas are seeded: stream (a dump piped into each replica).
        rebuild: Drop and reseed the listed replicas whatever their state (repairs a drifted replica).
        catchup_timeout: Seconds a replica may take to reach the primary's position.
    """
    if seed != "stream":
        raise ConfigError(f"seed {seed!r} is not supported: use 'stream'")
    spec = load_server(primary)
    specs = [load_server(name) for name in replicas]
    settings = replication.ReplicationSettings(
        user=replication_user,
        tls=tls,
        ca=spec.tls.ca if tls and spec.tls else None,
        verify_cert=bool(spec.tls and spec.tls.verify_cert),
    )
    plan = preflight_task(spec, specs, settings, replication_password, rebuild)
    account = replication_user_task(spec, settings, replication_password)
    attached = [
        attach_task(plan, rp, settings, replication_password, account == "updated") for rp in plan.replicas
    ]
    caught = {rp.name: catch_up_task(spec, rp.facts.spec, catchup_timeout) for rp in plan.replicas}
    protected = {rp.name: protect_task(rp.facts.spec) for rp in plan.replicas}
    comparisons = verify_task(spec, [rp.facts.spec for rp in plan.replicas], catchup_timeout)
    rows = replication.provision_rows(plan, account, attached, caught, protected, comparisons)
    table_artifact(f"provision-replica-{spec.name}", rows, f"Replicas of {spec.name}: topology and checks")
    replication.raise_on_differences(comparisons, spec.name)
    return rows


@task(cache_policy=NO_CACHE)
def health_task(
    replicas: list[ServerSpec], max_lag_seconds: int, primary: ServerSpec | None, sample_checksum: bool
) -> list[replication.ReplicaHealth]:
    return replication.check_health(
        replicas,
        max_lag_seconds=max_lag_seconds,
        primary=primary,
        sample_checksum=sample_checksum,
        log=get_run_logger().info,
    )


@flow(name="replica-health")
def replica_health(
    replicas: list[str],
    max_lag_seconds: int = 300,
    sample_checksum: bool = False,
    primary: str | None = None,
) -> list[dict[str, Any]]:
    """Thread states, lag, last errors, GTID positions and read_only of each replica.

    sample_checksum: also compare a sample of table chunks with ``primary`` at a synchronized
    point. Ends Failed when a thread is stopped, the lag exceeds ``max_lag_seconds`` or drift is
    found; the message names the replica and what broke.
    """
    logger = get_run_logger()
    specs = [load_server(name) for name in replicas]
    primary_spec = load_server(primary) if primary else None
    results = health_task(specs, max_lag_seconds, primary_spec, sample_checksum)
    rows = [h.row() for h in results]
    publish_metrics(metrics.replication_samples(results))
    table_artifact("replica-health", rows, "Replica health: threads, lag, errors, GTID, read_only, drift")
    for h in results:
        if h.ok:
            logger.info("%s: ok, %s s behind, at %s", h.replica, h.seconds_behind, h.executed_gtid)
        for warning in h.warnings:
            logger.warning("%s: %s", h.replica, warning)
    failures = replication.health_failures(results)
    if failures:
        raise ReplicationError("unhealthy replica(s): " + " | ".join(failures))
    return rows
