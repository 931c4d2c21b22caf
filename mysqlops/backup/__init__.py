"""Backups: pre-flight, staging and uploads, logical and physical."""

from mysqlops.backup.logical import BackupResult, run_backup
from mysqlops.backup.physical import run_physical_backup
from mysqlops.backup.preflight import Plan
from mysqlops.backup.uploads import LocationResult
from mysqlops.progress import Progress, ProgressFn

__all__ = [
    "BackupResult",
    "LocationResult",
    "Plan",
    "Progress",
    "ProgressFn",
    "run_backup",
    "run_physical_backup",
]
