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


def test_backup_loads_its_key_once_inside_the_task_and_a_missing_block_fails_first(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key block is read once, by the task (never passed to it as key bytes); a missing
    block fails the run naming it before the server is contacted or anything is written."""
    import socket

    from prefect.blocks.system import Secret

    import flows.common
    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup
    from mysqlops.streams import crypto

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    port = int(listener.getsockname()[1])
    MySQLServer(host="127.0.0.1", port=port, user="u", password=SecretStr("pw")).save(
        "key-db", overwrite=True
    )
    BackupLocation(url=f"file://{tmp_path}/b").save("key-local", overwrite=True)
    Secret(value=crypto.format_key(crypto.generate_key())).save("key-once", overwrite=True)
    loads: list[str] = []
    real = flows.common.load_keyring

    def counting(names: list[str] | None) -> Any:
        loads.extend(names or [])
        return real(names)

    monkeypatch.setattr(flows.common, "load_keyring", counting)
    try:
        state = backup(
            server="key-db", locations=["key-local"], encryption_key="no-such-key", return_state=True
        )
        assert state.is_failed() and "no Secret block named 'no-such-key'" in str(
            state.result(raise_on_failure=False)
        )
        with pytest.raises(OSError):
            listener.accept()  # nobody connected
        assert not (tmp_path / "b").exists()
        listener.close()  # now the port refuses: pre-flight fails at once, after the key was read
        loads.clear()
        state = backup(server="key-db", locations=["key-local"], encryption_key="key-once", return_state=True)
        assert state.is_failed() and "cannot connect" in str(state.result(raise_on_failure=False))
        assert loads == ["key-once"]
    finally:
        listener.close()
