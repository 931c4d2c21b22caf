"""Restores: fetch, logical and physical load, verification, point in time.

Entry points: :func:`run` (a :class:`RestoreRequest`, plain or to a
:class:`~mysqlops.model.RecoveryTarget`), :func:`run_physical` (a
:class:`PhysicalRestoreRequest`: a physical chain into a stopped server's empty datadir, on
its host) and :func:`restore_test` (restore tests and their certificates), each with a
:class:`~mysqlops.runs.RunContext`.
"""

from mysqlops.restore.chain import physical_chain, validate_chain
from mysqlops.restore.load import STATEMENT_TIMEOUT_SECONDS, LoadOptions
from mysqlops.restore.logical import RestoreResult, restore_backup
from mysqlops.restore.physical import (
    ChainReport,
    PhysicalRestoreOutcome,
    PhysicalRestoreRequest,
    restore_physical,
    run_physical,
    target_problems,
)
from mysqlops.restore.physical_proof import PhysicalRestoreTest, restore_test_physical, scratch_build
from mysqlops.restore.pitr import PitrResult, point_in_time_restore, prove_binlog_chain
from mysqlops.restore.proof import (
    RestoreTestPlan,
    certificate_markdown,
    certificate_row,
    chain_row,
    plan_restore_tests,
    prove_copy,
    prove_pitr,
    restore_test,
)
from mysqlops.restore.proof import failure as restore_test_failure
from mysqlops.restore.request import RestoreOutcome, RestoreRequest, run
from mysqlops.restore.verify import (
    certificate_key,
    check_scratch_series,
    restore_test_copy,
    scratch_build_name,
)

__all__ = [
    "STATEMENT_TIMEOUT_SECONDS",
    "ChainReport",
    "LoadOptions",
    "PhysicalRestoreOutcome",
    "PhysicalRestoreRequest",
    "PhysicalRestoreTest",
    "PitrResult",
    "RestoreOutcome",
    "RestoreRequest",
    "RestoreResult",
    "RestoreTestPlan",
    "certificate_key",
    "certificate_markdown",
    "certificate_row",
    "chain_row",
    "check_scratch_series",
    "physical_chain",
    "plan_restore_tests",
    "point_in_time_restore",
    "prove_binlog_chain",
    "prove_copy",
    "prove_pitr",
    "restore_backup",
    "restore_physical",
    "restore_test",
    "restore_test_copy",
    "restore_test_failure",
    "restore_test_physical",
    "run",
    "run_physical",
    "scratch_build",
    "scratch_build_name",
    "target_problems",
    "validate_chain",
]
