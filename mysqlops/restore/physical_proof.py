"""Restore tests of physical backups: the chain prepared, started as a scratch server of the
backup's own build, every table compared (rows and content checksum) with the expected
checksums or a source that has not changed since; a restore certificate either way.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mysqlops.adapters import builds, reaper, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_tempdir
from mysqlops.errors import ConfigError, MysqlopsError, RestoreError
from mysqlops.manifest import (
    BackupManifest,
    Check,
    RestoreCertificate,
    TableStat,
    validate_backup_manifest,
)
from mysqlops.model import Location, ServerSpec, ServerVersion
from mysqlops.restore.physical import ChainReport, restore_physical
from mysqlops.restore.verify import make_certificate
from mysqlops.runs import RunContext
from mysqlops.tablesum import table_checksums


def scratch_build(manifest: BackupManifest) -> str:
    """The server build a physical copy starts on: the backup's own flavor and series (InnoDB
    files are not portable across series before an upgrade has run on them)."""
    return builds.build_name_for(ServerVersion.parse(manifest.server_version, manifest.flavor))


@dataclass
class PhysicalRestoreTest:
    backup_id: str
    server: str
    chain: list[str]  # backup ids, full first
    checks: list[Check]
    durations: dict[str, float]
    target_version: str
    certificate: RestoreCertificate
    locations_used: dict[str, str] = field(default_factory=dict)  # backup id -> location
    problems: list[str] = field(default_factory=list)  # unusable copies skipped

    @property
    def passed(self) -> bool:
        return self.certificate.passed


def _compare_tables(
    database: str, expected: Mapping[str, TableStat], restored: Mapping[str, TableStat]
) -> list[Check]:
    checks = []
    for table in sorted(set(expected) | set(restored)):
        want, got = expected.get(table), restored.get(table)
        name = f"{database}.{table}: rows and checksum"
        if want is None:
            checks.append(Check(name, False, "table exists after restore but not in the expected data"))
        elif got is None:
            checks.append(Check(name, False, f"missing after restore (expected rows {want.rows})"))
        else:
            ok = (want.rows, want.checksum) == (got.rows, got.checksum)
            detail = (
                f"rows {got.rows} checksum {got.checksum}"
                if ok
                else f"expected rows {want.rows} checksum {want.checksum}, got rows {got.rows} checksum {got.checksum}"
            )
            checks.append(Check(name, ok, detail))
    return checks


def restore_test_physical(
    copies_chain: Sequence[Sequence[tuple[Location, BackupManifest]]],
    ctx: RunContext | None = None,
    *,
    source: ServerSpec | None = None,
    expected: Mapping[str, Mapping[str, TableStat]] | None = None,
    databases: Sequence[str] | None = None,
    start_timeout: float = 300,
) -> PhysicalRestoreTest:
    """Prepare the chain, start a scratch sandbox server on the prepared datadir and compare
    every table's row count and content checksum with ``expected`` ({database: {table:
    TableStat}}) or, when not given, with the ``source`` server now (meaningful only while
    the source has not changed since the last backup of the chain, e.g. a quiet replica).
    The scratch server is always stopped and every directory removed. ``ctx``: staging
    directory (the scratch server's too), keyring, reporter and child-process timeout."""
    ctx = ctx if ctx is not None else RunContext()
    staging_dir = ctx.staging_dir
    say = ctx.reporter.info
    if expected is None and source is None:
        raise ConfigError("restore_test_physical needs the source server or the expected table checksums")
    for copies in copies_chain:
        for _location, copy in copies:
            validate_backup_manifest(copy)  # a hostile manifest is refused: no test, no certificate
    last = copies_chain[-1][0][1] if copies_chain and copies_chain[-1] else None
    if last is None:
        raise RestoreError("empty backup chain: nothing to test")
    wanted = list(databases) if databases else list(last.databases)
    report = ChainReport()
    durations = report.durations
    checks: list[Check] = []
    target_version = "unknown"
    reaper.reap([staging_dir], log=say)
    root = private_tempdir(staging_dir, "myops-phys-")
    scratch_name = f"scratch-{secrets.token_hex(3)}"
    if len(os.path.join(root, scratch_name, "mysqld.sock")) > 107:
        shutil.rmtree(root, ignore_errors=True)
        raise ConfigError(
            f"staging_dir {staging_dir} is too long a path for the scratch server's unix socket "
            "(107 bytes at most): pick a shorter staging directory"
        )
    server = None
    try:
        t0 = time.monotonic()
        prepared = restore_physical(
            copies_chain,
            os.path.join(root, "prepared"),
            dataclasses.replace(ctx, staging_dir=root),
            report=report,
        )
        checks.append(
            Check(
                "chain fetched, verified and prepared",
                True,
                ", ".join(f"{b} from {loc}" for b, loc in report.locations_used.items()),
            )
        )
        t1 = time.monotonic()
        server = sandbox.start_server_on_datadir(
            root,
            scratch_name,
            prepared,
            server_id=4_000_000_000 + secrets.randbelow(200_000_000),
            timeout=start_timeout,
            build=scratch_build(last),
        )
        durations["start"] = round(time.monotonic() - t1, 3)
        checks.append(
            Check("server starts on the prepared datadir", True, f"{server.flavor.value} {server.version}")
        )
        target_version = f"{server.flavor.value} {server.version}"
        t2 = time.monotonic()
        reference: dict[str, dict[str, TableStat]] = {}
        if expected is not None:
            reference = {d: dict(expected.get(d, {})) for d in wanted}
        else:
            assert source is not None
            with db.session(source, read_timeout=3600) as conn:
                present = set(db.user_databases(conn))
                for database in wanted:
                    reference[database] = table_checksums(conn, database) if database in present else {}
        with db.session(server.spec(), read_timeout=3600) as conn:
            restored_dbs = set(db.user_databases(conn))
            for database in wanted:
                if database not in restored_dbs:
                    checks.append(Check(f"database {database} present", False, "missing after restore"))
                    continue
                checks.append(Check(f"database {database} present", True))
                checks += _compare_tables(database, reference[database], table_checksums(conn, database))
        durations["verify"] = round(time.monotonic() - t2, 3)
        durations["total"] = round(time.monotonic() - t0, 3)
    except MysqlopsError as exc:
        checks.append(Check("physical restore", False, str(exc)[:2000]))
        say(f"physical restore test failed: {exc}")
    finally:
        if server is not None:
            sandbox.stop_server(server)
        shutil.rmtree(root, ignore_errors=True)
    location = copies_chain[-1][0][0].name
    certificate = make_certificate(last, location, checks, durations, target_version, ())
    return PhysicalRestoreTest(
        backup_id=last.backup_id,
        server=last.server,
        chain=[copies[0][1].backup_id for copies in copies_chain],
        checks=checks,
        durations=durations,
        target_version=target_version,
        certificate=certificate,
        locations_used=dict(report.locations_used),
        problems=list(report.problems),
    )
