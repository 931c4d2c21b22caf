"""``restore.restore_test``: prove that backups restore, copy by copy, and publish certificates.

For the latest complete backup of each server (or ``backup_id``), every location's copy is
restored into a scratch server and verified (:func:`prove_copy`: logical copies through
:func:`~mysqlops.restore.verify.restore_test_copy`, physical chains through
:func:`~mysqlops.restore.physical_proof.restore_test_physical` compared with ``compare_with``); the
restore certificate is written next to the manifest at that location. A copy the catalog
refused is never restored: it is a failed row. The flow (flows/restore.py) runs
:func:`plan_restore_tests`, one task per copy over :func:`prove_copy`, then the rows, certificates and :func:`failure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mysqlops import catalog
from mysqlops.errors import ConfigError, MysqlopsError, VerificationFailed
from mysqlops.manifest import BackupManifest, Check, RestoreCertificate
from mysqlops.model import Location, ServerSpec
from mysqlops.runs import RunContext
from mysqlops.units import human_duration


@dataclass
class RestoreTestPlan:
    """Which copies to test, and the failed rows of the copies that will not be."""

    servers: list[str]
    problems: list[str] = field(default_factory=list)  # why each refused row was refused
    copies: list[tuple[Location, BackupManifest]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def _refused_row(server: str, problem: str) -> dict[str, Any]:
    """A failed row for a copy that was not even tested (refused or not found)."""
    where, _, what = problem.partition(": ")
    return {
        "server": server,
        "backup_id": "(not tested)",
        "location": where if what else None,
        "passed": False,
        "restore_seconds": None,
        "load_seconds": None,
        "verify_seconds": None,
        "recovery_point_hours": None,
        "failed_checks": (what or problem)[:500],
    }


def plan_restore_tests(
    scans: Sequence[catalog.LocationScan], servers: Sequence[str] | None = None, backup_id: str = "latest"
) -> RestoreTestPlan:
    """The copies of the backup to test per server (every server found when ``servers`` is
    empty); refused manifests and missing backups become failed rows."""
    names = list(servers or ()) or sorted(
        {m.server for s in scans for m in s.backups}
        | {u.server for s in scans for u in s.unusable if u.server}
    )
    if not names:
        raise ConfigError(
            f"no backups found at {', '.join(s.location.name for s in scans) or 'no location'}: nothing to test"
        )
    plan = RestoreTestPlan(names)
    for server in names:
        for problem in catalog.unusable_copies(scans, server, None if backup_id == "latest" else backup_id):
            plan.problems.append(problem)
            plan.refused.append(_refused_row(server, problem))
        try:
            plan.copies += catalog.find_backup(scans, server, backup_id)
        except MysqlopsError as exc:
            plan.problems.append(str(exc))
            plan.refused.append(_refused_row(server, str(exc)))
    return plan


def prove_copy(
    location: Location,
    manifest: BackupManifest,
    ctx: RunContext,
    scans: Sequence[catalog.LocationScan] = (),
    compare_with: ServerSpec | None = None,
    *,
    scratch_series: str | None = None,
) -> RestoreCertificate:
    """Restore-test one copy and write its certificate at ``location``; every check is reported.
    ``scratch_series``: a logical copy is restored into that build (an upgrade rehearsal)."""
    from mysqlops.restore.verify import certificate_key, restore_test_copy

    if manifest.method.value == "physical":
        from mysqlops.adapters.storage import Store
        from mysqlops.restore.chain import physical_chain
        from mysqlops.restore.physical_proof import restore_test_physical

        if compare_with is None:
            raise ConfigError(
                f"backup {manifest.backup_id} is physical: its restore test compares table checksums with a "
                "server that has not changed since (e.g. a quiet replica); pass compare_with=<MySQLServer block>"
            )
        here = [s for s in scans if s.location.name == location.name]
        chain = physical_chain(here, manifest.server, manifest.backup_id)
        tested = restore_test_physical(chain, ctx, source=compare_with)
        cert = tested.certificate
        Store(location).put_bytes(
            cert.to_json().encode(), certificate_key(manifest, location.name, cert.tested_at)
        )
    else:
        cert = restore_test_copy(location, manifest, ctx, scratch_series=scratch_series)
    for check in cert.checks:
        (ctx.reporter.info if check.passed else ctx.reporter.error)(
            f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}"
        )
    return cert


def prove_pitr(locations: Sequence[Location], server: str, ctx: RunContext) -> list[Check]:
    """The binlog-chain proof of one server (:func:`~mysqlops.restore.pitr.prove_binlog_chain`), reported."""
    from mysqlops.restore.pitr import prove_binlog_chain

    checks = prove_binlog_chain(locations, server, ctx=ctx)
    for check in checks:
        (ctx.reporter.info if check.passed else ctx.reporter.error)(
            f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}"
        )
    return checks


def certificate_row(cert: RestoreCertificate) -> dict[str, Any]:
    return {
        "server": cert.server,
        "backup_id": cert.backup_id,
        "location": cert.location,
        "passed": cert.passed,
        "restore_seconds": cert.durations.get("total"),
        "load_seconds": cert.durations.get("load"),
        "verify_seconds": cert.durations.get("verify"),
        "recovery_point_hours": round(cert.recovery_point_seconds / 3600, 2),
        "failed_checks": "; ".join(c.name for c in cert.checks if not c.passed),
    }


def chain_row(server: str, locations: Sequence[str], checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "server": server,
        "backup_id": "binlog chain",
        "location": ",".join(locations),
        "passed": bool(checks) and all(c.passed for c in checks),
        "restore_seconds": None,
        "load_seconds": None,
        "verify_seconds": None,
        "recovery_point_hours": None,
        "failed_checks": "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.passed),
    }


def certificate_markdown(cert: RestoreCertificate) -> str:
    """One restore certificate as markdown (the flow's artifact per copy)."""
    lines = [
        f"# Restore test of `{cert.backup_id}` ({cert.server}) from `{cert.location}`: "
        + ("**PASSED**" if cert.passed else "**FAILED**"),
        "",
        f"- source {cert.source_version}, scratch server {cert.target_version}",
        f"- recovery point: backup was {human_duration(cert.recovery_point_seconds)} old",
        "- durations: " + ", ".join(f"{k} {human_duration(v)}" for k, v in cert.durations.items()),
        "",
        "| check | result | detail |",
        "|---|---|---|",
        *[f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail[:300]} |" for c in cert.checks],
    ]
    if cert.lossy:
        lines += ["", "## Lossy by format", *[f"- {note}" for note in cert.lossy]]
    return "\n".join(lines)


def failure(rows: Sequence[dict[str, Any]]) -> VerificationFailed | None:
    """The error that fails the restore test when any row did not pass."""
    failed = [r for r in rows if not r["passed"]]
    if not failed:
        return None
    return VerificationFailed(
        "restore test failed for "
        + ", ".join(
            f"{r['server']} {r['backup_id']} at {r['location']} ({r['failed_checks']})" for r in failed
        )
    )


def restore_test(
    locations: Sequence[Location],
    ctx: RunContext,
    *,
    servers: Sequence[str] | None = None,
    backup_id: str = "latest",
    compare_with: ServerSpec | None = None,
    prove_binlogs: bool = False,
    scratch_series: str | None = None,
) -> tuple[list[dict[str, Any]], list[RestoreCertificate]]:
    """Every step of the restore-test flow in one call (the command line, tests): the rows
    (refused copies first) and the certificates written. Raises nothing for a failed test:
    :func:`failure` of the rows says whether it failed."""
    scans = catalog.scan(locations)
    plan = plan_restore_tests(scans, servers, backup_id)
    for problem in plan.problems:
        ctx.reporter.error(problem)
    certs = [
        prove_copy(loc, m, ctx, scans, compare_with, scratch_series=scratch_series) for loc, m in plan.copies
    ]
    rows = plan.refused + [certificate_row(c) for c in certs]
    if prove_binlogs:
        names = [loc.name for loc in locations]
        rows += [chain_row(s, names, prove_pitr(locations, s, ctx)) for s in plan.servers]
    return rows, certs
