"""Retention: policy, plan, deletes in commit-marker order, and the entry point.

Entry point: :func:`apply` (every location, dry run unless asked) over :func:`apply_at` (one).
"""

from mysqlops.retention.deletes import ApplyResult, apply_plan, cleanup, plan_for_scan
from mysqlops.retention.locations import (
    LocationOutcome,
    apply,
    apply_at,
    failure,
    policies_by_location,
    summary_markdown,
    to_policy,
)
from mysqlops.retention.plan import Decision, RetentionPlan
from mysqlops.retention.policy import RetentionPolicy

__all__ = [
    "ApplyResult",
    "Decision",
    "LocationOutcome",
    "RetentionPlan",
    "RetentionPolicy",
    "apply",
    "apply_at",
    "apply_plan",
    "cleanup",
    "failure",
    "plan_for_scan",
    "policies_by_location",
    "summary_markdown",
    "to_policy",
]
