"""Servers as data: the per-server deployments setup derives from the environment file (pure:
the parsing and the wanted specs; the API side runs in tests/e2e/test_servers_as_data.py)."""

from __future__ import annotations

import tomllib

import pytest

from deployments import servers, setup
from mysqlops.errors import ConfigError

BASE = """
[locations.local]
url = "file:///var/backups/mysql"
[locations.s3]
url = "s3://b/p"
"""


def wanted(text: str) -> dict[tuple[str, str], dict[str, object]]:
    env = setup.parse(tomllib.loads(BASE + text))
    return {
        (w.flow, w.name): w.spec for w in servers.wanted(env.deployments, env.work_pool, setup.queue_name)
    }


def test_a_new_server_is_one_table() -> None:
    one = wanted('[servers.db1]\nhost = "h"\n')
    two = wanted(
        '[servers.db1]\nhost = "h"\n[servers.db2]\nhost = "h2"\nschedules = { backup = "0 2 * * *" }\n'
    )
    assert set(one) == {(f, "db1") for f in servers.DEFAULT_FLOWS}
    assert set(two) - set(one) == {(f, "db2") for f in servers.DEFAULT_FLOWS}
    assert all(two[k] == one[k] for k in one)  # the first server's deployments do not change
    assert two[("backup", "db2")]["schedules"] == [{"cron": "0 2 * * *", "timezone": "UTC"}]
    assert two[("backup", "db2")]["work_queue"] == "server-db2"
    assert two[("archive-binlogs", "db2")]["work_queue"] == "default"
    assert two[("backup", "db2")]["parameters"] == {"server": "db2", "locations": ["local", "s3"]}
    assert "mysqlops-setup" in two[("backup", "db2")]["tags"]


def test_replica_flows_parameters_and_unscheduled() -> None:
    got = wanted(
        """
[deployments]
timezone = "Europe/Berlin"
schedules = { check = "" }
parameters = { backup = { parallel = 2 } }
[servers.db1]
host = "h"
parameters = { backup = { compression = "gzip" } }
retention_policy = "gold"
[servers.db1r]
host = "h"
expect_backups = false
replica_of = "db1"
"""
    )
    assert {k for k in got if k[1] == "db1r"} == {("replica-health", "db1r")}
    assert got[("replica-health", "db1r")]["parameters"] == {"replicas": ["db1r"], "primary": "db1"}
    assert got[("check", "db1")]["schedules"] == []
    assert got[("backup", "db1")]["parameters"] == {
        "server": "db1",
        "locations": ["local", "s3"],
        "parallel": 2,
        "compression": "gzip",
    }
    assert got[("apply-retention", "db1")]["parameters"]["policy"] == "gold"  # a RetentionPolicyBlock name


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('flows = ["bakup"]', "unknown flow(s) bakup"),
        ('schedules = { bakup = "" }', "unknown flow(s) bakup"),
        ('locations = ["nas"]', "location(s) nas have no [locations.<name>] table"),
        ('replica_of = "nope"', "no [servers.nope] table"),
    ],
)
def test_bad_server_tables_name_the_fix(table: str, message: str) -> None:
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        wanted(f'[servers.db1]\nhost = "h"\n{table}\n')


def test_bad_timezone() -> None:
    with pytest.raises(ConfigError, match="IANA"):
        wanted('[deployments]\ntimezone = "Mars/Olympus"\n[servers.db1]\nhost = "h"\n')


def test_container_pools_get_image_and_directory() -> None:
    got = wanted(
        '[deployments]\ndirectory = "/opt/mysqlops"\njob_variables = { image = "registry/mysqlops:1.2" }\n'
        '[servers.db1]\nhost = "h"\n'
    )
    assert {spec["directory"] for spec in got.values()} == {"/opt/mysqlops"}
    assert all(spec["job_variables"] == {"image": "registry/mysqlops:1.2"} for spec in got.values())
    with pytest.raises(ConfigError, match="absolute path"):
        wanted('[deployments]\ndirectory = "opt"\n[servers.db1]\nhost = "h"\n')


def test_each_environment_file_tags_its_deployments_with_its_own_name() -> None:
    """Two environment files on one Prefect server: each setup deletes only what it made."""
    doc = tomllib.loads(BASE + '[servers.db1]\nhost = "h"\n')
    by_file = setup.parse(doc, "staging").deployments
    named = setup.parse({**doc, "deployments": {"environment": "prod"}}, "environment").deployments
    tags = [servers.wanted(s, "mysqlops", setup.queue_name)[0].spec["tags"] for s in (by_file, named)]
    assert servers.setup_tag("staging") in tags[0] and servers.setup_tag("prod") in tags[1]
    assert all(servers.MANAGED_TAG in t for t in tags)
    with pytest.raises(ConfigError, match="environment 'a b'"):
        setup.parse({**doc, "deployments": {"environment": "a b"}})


def test_prefect_yaml_forecasts_with_the_policy_block_setup_saves() -> None:
    """One source of the retention policy: the environment file's [deployments]
    retention_policy, saved by setup as a block that prefect.yaml's report names."""
    import yaml

    doc = yaml.safe_load((servers.PROJECT_DIR / "prefect.yaml").read_text())
    report = next(d for d in doc["deployments"] if d["entrypoint"] == "flows/report.py:backup_report")
    assert report["parameters"]["policy"] == setup.RETENTION_BLOCK
    assert doc["definitions"]["parameters"]["retention_policy"] == setup.RETENTION_BLOCK
    env = setup.parse(tomllib.loads(BASE + '[servers.db1]\nhost = "h"\n'))
    assert env.deployments.retention_policy == servers.DEFAULT_POLICY
