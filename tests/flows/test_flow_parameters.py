"""Flow parameters mean the same in every flow: ``server``/``servers`` name a MySQLServer block
(the catalog flows read the backups recorded under that block's ``server_name``, or the name
itself when no such block exists); ``policy`` is one policy for all locations or per location;
restore-test tests the copies at ``locations`` (no second ``location`` parameter)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic import SecretStr

pytestmark = [pytest.mark.flows]


def test_server_parameter_names_a_block_in_every_flow(tmp_path: Any) -> None:
    from blocks import BackupLocation, MySQLServer
    from flows.backup import list_backups
    from flows.common import server_name

    MySQLServer(port=3306, user="u", password=SecretStr("pw-canary"), server_name="recorded-db").save(
        "param-block", overwrite=True
    )
    assert server_name("param-block") == "recorded-db"
    assert server_name("no-such-block") == "no-such-block"  # a server whose block is gone
    BackupLocation(url=f"file://{tmp_path}/b").save("param-local", overwrite=True)
    assert list_backups(locations=["param-local"], server="param-block") == []


def test_parameter_names_agree_across_flows() -> None:
    from flows.backup import backup, list_backups
    from flows.report import backup_report
    from flows.restore import restore, restore_test
    from flows.retention import apply_retention

    def params(f: Any) -> set[str]:
        return set(inspect.signature(f.fn).parameters)

    assert "location" not in params(restore_test) and "locations" in params(restore_test)
    assert "policies" not in params(apply_retention) | params(backup_report)
    assert "policy" in params(apply_retention) & params(backup_report)
    for f in (backup, list_backups, restore, restore_test, apply_retention, backup_report):
        assert "locations" in params(f)
    assert "server" in params(backup) & params(restore) & params(list_backups)
    assert "servers" in params(restore_test) & params(apply_retention)
