"""Health checks of a backup setup, like ``barman check``: one verdict per server, location
and check, each with a message that says what is wrong and how to fix it.

Per server: reachable, backup privileges, binary log on, binary log retention long enough for
the backup interval, replication healthy (replicas only). Per server and location: newest
complete backup young enough, newest binlog archive young enough, last restore test passed
and recent (before the first archive or test is due, their absence is a warning). Per local
location: free disk space. Per scheduled deployment (:func:`evaluate_schedule`, facts read
from the Prefect API by the flow layer): an upcoming run exists and the run due last was
created ahead by the scheduler.

The evaluators (``evaluate_*``) are pure: they take what was read and return verdicts, so
they are unit-tested without servers. :func:`run_checks` does the reading.
"""

from mysqlops.checks.reading import disk_check, local_path, run_checks, server_checks
from mysqlops.checks.schedule import ScheduledRun, ScheduleFacts, evaluate_schedule
from mysqlops.checks.verdicts import (
    GIB,
    CheckPolicy,
    CheckResult,
    Status,
    binlog_retention_seconds,
    evaluate_binlog,
    evaluate_disk,
    evaluate_location,
    evaluate_replica,
    failures,
    human_age,
    human_bytes,
    summary,
)

__all__ = [
    "GIB",
    "CheckPolicy",
    "CheckResult",
    "ScheduleFacts",
    "ScheduledRun",
    "Status",
    "binlog_retention_seconds",
    "disk_check",
    "evaluate_binlog",
    "evaluate_disk",
    "evaluate_location",
    "evaluate_replica",
    "evaluate_schedule",
    "failures",
    "human_age",
    "human_bytes",
    "local_path",
    "run_checks",
    "server_checks",
    "summary",
]
