"""The accounts ``python -m mysqlops users`` creates suffice for each role's job, on each build:
logged in as each account, a real server of the build does the work with the build's own
clients. backup: privilege pre-flight, a dump with a view over a stored function, triggers,
routines and events, the binlog position, a raw binlog copy (and a CLONE copy on MySQL).
restore: the restore pre-flight passes and the dump loads with its definers kept (MySQL with
binary logging: ERROR 1419 and 1227 are what the account and setting `users` prints avoid;
without them the pre-flight names the missing grant / setting, and the load really fails).
replication: a replica logs in with the replication account. monitor: replica health and a
checksum comparison as the monitor account."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mysqlops.adapters import builds, process, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.localfs import private_dir
from mysqlops.errors import PreflightFailed, ProcessError
from mysqlops.model import Flavor, Location, ObjectCounts, ServerSpec
from mysqlops.replication.health import check_health
from mysqlops.restore.logical import load_file
from mysqlops.sql.dialect import dialect_for
from mysqlops.sql.restore_grants import missing_restore_privileges
from mysqlops.tablesum import table_checksums
from mysqlops.tools.binlog import fetch_argv
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv
from mysqlops.users import Account, create_users
from tests.jobs import job

pytestmark = [pytest.mark.integration, pytest.mark.flavors]

PASSWORDS = {
    "backup": "Bk-pw-17c",
    "restore": "Rs-pw-17c",
    "monitor": "Mn-pw-17c",
    "replication": "Rp-pw-17c",
}
ACCOUNTS = [
    Account("backup", "mysqlops_backup"),
    Account("restore", "mysqlops_restore"),
    Account("monitor", "mysqlops_monitor"),
    Account("replication", "mysqlops_repl"),
]
SEED = [
    "CREATE DATABASE app",
    "CREATE TABLE app.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
    "CREATE TABLE app.log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(50)) ENGINE=InnoDB",
    "CREATE DEFINER = root@localhost TRIGGER app.t_ai AFTER INSERT ON app.t FOR EACH ROW INSERT INTO app.log (msg) VALUES ('ins')",
    "CREATE DEFINER = root@localhost FUNCTION app.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    "CREATE DEFINER = root@localhost PROCEDURE app.p() SELECT COUNT(*) FROM app.t",
    "CREATE DEFINER = root@localhost EVENT app.purge ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM app.log",
    "CREATE DEFINER = root@localhost VIEW app.doubled AS SELECT id, app.twice(v) AS w FROM app.t",
    "INSERT INTO app.t VALUES (1, 10), (2, 20), (3, 30)",
]


@dataclass
class Servers:
    build: builds.ServerBuild
    primary: sandbox.SandboxServer
    replica: sandbox.SandboxServer
    target: sandbox.SandboxServer


def _as(server: sandbox.SandboxServer, role: str) -> ServerSpec:
    user = next(a.user for a in ACCOUNTS if a.role == role)
    return ServerSpec(
        name=server.name, host="127.0.0.1", port=server.port, user=user, password=PASSWORDS[role]
    )


def _sql(spec: ServerSpec, *statements: str) -> None:
    with db.session(spec) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def _grants(spec: ServerSpec) -> list[str]:
    with db.session(spec) as conn:
        return [str(next(iter(r.values()))) for r in db.query(conn, "SHOW GRANTS FOR CURRENT_USER()")]


def _definers(spec: ServerSpec) -> dict[str, str]:
    with db.session(spec) as conn:
        rows = db.query(
            conn,
            "SELECT CONCAT('routine ', ROUTINE_NAME) AS n, DEFINER AS d FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = 'app' UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME), DEFINER "
            "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app' UNION ALL "
            "SELECT CONCAT('event ', EVENT_NAME), DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'app' "
            "UNION ALL SELECT CONCAT('view ', TABLE_NAME), DEFINER FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA = 'app'",
        )
    return {str(r["n"]): str(r["d"]) for r in rows}


@pytest.fixture
def servers(sandbox_root: str, server_build: builds.ServerBuild) -> Iterator[Servers]:
    started: list[sandbox.SandboxServer] = []
    try:
        for i, name in enumerate(("rolep", "roler", "rolet")):
            started.append(
                sandbox.start_server(
                    sandbox_root, f"{name}-{server_build.name}", server_id=7100 + i, build=server_build
                )
            )
        for server in started:
            create_users(server.spec(), ACCOUNTS, PASSWORDS, dry_run=False)
        yield Servers(server_build, *started)
    finally:
        sandbox.stop_servers(started)


def test_role_accounts_suffice(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> None:
    build, primary, replica, target = servers.build, servers.primary, servers.replica, servers.target
    work = str(tmp_path_factory.mktemp("roles"))
    with db.session(primary.spec()) as conn:
        version = db.server_version(conn)
    dialect = dialect_for(version)
    mysql = version.flavor is Flavor.MYSQL

    # replication: the replica logs in with the replication account, from the primary's first GTID
    _sql(
        replica.spec(),
        dialect.replica.stop_replica(),
        dialect.replica.change_source(
            "127.0.0.1", primary.port, "mysqlops_repl", PASSWORDS["replication"], tls=False
        ),
        dialect.replica.start_replica(),
    )
    _sql(primary.spec(), *SEED)  # root@localhost is the definer, as in most real dumps
    source_sums = {"app": _checksums(primary.spec())}
    source_definers = _definers(primary.spec())
    assert set(source_definers.values()) == {"root@localhost"}, source_definers

    # backup: pre-flight finds nothing missing; the dump holds every object kind; binlog position and copy
    backup = _as(primary, "backup")
    assert dialect.accounts.missing_backup_privileges(_grants(backup), ["app"]) == []
    dump = process.run(
        dump_argv(
            build.client_argv("dump"),
            "app",
            DumpOptions(position_options=dialect.dump.dump_position_options()),
        ),
        credentials=client_option_file(backup),
        name="dump as the backup account",
    ).stdout
    for kind in (b"CREATE TABLE `t`", b"TRIGGER", b"FUNCTION `twice`", b"PROCEDURE `p`", b"EVENT", b"VIEW"):
        assert kind in dump, kind
    with db.session(backup) as conn:
        status = db.query(conn, dialect.binlog.binlog_status_query())
        first = str(next(iter(db.query(conn, "SHOW BINARY LOGS")[0].values())))
    assert status and status[0]
    process.run(
        (*build.client_argv("binlog"), *fetch_argv("x", first, work)[1:]),
        credentials=client_option_file(backup),
        name="binlog copy as the backup account",
    )
    assert os.path.getsize(os.path.join(work, first)) > 4
    if mysql:  # clone: CLONE LOCAL as the backup account once the plugin is installed
        _sql(primary.spec(), "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
        from mysqlops.backup import run_physical_backup
        from mysqlops.streams.compression import codec

        local = Location("local", f"file://{work}/backups")
        with private_dir("/tmp", "myops-rolecl-") as staging:
            made = run_physical_backup(*job(backup, [local], codec("zstd"), staging_dir=staging))
        assert made.manifest.extra["physical_tool"] == "clone" and all(r.ok for r in made.locations)
    elif build.source == "system":  # mariabackup of the system's own build (the flows run it from PATH)
        from mysqlops.backup import run_physical_backup
        from mysqlops.streams.compression import codec

        local = Location("local", f"file://{work}/backups")
        # without PROCESS mariabackup refuses, printing SHOW GRANTS: the password hash never reaches the error
        _sql(primary.spec(), "REVOKE PROCESS ON *.* FROM 'mysqlops_backup'@'%'")
        with db.session(primary.spec()) as conn:
            hashed = str(
                db.scalar(conn, "SELECT authentication_string FROM mysql.user WHERE user = 'mysqlops_backup'")
            )
        with private_dir("/tmp", "myops-rolemb-") as staging, pytest.raises(ProcessError) as refused:
            run_physical_backup(*job(backup, [local], codec("zstd"), staging_dir=staging))
        assert "PROCESS" in str(refused.value) and len(hashed) > 10 and hashed not in str(refused.value)
        _sql(primary.spec(), "GRANT PROCESS ON *.* TO 'mysqlops_backup'@'%'")
        with private_dir("/tmp", "myops-rolemb-") as staging:
            made = run_physical_backup(*job(backup, [local], codec("zstd"), staging_dir=staging))
        assert made.manifest.lsn_to and all(r.ok for r in made.locations)

    # restore: the pre-flight passes for the restore account and the dump loads, definers kept
    restore = _as(target, "restore")
    counts = ObjectCounts(tables=2, views=1, routines=2, triggers=1, events=1)
    flags = _flags(target.spec())
    assert flags == (True, True), "users prints log_bin_trust_function_creators = ON for the restore role"
    assert (
        missing_restore_privileges(
            version, _grants(restore), counts, log_bin=True, trust_function_creators=True
        )
        == []
    )
    path = os.path.join(work, "app.sql")
    with open(path, "wb") as fh:
        fh.write(b"CREATE DATABASE IF NOT EXISTS `app`;\nUSE `app`;\n" + dump)
    load_file(path, "none", restore, build.client_argv("client"), {})
    assert {"app": _checksums(target.spec())} == source_sums
    assert _definers(target.spec()) == source_definers
    with db.session(target.spec()) as conn, db.session(primary.spec()) as source:
        assert db.object_counts(conn, "app") == db.object_counts(source, "app")

    logical = None
    if build.source == "system":  # the flows' logical engine (clients from PATH are this build's)
        from mysqlops.backup import run_backup
        from mysqlops.restore import restore_backup
        from mysqlops.streams.compression import codec

        logical = Location("logical", f"file://{work}/logical")
        made = run_backup(*job(backup, [logical], codec("zstd"), databases=["app"]))
        _sql(target.spec(), "DROP DATABASE app")
        restore_backup([(logical, made.manifest)], restore)
        assert {"app": _checksums(target.spec())} == source_sums
        assert _definers(target.spec()) == source_definers

    # negative controls: without what `users` grants, the pre-flight names it and the load really fails
    _sql(target.spec(), "DROP DATABASE app", "SET GLOBAL log_bin_trust_function_creators = OFF")
    lb, trust = _flags(target.spec())
    missing = missing_restore_privileges(
        version, _grants(restore), counts, log_bin=lb, trust_function_creators=trust
    )
    assert len(missing) == 1 and "log_bin_trust_function_creators = ON" in missing[0], missing
    with pytest.raises(ProcessError, match="1419"):
        load_file(path, "none", restore, build.client_argv("client"), {})
    _sql(target.spec(), "DROP DATABASE IF EXISTS app", "SET GLOBAL log_bin_trust_function_creators = ON")
    definer_priv = "SYSTEM_USER" if mysql else "SET USER"
    _sql(target.spec(), f"REVOKE {definer_priv} ON *.* FROM 'mysqlops_restore'@'%'")
    missing = missing_restore_privileges(
        version, _grants(restore), counts, log_bin=True, trust_function_creators=True
    )
    assert any(f"GRANT {definer_priv} ON *.* TO 'mysqlops_restore'@'%';" in m for m in missing), missing
    with pytest.raises(ProcessError, match="1227"):
        load_file(path, "none", restore, build.client_argv("client"), {})
    if logical is not None:  # the restore flow's engine refuses before fetching or loading anything
        _sql(target.spec(), "DROP DATABASE IF EXISTS app")
        with pytest.raises(PreflightFailed, match=f"GRANT {definer_priv} ON"):
            restore_backup([(logical, made.manifest)], restore)
        assert "app" not in _databases(target.spec())

    # monitor: the replica caught up; replica health and the drift check as the monitor account
    # (the primary is reached through its own block: the backup account, as replica-health does)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _checksums(replica.spec()) != source_sums["app"]:
        time.sleep(0.5)
    health = check_health(
        [_as(replica, "monitor")], primary=_as(primary, "backup"), sample_checksum=True, timeout=60
    )
    assert health[0].problems == [] and health[0].drift == [], health[0]
    assert health[0].io_running and health[0].sql_running
    with db.session(_as(replica, "monitor")) as conn:
        assert table_checksums(conn, "app") == source_sums["app"]


def _checksums(spec: ServerSpec) -> dict[str, object]:
    with db.session(spec) as conn:
        present = "app" in db.user_databases(conn)
        return dict(table_checksums(conn, "app")) if present else {}


def _flags(spec: ServerSpec) -> tuple[bool, bool]:
    with db.session(spec) as conn:
        row = db.query(conn, "SELECT @@log_bin AS lb, @@log_bin_trust_function_creators AS t")[0]
    return bool(int(row["lb"])), bool(int(row["t"]))


def _databases(spec: ServerSpec) -> list[str]:
    with db.session(spec) as conn:
        return db.user_databases(conn)
