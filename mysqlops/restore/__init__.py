"""Restores: fetch, logical and physical load, verification, point in time."""

from mysqlops.restore.logical import RestoreResult, restore_backup
from mysqlops.restore.physical import (
    ChainReport,
    PhysicalRestoreTest,
    physical_chain,
    restore_physical,
    restore_test_physical,
)
from mysqlops.restore.pitr import PitrResult, point_in_time_restore, prove_binlog_chain
from mysqlops.restore.verify import (
    certificate_key,
    check_scratch_series,
    restore_test_copy,
    scratch_build_name,
)

__all__ = [
    "ChainReport",
    "PhysicalRestoreTest",
    "PitrResult",
    "RestoreResult",
    "certificate_key",
    "check_scratch_series",
    "physical_chain",
    "point_in_time_restore",
    "prove_binlog_chain",
    "restore_backup",
    "restore_physical",
    "restore_test_copy",
    "restore_test_physical",
    "scratch_build_name",
]
