"""Replicas: plan, seed, verify, health, provision."""

from mysqlops.replication.health import ReplicaHealth, check_health, health_failures
from mysqlops.replication.plan import ProvisionPlan, ReplicaPlan, ReplicationSettings, preflight
from mysqlops.replication.provision import (
    ProvisionResult,
    provision,
    provision_rows,
    wire_sandbox_replication,
)
from mysqlops.replication.seed import Attached, attach_replica, catch_up, protect
from mysqlops.replication.user import ensure_replication_user
from mysqlops.replication.verify import Comparison, raise_on_differences, verify_replicas

__all__ = [
    "Attached",
    "Comparison",
    "ProvisionPlan",
    "ProvisionResult",
    "ReplicaHealth",
    "ReplicaPlan",
    "ReplicationSettings",
    "attach_replica",
    "catch_up",
    "check_health",
    "ensure_replication_user",
    "health_failures",
    "preflight",
    "protect",
    "provision",
    "provision_rows",
    "raise_on_differences",
    "verify_replicas",
    "wire_sandbox_replication",
]
