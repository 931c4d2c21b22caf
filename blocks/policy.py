"""The ``RetentionPolicyBlock``: how long backups are kept at a location."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from mysqlops.retention import RetentionPolicy


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

    keep_last: int = Field(
        default=0, ge=0, description="Keep the N newest proven backups (a restore test passed)."
    )
    keep_hourly: int = Field(
        default=0, ge=0, description="Keep the newest backup of each of the last N hours."
    )
    keep_daily: int = Field(default=0, ge=0, description="Keep the newest backup of each of the last N days.")
    keep_weekly: int = Field(
        default=0, ge=0, description="Keep the newest backup of each of the last N ISO weeks."
    )
    keep_monthly: int = Field(
        default=0, ge=0, description="Keep the newest backup of each of the last N months."
    )
    keep_yearly: int = Field(
        default=0, ge=0, description="Keep the newest backup of each of the last N years."
    )
    keep_within: str | None = Field(
        default=None, description="Keep everything newer than this, e.g. '7d', '36h'."
    )
    min_redundancy: int = Field(
        default=1, ge=1, description="Proven backups (a restore test passed) that always stay."
    )

    def to_policy(self) -> RetentionPolicy:
        data = self.model_dump(exclude_none=True)
        return RetentionPolicy.from_mapping(
            {k: v for k, v in data.items() if k.startswith(("keep_", "min_"))}
        )
