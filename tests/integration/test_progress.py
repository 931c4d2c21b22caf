"""Progress that does not lie: estimates from the tablespace files right after a bulk load."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mysqlops.adapters import builds, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.backup import Progress, run_backup
from mysqlops.backup.preflight import preflight
from mysqlops.model import Location
from mysqlops.streams.compression import codec
from tests.jobs import job

pytestmark = pytest.mark.integration

ROWS = 120_000  # about 30 MiB of dump text


@pytest.mark.flavors
def test_progress_estimate_on_fresh_bulk_load(
    fresh_server: sandbox.SandboxServer, server_build: builds.ServerBuild, local_location: Location
) -> None:
    """Bulk-load a table and dump it right away: the estimate (the tablespace file, not the stale
    statistics) is within a factor of the real size, and no line claims a percentage or an ETA
    once the estimate is exceeded (never "59.0 MiB of ~128.0 KiB (99%)")."""
    spec = fresh_server.spec()
    with db.session(spec) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE bulk")
        cur.execute(
            "CREATE TABLE bulk.t (id INT PRIMARY KEY AUTO_INCREMENT, a CHAR(100) NOT NULL, b VARCHAR(200) NOT NULL)"
            " ENGINE=InnoDB"
        )
        # statistics taken now, on the empty table: what information_schema.TABLES shows next
        cur.execute("ANALYZE TABLE bulk.t")
        cur.fetchall()
        cur.execute(
            "INSERT INTO bulk.t (a, b) VALUES (REPEAT('x', 100), CONCAT(UUID(), UUID(), UUID(), UUID(), UUID()))"
        )
        while True:
            cur.execute("SELECT COUNT(*) AS n FROM bulk.t")
            n = cur.fetchone()["n"]
            if n >= ROWS:
                break
            cur.execute(
                f"INSERT INTO bulk.t (a, b) SELECT a, CONCAT(UUID(), UUID(), UUID(), UUID(), UUID()) FROM bulk.t LIMIT {ROWS - n}"
            )
        conn.commit()
        stale = db.database_sizes(conn, ["bulk"])["bulk"]  # statistics only
        estimate = db.database_sizes(conn, ["bulk"], spec_is_mariadb(fresh_server))["bulk"]

    lines: list[str] = []
    seen: list[tuple[int, int]] = []

    def on_progress(p: Progress) -> None:
        seen.append((p.dumped_bytes, p.estimated_bytes))
        lines.append(p.describe())

    plan = preflight(spec, [local_location], databases=["bulk"])
    assert plan.estimated_bytes == {"bulk": estimate}
    # the dump client of the server's own build (mysqldump of MySQL 9.7 for a MySQL 9.7 server)
    plan = dataclasses.replace(plan, tool=server_build.client_argv("dump"))  # type: ignore[arg-type]
    result = run_backup(
        *job(
            spec,
            [local_location],
            codec("zstd"),
            databases=["bulk"],
            progress=on_progress,
            progress_interval=0.05,
        ),
        plan=plan,
    )
    assert result.ok, result.locations
    raw = result.manifest.raw_bytes
    assert raw > 20 * 2**20, raw
    assert seen and all(est == estimate for _, est in seen), (seen[:3], estimate)
    # within a factor of the real size (an .ibd file holds pages with free space, a dump is text)
    assert raw / 3 <= estimate <= raw * 3, (estimate, raw, stale)
    assert lines[-1].endswith("(done)") and "%" not in lines[-1], lines[-1]  # the end is no estimate
    for (dumped, est), line in zip(seen[:-1], lines[:-1], strict=True):
        if dumped > est:
            assert "%" not in line and "ETA" not in line, line
            assert "more than the estimate" in line, line
        else:
            assert re.search(r"\(\d+%\)", line), line
        assert re.search(r" at [\d.]+ (B|KiB|MiB|GiB)/s", line) and " MB/s" not in line, line
    assert not any(re.search(r"of ~[\d.]+ KiB \(99%\)", line) for line in lines), lines
    print(f"{server_build.name}: statistics {stale} B, tablespace estimate {estimate} B, dump {raw} B")


def spec_is_mariadb(server: sandbox.SandboxServer) -> bool:
    with db.session(server.spec()) as conn:
        return db.server_version(conn).flavor.value == "mariadb"
