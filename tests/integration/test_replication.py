"""Replica provisioning, proof and health against real sandbox servers."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace

import pymysql
import pytest

from mysqlops import replication as repl
from mysqlops.adapters import sandbox
from mysqlops.adapters.mysql import connect, query, scalar, session
from mysqlops.errors import ConnectionProblem, PreflightFailed
from mysqlops.model import Location, ServerSpec, TLSOptions
from mysqlops.sampledata import AWKWARD_DB_SUFFIX, create_awkward_database, create_bulk_table
from mysqlops.streams.compression import codec
from mysqlops.tablesum import table_checksums
from tests.jobs import job

pytestmark = pytest.mark.integration

PASSWORD = "Repl'pa\\ss-" + "x7Q"  # quotes and backslashes must survive; never in messages
SETTINGS = repl.ReplicationSettings(user="mysqlops_repl", password=PASSWORD)
DATABASES = ("shop", "shop" + AWKWARD_DB_SUFFIX, "bulk")


@pytest.fixture(scope="module")
def trio(sandbox_root: str) -> Iterator[list[sandbox.SandboxServer]]:
    servers = sandbox.start_cluster(os.path.join(sandbox_root, "repl"), replicas=2, first_server_id=11)
    with session(servers[0].spec()) as conn:
        create_awkward_database(conn, DATABASES[0])
        create_awkward_database(conn, DATABASES[1])
        create_bulk_table(conn, "bulk", "rows", 3000, payload_bytes=64)
        conn.query("ANALYZE TABLE bulk.`rows`")
    yield servers
    sandbox.stop_servers(servers)


def _wait_sql_stopped(spec: ServerSpec, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session(spec) as conn:
            row = query(conn, "SHOW SLAVE STATUS")[0]
        if row["Slave_SQL_Running"] != "Yes":
            return
        time.sleep(0.1)
    raise AssertionError("the replica's SQL thread kept running")


def _same_data(primary: ServerSpec, replica: ServerSpec) -> None:
    repl.catch_up(primary, replica, timeout=30)
    with session(primary) as p, session(replica) as r:
        for database in DATABASES:
            assert table_checksums(p, database) == table_checksums(r, database), database


def test_provision_two_replicas_streams_awkward_data_and_proves_it(trio: list[sandbox.SandboxServer]) -> None:
    primary, r1, r2 = (s.spec() for s in trio)
    logs: list[str] = []
    result = repl.provision(primary, [r1, r2], SETTINGS, catchup_timeout=60, chunk_rows=500, log=logs.append)

    assert result.account == "created"
    assert [a.action for a in result.attached] == ["seeded", "seeded"]
    assert all(set(a.databases) == set(DATABASES) and a.gtid for a in result.attached)
    for comparison in result.comparisons:
        assert comparison.ok, comparison.differences
        assert comparison.chunks > 10  # bulk.rows is split into primary-key ranges
        assert comparison.rows >= 3000
    assert all(result.protected.values())
    rows = result.rows()
    assert [r["role"] for r in rows] == ["primary", "replica", "replica"]
    json.dumps(rows)
    assert not any(PASSWORD in line for line in logs) and PASSWORD not in repr(result)

    # rows written afterwards replicate, byte for byte
    with session(primary) as conn:
        conn.query(
            "INSERT INTO shop.customers (name, created, profile) VALUES ('after 😀', NOW(6), '{\"a\": 1}')"
        )
        conn.query("UPDATE shop.blobs SET small = UNHEX('00FF00') WHERE id = 2")
        conn.query("CREATE TABLE `shop spaced ü`.later (id BIGINT PRIMARY KEY, v VARBINARY(8))")
        conn.query("INSERT INTO `shop spaced ü`.later VALUES (1, 0x00), (2, NULL)")
        conn.query("DELETE FROM bulk.`rows` WHERE id % 7 = 0")
    for replica in (r1, r2):
        _same_data(primary, replica)
        with session(replica) as conn:
            assert scalar(conn, "SELECT @@GLOBAL.read_only") == 1
            assert scalar(conn, "SELECT name FROM shop.customers ORDER BY id DESC LIMIT 1") == "after 😀"
            assert scalar(conn, "SELECT COUNT(*) FROM shop.audit") == 1  # row events: no second trigger run

    health = repl.check_health([r1, r2], primary=primary, sample_checksum=True, chunk_rows=500)
    assert repl.health_failures(health) == []
    assert all(h.io_running == "Yes" and h.read_only and h.executed_gtid == h.primary_gtid for h in health)
    assert "equal" in health[0].checked


def test_rerun_on_healthy_replicas_changes_nothing(trio: list[sandbox.SandboxServer]) -> None:
    primary, r1, r2 = (s.spec() for s in trio)
    repl.provision(primary, [r1, r2], SETTINGS, catchup_timeout=60)  # no-op when already done

    def positions() -> list[str]:
        out = []
        for spec in (primary, r1, r2):
            with session(spec) as conn:
                out.append(str(scalar(conn, "SELECT @@GLOBAL.gtid_binlog_pos")))
        return out

    before = positions()
    result = repl.provision(primary, [r1, r2], SETTINGS, catchup_timeout=60)
    assert result.account == "unchanged"
    assert [a.action for a in result.attached] == ["kept", "kept"]
    assert result.protected == {r1.name: False, r2.name: False}
    assert all(c.ok for c in result.comparisons)
    assert positions() == before  # nothing was written anywhere


def test_drift_and_broken_replica_fail_health_then_rebuild_repairs(trio: list[sandbox.SandboxServer]) -> None:
    primary, r1, r2 = (s.spec() for s in trio)
    repl.provision(primary, [r1, r2], SETTINGS, catchup_timeout=60)

    # silent drift: a change on the replica that replication does not see
    with session(r2) as conn:
        conn.query("SET SESSION sql_log_bin = 0")
        conn.query("UPDATE bulk.`rows` SET c = 'drift' WHERE id = 2500")
    health = repl.check_health(
        [r1, r2], primary=primary, sample_checksum=True, sample_chunks=100, chunk_rows=500
    )
    assert health[0].ok
    assert not health[1].ok and any("bulk.rows [id 2" in d for d in health[1].drift), health[1].drift

    # a conflicting row written on the replica, then the same key on the primary (unlogged: with
    # gtid_strict_mode a binlogged replica write would stop it with error 1950 before the insert)
    with session(r2) as conn:
        conn.query("SET SESSION sql_log_bin = 0")
        conn.query("INSERT INTO shop.audit (id, customer_id, action) VALUES (1000, 0, 'replica')")
    with session(primary) as conn:
        conn.query("INSERT INTO shop.audit (id, customer_id, action) VALUES (1000, 1, 'primary')")
    _wait_sql_stopped(r2)
    health = repl.check_health([r1, r2], max_lag_seconds=300)
    failures = repl.health_failures(health)
    assert len(failures) == 1 and failures[0].startswith(r2.name)
    assert "SQL thread stopped" in failures[0] and "shop.audit; Duplicate entry '<value>'" in failures[0], (
        failures
    )
    assert "'1000'" not in failures[0] and "'1000'" not in health[1].last_sql_error  # the row's key stays out
    assert health[1].last_sql_error and health[1].sql_running == "No"

    with pytest.raises(PreflightFailed) as info:
        repl.provision(primary, [r2], SETTINGS)
    assert "rebuild=True" in str(info.value) and "Duplicate entry" in str(info.value)

    result = repl.provision(primary, [r2], SETTINGS, rebuild=True, catchup_timeout=60, chunk_rows=500)
    assert [a.action for a in result.attached] == ["rebuilt"]
    assert set(result.attached[0].dropped) == set(DATABASES)
    assert result.comparisons[0].ok
    assert repl.health_failures(repl.check_health([r1, r2], primary=primary, sample_checksum=True)) == []
    with session(r2) as conn:
        assert scalar(conn, "SELECT action FROM shop.audit WHERE id = 1000") == "primary"
        assert scalar(conn, "SELECT c FROM bulk.`rows` WHERE id = 2500") != "drift"


def _certificates(directory: str) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mysqlops test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: os.path.join(directory, f"{name}.pem") for name in ("ca", "cert", "key")}
    with open(paths["ca"], "wb") as fh:
        fh.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return paths


def test_replication_over_tls_with_verified_certificate(sandbox_root: str) -> None:
    directory = os.path.join(sandbox_root, "tls")
    os.makedirs(directory, mode=0o700)
    pem = _certificates(directory)
    tls_opts = [f"--ssl-ca={pem['ca']}", f"--ssl-cert={pem['cert']}", f"--ssl-key={pem['key']}"]
    servers: list[sandbox.SandboxServer] = []
    try:
        servers.append(sandbox.start_server(directory, "p", server_id=31, extra_options=tls_opts))
        servers.append(sandbox.start_server(directory, "r", server_id=32))
        primary = replace(servers[0].spec(), tls=TLSOptions(ca=pem["ca"]))  # the dump goes over TLS too
        replica = servers[1].spec()
        with session(primary) as conn:
            create_awkward_database(conn, "shop")
        settings = replace(SETTINGS, tls=True, ca=pem["ca"], verify_cert=True)

        result = repl.provision(primary, [replica], settings, catchup_timeout=60)
        assert [a.action for a in result.attached] == ["seeded"] and result.comparisons[0].ok
        with session(replica) as conn:
            row = query(conn, "SHOW SLAVE STATUS")[0]
        assert row["Master_SSL_Allowed"] == "Yes" and row["Master_SSL_Verify_Server_Cert"] == "Yes"

        # the account requires TLS: a plain login is refused, a TLS one works
        with pytest.raises(pymysql.err.OperationalError) as refused:
            pymysql.connect(
                host="127.0.0.1",
                port=servers[0].port,
                user=settings.user,
                password=PASSWORD,
                ssl_disabled=True,
            )
        assert refused.value.args[0] == 1045

        def tls_session(spec: ServerSpec) -> dict[str, str]:
            with session(spec) as conn:
                rows = query(conn, "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')")
            return {str(r["Variable_name"]): str(r["Value"] or "") for r in rows}

        # the VALUE column: a negotiated cipher and protocol (the name column is never empty)
        status = tls_session(replace(primary, user=settings.user, password=PASSWORD))
        assert status["Ssl_cipher"] and status["Ssl_version"].startswith("TLSv1."), status
        # control: a session without TLS has an empty cipher, so the check above can fail
        # (PyMySQL negotiates TLS whenever the server offers it: turn it off explicitly)
        plain = pymysql.connect(
            host="127.0.0.1",
            port=servers[0].port,
            user="root",
            password=servers[0].root_password,
            ssl_disabled=True,
        )
        try:
            with plain.cursor() as cur:
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                assert cur.fetchone() == ("Ssl_cipher", "")
        finally:
            plain.close()
        # the replica's own connection to the primary is encrypted too
        with session(replica) as conn:
            assert query(conn, "SHOW SLAVE STATUS")[0]["Master_SSL_CA_File"] == pem["ca"]

        # a CA that did not sign the server's certificate is refused, by PyMySQL and by the client tools
        other_dir = os.path.join(directory, "other")
        os.makedirs(other_dir, mode=0o700)
        wrong = replace(
            servers[0].spec(), tls=TLSOptions(ca=_certificates(other_dir)["ca"], verify_cert=True)
        )
        with pytest.raises(ConnectionProblem, match=r"certificate verify failed|CERTIFICATE_VERIFY_FAILED"):
            connect(wrong)
        from mysqlops import backup as bk
        from mysqlops.errors import PreflightFailed, ProcessError

        with pytest.raises((PreflightFailed, ProcessError)):
            bk.run_backup(*job(wrong, [Location("l", f"file://{directory}/b")], codec("zstd")))
        bk.run_backup(
            *job(primary, [Location("l", f"file://{directory}/b")], codec("zstd"))
        )  # the right CA works

        # a new password: the account is updated, the replica re-pointed without reseeding
        rotated = replace(settings, password="rotated-" + PASSWORD)
        result = repl.provision(primary, [replica], rotated, catchup_timeout=60)
        assert result.account == "updated" and [a.action for a in result.attached] == ["re-pointed"]
        with session(primary) as conn:
            conn.query("INSERT INTO shop.customers (name, created) VALUES ('over tls', NOW())")
        repl.catch_up(primary, replica, timeout=30)
        with session(replica) as conn:
            assert scalar(conn, "SELECT COUNT(*) FROM shop.customers WHERE name = 'over tls'") == 1
        health = repl.check_health([replica], primary=primary)
        assert repl.health_failures(health) == [] and health[0].executed_gtid == health[0].primary_gtid
    finally:
        sandbox.stop_servers(servers)


def test_primary_without_binary_log_fails_preflight_with_the_line_to_add(
    sandbox_root: str, fresh_server: sandbox.SandboxServer
) -> None:
    server = sandbox.start_server(sandbox_root, "nobinlog", server_id=41, extra_options=["--skip-log-bin"])
    try:
        with pytest.raises(PreflightFailed) as info:
            repl.provision(server.spec(), [fresh_server.spec()], SETTINGS)
        problems = info.value.problems
        assert any("binary log is off" in p and "add to [mysqld]: log_bin = mysql-bin" in p for p in problems)
        assert PASSWORD not in str(info.value)
        # nothing changed on either end
        with session(server.spec()) as conn:
            assert scalar(conn, "SELECT COUNT(*) FROM mysql.user WHERE User = %s", [SETTINGS.user]) == 0
        with session(fresh_server.spec()) as conn:
            assert query(conn, "SHOW SLAVE STATUS") == []
    finally:
        sandbox.stop_server(server)


@pytest.mark.integration
def test_health_without_slave_monitor_names_the_monitor_account(
    cluster: list[sandbox.SandboxServer],
) -> None:
    """replica-health with an account that may not read the replica status: a problem naming
    the fix (the monitor account), not a raw OperationalError 1227; the account that
    ``mysqlops users --role monitor`` creates may read it."""
    from mysqlops.users import Account, create_users

    replica = cluster[1]
    with session(replica.spec()) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin=0")
        cur.execute("CREATE USER IF NOT EXISTS 'weakmon'@'127.0.0.1' IDENTIFIED BY 'weak-mon-pw-1'")
        cur.execute("GRANT SELECT ON *.* TO 'weakmon'@'127.0.0.1'")
    weak = replica.spec(name="weak").with_credentials("weakmon", "weak-mon-pw-1")
    [health] = repl.check_health([weak])
    assert not health.ok
    assert "error 1227" in health.problems[0] and "--role monitor" in health.problems[0]
    assert "weak-mon-pw-1" not in " ".join(health.problems)

    create_users(
        replica.spec(),
        [Account("monitor", "mysqlops_monitor", "127.0.0.1")],
        {"monitor": "mon-pw-12345"},
        dry_run=False,
    )
    monitor = replica.spec(name="mon").with_credentials("mysqlops_monitor", "mon-pw-12345")
    [health] = repl.check_health([monitor])
    # replicating or not (the session's cluster), the status was read
    assert not any("1227" in p or "may not read" in p for p in health.problems), health.problems
