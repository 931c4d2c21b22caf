"""Metric samples and their configuration (the Pushgateway itself: tests/flows/test_metrics_flows.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mysqlops.adapters.prometheus import Series, registry_for
from mysqlops.errors import ConfigError
from mysqlops.metrics import (
    HELP,
    MetricsTarget,
    Sample,
    grouped,
    replication_samples,
    restore_test_samples,
    send,
)
from mysqlops.replication.health import ReplicaHealth
from tests.unit.test_report import cert


def test_replication_lag_and_restore_results_become_samples() -> None:
    ok = ReplicaHealth(replica="r1", endpoint="h:3306", io_running="Yes", sql_running="Yes", seconds_behind=7)
    unknown = ReplicaHealth(
        replica="r2", endpoint="h:3307", io_running="No", sql_running="Yes", problems=["IO thread stopped"]
    )
    samples = replication_samples([ok, unknown])
    assert [(s.name, s.server, s.value) for s in samples] == [
        ("replication_ok", "r1", 1.0),
        ("replication_lag_seconds", "r1", 7.0),
        ("replication_ok", "r2", 0.0),  # no lag figure when the server does not know it
    ]
    at = datetime(2026, 3, 1, tzinfo=UTC)
    certs = [cert("db1", "b1", True, at, {"total": 5.3}, "s3"), cert("db1", "b1", False, at, {}, "local")]
    samples = restore_test_samples(certs)
    assert {(s.location, s.name): s.value for s in samples} == {
        ("s3", "restore_test_passed"): 1.0,
        ("s3", "restore_test_timestamp_seconds"): at.timestamp(),
        ("s3", "restore_test_duration_seconds"): 5.3,
        ("local", "restore_test_passed"): 0.0,
        ("local", "restore_test_timestamp_seconds"): at.timestamp(),
    }
    assert set(grouped(samples)) == {("restore-test", "db1", "s3"), ("restore-test", "db1", "local")}
    text = registry_for(
        Series("mysqlops_" + s.name, HELP[s.name], s.all_labels, s.value) for s in samples
    ).collect()
    assert {m.name for m in text} == {
        "mysqlops_restore_test_passed",
        "mysqlops_restore_test_timestamp_seconds",
        "mysqlops_restore_test_duration_seconds",
    }


def test_bad_metrics_configuration_is_refused_early() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'backup_size'"):
        Sample(event="backup", name="backup_size", value=1.0)
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        MetricsTarget(pushgateway_url="pushgateway:9091")
    with pytest.raises(ConfigError, match="must not hold credentials"):
        MetricsTarget(pushgateway_url="http://user:secret@pushgateway:9091")
    assert not MetricsTarget().enabled


def test_unreachable_pushgateway_and_unwritable_dir_are_problems_not_failures(tmp_path) -> None:
    sample = Sample(event="backup", name="backup_last_ok", value=1.0, server="db1", location="s3")
    target = MetricsTarget(
        pushgateway_url="http://127.0.0.1:9", textfile_dir=str(tmp_path / "missing"), timeout=2
    )
    problems = send([sample], target)
    assert len(problems) == 2
    assert "push to the Pushgateway http://127.0.0.1:9 failed (backup, db1)" in problems[0]
    assert "cannot write metrics file" in problems[1]


def test_setup_reads_the_metrics_table() -> None:
    from deployments import setup

    base = {
        "servers": {"db1": {"host": "db1", "user": "u", "password_env": "X"}},
        "locations": {"local": {"url": "file:///var/backups"}},
    }
    env = setup.parse({**base, "metrics": {"pushgateway_url": "http://pg:9091", "job": "mysqlops"}})
    assert env.metrics == {"pushgateway_url": "http://pg:9091", "job": "mysqlops"}
    assert setup.parse(base).metrics is None
    with pytest.raises(ConfigError, match=r"\[metrics\]: unknown key\(s\) push_url"):
        setup.parse({**base, "metrics": {"push_url": "http://pg:9091"}})
    with pytest.raises(ConfigError, match="must start with http"):
        setup.parse({**base, "metrics": {"pushgateway_url": "pg:9091"}})


def test_grafana_dashboard_queries_only_metrics_mysqlops_sends() -> None:
    import json
    import pathlib
    import re

    from mysqlops.metrics import HELP, PREFIX

    path = pathlib.Path(__file__).resolve().parents[2] / "deployments" / "grafana" / "dashboard.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bmysqlops_\w+", e)}
    assert used and used <= {PREFIX + name for name in HELP}, used - {PREFIX + name for name in HELP}
    assert dashboard["timezone"] == "utc"
