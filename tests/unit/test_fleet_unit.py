"""The Prefect-free part of ``backup-fleet``: request checks, rows, summary and the failure."""

from __future__ import annotations

import pytest

from mysqlops.backup import fleet
from mysqlops.errors import ConfigError


def _summary(backup_id: str) -> dict[str, object]:
    return {
        "backup_id": backup_id,
        "databases": ["app", "shop"],
        "stored_bytes": 1234,
        "locations": {"local": "ok", "s3": "ok"},
        "warnings": ["slow"],
    }


@pytest.mark.parametrize(
    ("servers", "max_concurrency", "message"),
    [
        ([], 4, "at least one server"),
        (["db1", "db1"], 4, "servers must be distinct"),
        (["db1"], 0, "max_concurrency must be at least 1, got 0"),
    ],
)
def test_fleet_check_request_names_the_problem(
    servers: list[str], max_concurrency: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        fleet.check_request(servers, max_concurrency)
    fleet.check_request(["db1", "db2"], 1)


def test_fleet_rows_summary_and_failure() -> None:
    ok = fleet.ok_row("db1", _summary("20261130T150000Z"))
    assert ok == {
        "server": "db1",
        "status": "ok",
        "backup_id": "20261130T150000Z",
        "databases": 2,
        "stored_bytes": 1234,
        "locations": "local: ok, s3: ok",
        "warnings": 1,
        "error": "",
    }
    assert fleet.failure([ok]) is None
    bad = fleet.failed_row("db2", fleet.error_text(RuntimeError("access denied | try again")))
    assert bad["status"] == "FAILED" and bad["backup_id"] == "" and bad["stored_bytes"] == 0
    rows = [ok, bad]
    assert (
        fleet.table_title(rows, 12.4, 3)
        == "Fleet backup of 2 server(s): 1 ok, 1 failed in 12s (max 3 at once)"
    )
    markdown = fleet.summary_markdown(rows)
    assert markdown.splitlines()[0] == "# Fleet backup: 1 of 2 ok"
    assert "| db2 | FAILED |  | access denied / try again |" in markdown
    error = fleet.failure(rows)
    assert isinstance(error, fleet.FleetBackupFailed)
    assert str(error) == "backup failed for 1 of 2 server(s): db2; db2: access denied | try again"


def test_fleet_error_text_is_short_and_never_empty() -> None:
    assert fleet.error_text(None) == ""
    assert fleet.error_text(ValueError("  ")) == "ValueError"
    long = fleet.error_text(RuntimeError("x" * 600))
    assert len(long) == 500 and long.endswith("...")
