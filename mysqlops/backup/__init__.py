"""Backups: pre-flight, staging and uploads, logical and physical.

Entry point: :func:`run` (a :class:`BackupRequest` and a :class:`~mysqlops.runs.RunContext`).
"""

from mysqlops.backup.logical import BackupResult, plan_backup, run_backup
from mysqlops.backup.physical import run_physical_backup
from mysqlops.backup.preflight import Plan
from mysqlops.backup.request import BackupRequest, failure, request_from, run, summary, summary_markdown
from mysqlops.backup.uploads import LocationResult
from mysqlops.progress import Progress, ProgressFn

__all__ = [
    "BackupRequest",
    "BackupResult",
    "LocationResult",
    "Plan",
    "Progress",
    "ProgressFn",
    "failure",
    "plan_backup",
    "request_from",
    "run",
    "run_backup",
    "run_physical_backup",
    "summary",
    "summary_markdown",
]
