"""Retention: policy, plan, apply."""

from mysqlops.retention.apply import ApplyResult, apply_plan, cleanup, plan_for_scan
from mysqlops.retention.plan import Decision, RetentionPlan
from mysqlops.retention.policy import RetentionPolicy

__all__ = [
    "ApplyResult",
    "Decision",
    "RetentionPlan",
    "RetentionPolicy",
    "apply_plan",
    "cleanup",
    "plan_for_scan",
]
