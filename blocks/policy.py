"""The ``RetentionPolicyBlock``: how long backups are kept at a location."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field

from mysqlops.retention import RetentionPolicy
from mysqlops.retention.policy import policy_options

_OPTIONS = policy_options()


def _option(name: str) -> Any:
    option = _OPTIONS[name]
    bound = {"ge": option["minimum"]} if option["minimum"] is not None else {}
    return Field(default=option["default"], description=option["description"], **bound)


class RetentionPolicyBlock(Block):
    """A grandfather-father-son retention policy for one location.

    Example::

        RetentionPolicyBlock(keep_daily=30, keep_monthly=12, keep_yearly=5).save("s3-policy")
        policy = RetentionPolicyBlock.load("s3-policy").to_policy()

    Rules combine: a backup is kept if any rule keeps it. Only backups proven by a restore
    test that passed count; ``min_redundancy`` proven backups always stay whatever the rules
    say, and where nothing is proven nothing is deleted. An empty policy is refused.
    """

    _block_type_name = "Retention Policy"
    _block_type_slug = "mysqlops-retention-policy"
    _logo_url = None
    _description = "Retention rules (GFS, keep_within, minimum redundancy) for a backup location."

    # names and types here (Prefect builds the block's form from them); default, bound and
    # description come from the one listing of policy fields, mysqlops.retention.policy
    keep_last: int = _option("keep_last")
    keep_hourly: int = _option("keep_hourly")
    keep_daily: int = _option("keep_daily")
    keep_weekly: int = _option("keep_weekly")
    keep_monthly: int = _option("keep_monthly")
    keep_yearly: int = _option("keep_yearly")
    keep_within: str | None = _option("keep_within")
    min_redundancy: int = _option("min_redundancy")

    def to_policy(self) -> RetentionPolicy:
        data = self.model_dump(exclude_none=True)
        return RetentionPolicy.from_mapping({k: v for k, v in data.items() if k in _OPTIONS})
