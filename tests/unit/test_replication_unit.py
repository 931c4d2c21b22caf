"""Pure parts of mysqlops.replication: decisions, chunking, redaction, SQL, reports."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mysqlops import replication as repl
from mysqlops.errors import ConfigError
from mysqlops.model import Flavor, ServerSpec, ServerVersion
from mysqlops.replication import plan as replication_plan
from mysqlops.replication import seed as replication_seed
from mysqlops.replication import user as replication_user
from mysqlops.replication import verify as replication_verify
from mysqlops.sql import ReplicaStatus, dialect_for

MARIADB = ServerVersion(Flavor.MARIADB, 10, 11, 19)
MYSQL = ServerVersion(Flavor.MYSQL, 8, 4, 3)
SOURCE = ("10.0.0.5", 3306)


def status(**kw: object) -> ReplicaStatus:
    base: dict[str, object] = {
        "source_host": "10.0.0.5",
        "source_port": 3306,
        "io_running": "Yes",
        "sql_running": "Yes",
        "seconds_behind": 0,
        "using_gtid": True,
    }
    base.update(kw)
    return ReplicaStatus(**base)  # type: ignore[arg-type]


# -- classify -------------------------------------------------------------------------------


def test_empty_server_is_seeded() -> None:
    assert (
        replication_plan.classify_replica(None, [], SOURCE, rebuild=False)[0]
        is replication_plan.ReplicaAction.SEED
    )


def test_healthy_replica_of_this_primary_is_kept_even_with_data() -> None:
    action, reason = replication_plan.classify_replica(status(), ["shop"], SOURCE, rebuild=False)
    assert action is replication_plan.ReplicaAction.KEEP and "healthy" in reason


def test_rebuild_always_rebuilds() -> None:
    assert (
        replication_plan.classify_replica(status(), ["shop"], SOURCE, rebuild=True)[0]
        is replication_plan.ReplicaAction.REBUILD
    )
    assert (
        replication_plan.classify_replica(None, [], SOURCE, rebuild=True)[0]
        is replication_plan.ReplicaAction.REBUILD
    )


def test_broken_sql_thread_needs_rebuild_and_says_why() -> None:
    broken = status(
        sql_running="No", last_sql_errno=1062, last_sql_error="Duplicate entry '7' for key 'PRIMARY'"
    )
    action, problem = replication_plan.classify_replica(
        broken, ["shop"], SOURCE, rebuild=False, name="replica r1"
    )
    assert action is None
    assert "Duplicate entry '7'" in problem and "rebuild=True" in problem and problem.startswith("replica r1")


@pytest.mark.parametrize(
    "kw",
    [
        {"io_running": "Connecting", "last_io_errno": 1045, "last_io_error": "Access denied"},
        {"io_running": "No", "sql_running": "No"},  # STOP SLAVE by someone: no error recorded
    ],
)
def test_replica_of_this_primary_with_replication_down_is_reconnected(kw: dict[str, object]) -> None:
    assert (
        replication_plan.classify_replica(status(**kw), ["shop"], SOURCE, rebuild=False)[0]
        is replication_plan.ReplicaAction.RECONNECT
    )


def test_replica_of_another_source_with_data_is_refused() -> None:
    action, problem = replication_plan.classify_replica(
        status(source_host="10.9.9.9"), ["a"], SOURCE, rebuild=False
    )
    assert action is None and "10.9.9.9:3306" in problem and "rebuild=True" in problem


def test_non_gtid_replica_of_this_primary_is_not_kept() -> None:
    action, problem = replication_plan.classify_replica(
        status(using_gtid=False), ["a"], SOURCE, rebuild=False
    )
    assert action is None and "without GTID" in problem


def test_non_empty_server_is_refused_with_its_databases() -> None:
    action, problem = replication_plan.classify_replica(None, ["shop", "crm"], SOURCE, rebuild=False)
    assert action is None and "shop, crm" in problem and "rebuild=True" in problem


def test_localhost_spellings_match() -> None:
    local = status(source_host="localhost")
    assert (
        replication_plan.classify_replica(local, [], ("127.0.0.1", 3306), rebuild=False)[0]
        is replication_plan.ReplicaAction.KEEP
    )


# -- versions -------------------------------------------------------------------------------


def test_version_rules() -> None:
    assert replication_plan.version_problem(MARIADB, ServerVersion(Flavor.MARIADB, 11, 4, 2)) is None
    assert replication_plan.version_problem(MARIADB, ServerVersion(Flavor.MARIADB, 10, 11, 2)) is None
    older = replication_plan.version_problem(MARIADB, ServerVersion(Flavor.MARIADB, 10, 6, 9), "replica r")
    assert older and "older series" in older and "10.11" in older
    mixed = replication_plan.version_problem(MARIADB, MYSQL)
    assert mixed and "same flavor" in mixed


# -- chunks ---------------------------------------------------------------------------------


def test_small_tables_are_one_chunk() -> None:
    assert replication_verify.chunk_bounds(1, 100, 100, 1000) == [(None, None)]
    assert replication_verify.chunk_bounds(5, 5, 10_000, 10) == [(None, None)]


def test_chunks_are_open_ended_at_both_ends() -> None:
    bounds = replication_verify.chunk_bounds(1, 1000, 1000, 250)
    assert bounds == [(None, 251), (251, 501), (501, 751), (751, None)]


def test_bad_chunk_size() -> None:
    with pytest.raises(ConfigError):
        replication_verify.chunk_bounds(1, 10, 10, 0)


@given(
    low=st.integers(-(10**12), 10**12),
    span=st.integers(1, 10**6),
    rows=st.integers(0, 10**6),
    chunk=st.integers(1, 10**5),
    probe=st.integers(-(10**13), 10**13),
)
def test_every_key_falls_in_exactly_one_chunk(low: int, span: int, rows: int, chunk: int, probe: int) -> None:
    bounds = replication_verify.chunk_bounds(low, low + span - 1, rows, chunk)
    hits = [(lo, hi) for lo, hi in bounds if (lo is None or probe >= lo) and (hi is None or probe < hi)]
    assert len(hits) == 1
    assert bounds[0][0] is None and bounds[-1][1] is None
    assert len(bounds) <= min(replication_verify.MAX_CHUNKS, max(1, -(-rows // chunk)))


def test_sample_keeps_both_open_ends() -> None:
    rng = random.Random(1)
    picked = replication_verify.pick_sample(50, 5, rng)
    assert picked[0] == 0 and picked[-1] == 49 and len(picked) == 5 and picked == sorted(set(picked))
    assert replication_verify.pick_sample(4, 5, rng) == [0, 1, 2, 3]
    assert replication_verify.pick_sample(10, None, rng) == list(range(10))


# -- secrets --------------------------------------------------------------------------------


def test_redact_hides_plain_and_escaped_forms() -> None:
    secret = "pa'ss\\word"
    text = "near 'MASTER_PASSWORD='pa''ss\\\\word'' and pa'ss\\word"
    out = replication_plan.redact(text, secret)
    assert "pa''ss" not in out and secret not in out and out.count("***") == 2
    assert replication_plan.redact("nothing", "") == "nothing"


def test_settings_repr_has_no_password() -> None:
    settings = repl.ReplicationSettings(password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)


def test_verification_needs_tls_and_ca() -> None:
    assert not repl.ReplicationSettings(tls=True).verifies
    assert repl.ReplicationSettings(tls=True, ca="/ca.pem").verifies
    assert not repl.ReplicationSettings(tls=True, ca="/ca.pem", verify_cert=False).verifies
    assert not repl.ReplicationSettings(tls=False, ca="/ca.pem").verifies


def test_source_address_override() -> None:
    spec = ServerSpec(name="p", host="db1.internal", port=3307)
    assert repl.ReplicationSettings().source_address(spec) == ("db1.internal", 3307)
    assert repl.ReplicationSettings(source_host="10.1.1.1", source_port=3306).source_address(spec) == (
        "10.1.1.1",
        3306,
    )


# -- SQL not (yet) in the dialect -----------------------------------------------------------


def test_start_until_per_flavor() -> None:
    assert (
        dialect_for(MARIADB).replica.start_until("0-1-42") == "START SLAVE UNTIL master_gtid_pos = '0-1-42'"
    )
    uuid = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-42"
    assert (
        dialect_for(MYSQL).replica.start_until(uuid)
        == f"START REPLICA SQL_THREAD UNTIL SQL_AFTER_GTIDS = '{uuid}'"
    )
    with pytest.raises(ConfigError):
        dialect_for(MARIADB).replica.start_until("0-1-42'; DROP TABLE x; --")


def test_freeze_and_empty_position() -> None:
    assert dialect_for(MARIADB).replica.freeze() == "STOP SLAVE"
    assert dialect_for(MYSQL).replica.freeze() == "STOP REPLICA SQL_THREAD"
    assert dialect_for(MARIADB).replica.empty_position(reset_binlog=True) == [
        "RESET MASTER",
        "SET GLOBAL gtid_slave_pos = ''",
    ]
    assert dialect_for(MYSQL).replica.empty_position(reset_binlog=True) == ["RESET BINARY LOGS AND GTIDS"]
    assert dialect_for(MYSQL).replica.empty_position(reset_binlog=False) == []


def test_grants_replication() -> None:
    assert replication_user.grants_replication(
        ["GRANT REPLICATION SLAVE ON *.* TO `r`@`%` IDENTIFIED BY PASSWORD '*AB' REQUIRE SSL"]
    )
    assert replication_user.grants_replication(["GRANT ALL PRIVILEGES ON *.* TO 'r'@'%'"])
    assert not replication_user.grants_replication(
        ["GRANT USAGE ON *.* TO `r`@`%`", "GRANT SELECT ON `db`.* TO `r`@`%`"]
    )
    assert not replication_user.grants_replication(["GRANT REPLICATION SLAVE ADMIN ON *.* TO `r`@`%`"])


# -- reports --------------------------------------------------------------------------------


def _plan() -> repl.ProvisionPlan:
    primary = replication_plan.ServerFacts(
        ServerSpec(name="p", password="rootpw"), MARIADB, {"server_id": "1"}
    )
    replica = replication_plan.ServerFacts(
        ServerSpec(name="r", port=3307, password="rootpw"), MARIADB, {"server_id": "2"}
    )
    return repl.ProvisionPlan(
        primary, (repl.ReplicaPlan(replica, replication_plan.ReplicaAction.SEED, "empty"),), "127.0.0.1", 3306
    )


def test_provision_rows_are_json_safe_and_secret_free() -> None:
    comparison = repl.Comparison("r", "0-1-9", chunks=3, rows=10)
    rows = repl.provision_rows(
        _plan(), "created", [repl.Attached("r", "seeded", "0-1-5")], {"r": "0-1-9"}, {"r": True}, [comparison]
    )
    text = json.dumps(rows)
    assert "rootpw" not in text
    assert rows[0]["role"] == "primary" and rows[0]["gtid"] == "0-1-9"
    assert rows[1]["action"] == "seeded" and rows[1]["read_only"] == "turned on"
    assert "3 table chunk(s), 10 rows equal" in rows[1]["checks"]


def test_differences_raise_with_table_names() -> None:
    bad = repl.Comparison("r", "0-1-9", differences=["shop.t [id 1..5): rows 3 vs 4"])
    repl.raise_on_differences([repl.Comparison("ok", "0-1-9")], "p")
    with pytest.raises(Exception, match=r"shop\.t \[id 1\.\.5\): rows 3 vs 4.*rebuild=True"):
        repl.raise_on_differences([bad], "p")


def test_health_failures_name_the_replica_and_the_error() -> None:
    good = repl.ReplicaHealth("r1", "h:1")
    bad = repl.ReplicaHealth("r2", "h:2", problems=["SQL thread stopped: Duplicate entry '5' (errno 1062)"])
    drift = repl.ReplicaHealth("r3", "h:3", drift=["drift: shop.t: rows 1 vs 2"])
    assert repl.health_failures([good, bad, drift]) == [
        "r2 (h:2): SQL thread stopped: Duplicate entry '5' (errno 1062)",
        "r3 (h:3): drift: shop.t: rows 1 vs 2",
    ]
    assert bad.row()["status"] == "FAILED" and good.row()["status"] == "ok"
    json.dumps([bad.row()])


def test_fatal_ignores_a_connecting_io_thread() -> None:
    assert (
        replication_seed._fatal(status(io_running="Connecting", last_io_errno=2003, last_io_error="refused"))
        == []
    )
    assert replication_seed._fatal(status(sql_running="No", last_sql_errno=1062, last_sql_error="dup"))


def test_a_replica_that_could_not_be_compared_is_not_called_equal() -> None:
    c = repl.Comparison("r", "0-1-9", error="SQL thread stopped: Duplicate entry '5' (errno 1062)")
    assert not c.ok and c.summary().startswith("not compared: SQL thread stopped")
    with pytest.raises(Exception, match=r"r at 0-1-9: not compared: SQL thread stopped"):
        repl.raise_on_differences([c], "p")
