"""Physical backups against a real sandbox MariaDB, the real mariabackup/mbstream and moto S3:
full + 2 incrementals, chain restore into a scratch server, fallback on a corrupt copy,
a missing base."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mysqlops import backup as backup
from mysqlops import catalog, layout
from mysqlops import restore as restore
from mysqlops.adapters import builds, clients, sandbox
from mysqlops.adapters import mysql as db
from mysqlops.adapters.storage import Store
from mysqlops.backup import BackupResult
from mysqlops.errors import ConfigError, PreflightFailed, RestoreError
from mysqlops.manifest import BackupManifest, TableStat
from mysqlops.model import BackupKind, BackupMethod, Flavor, Location, ServerVersion
from mysqlops.restore import physical
from mysqlops.runs import Reporter, RunContext
from mysqlops.sampledata import create_awkward_database, create_bulk_table
from mysqlops.streams.compression import codec
from mysqlops.tablesum import table_checksums

pytestmark = pytest.mark.integration

Sums = dict[str, dict[str, TableStat]]


@dataclass
class Env:
    server: sandbox.SandboxServer
    local: Location
    s3: Location
    full: BackupResult
    inc1: BackupResult
    inc2: BackupResult
    sums_inc1: Sums
    sums_inc2: Sums
    logs: list[str]


def _sums(server: sandbox.SandboxServer) -> Sums:
    with db.session(server.spec()) as conn:
        return {d: table_checksums(conn, d) for d in db.user_databases(conn)}


def _sql(server: sandbox.SandboxServer, *statements: str) -> None:
    with db.session(server.spec()) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


@pytest.fixture(scope="module")
def env(sandbox_root: str, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    import boto3

    bucket = "physical-chain"
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=bucket)
    local = Location("local", f"file://{tmp_path_factory.mktemp('physical')}/backups")
    s3 = Location(
        "s3",
        f"s3://{bucket}/mysql",
        storage_options={
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": moto_server},
        },
        offsite=True,
    )
    server = sandbox.start_server(sandbox_root, "physrc", server_id=601)
    logs: list[str] = []
    try:
        with db.session(server.spec()) as conn:
            create_awkward_database(conn, "shop")
            create_bulk_table(conn, "bulk", "t", 20_000)
        _sql(
            server,
            "CREATE TABLE bulk.dropme (id INT PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO bulk.dropme VALUES (1), (2)",
            "CREATE TABLE bulk.mi (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM",
            "INSERT INTO bulk.mi VALUES (1, 'a')",
            "CREATE TABLE bulk.ar (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=Aria",
            "INSERT INTO bulk.ar VALUES (1, 'a')",
        )
        spec = server.spec()
        zstd = codec("zstd")
        full = backup.run_physical_backup(spec, [local, s3], zstd, log=logs.append)
        _sql(
            server,
            "UPDATE bulk.t SET k = k + 1 WHERE id % 50 = 0",
            "INSERT INTO shop.customers (name, created) VALUES ('after full', '2026-11-23 11:00:00')",
            "INSERT INTO bulk.mi VALUES (2, 'b')",
            "CREATE TABLE bulk.new (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
            "INSERT INTO bulk.new SELECT id, c FROM bulk.t WHERE id <= 500",
        )
        inc1 = backup.run_physical_backup(spec, [local, s3], zstd, incremental=True, log=logs.append)
        sums_inc1 = _sums(server)
        _sql(
            server,
            "DELETE FROM bulk.t WHERE id % 97 = 0",
            "DROP TABLE bulk.dropme",
            "ALTER TABLE bulk.new ENGINE=InnoDB, FORCE",
            "UPDATE bulk.ar SET v = 'changed'",
            "INSERT INTO shop.blobs VALUES (9, REPEAT(x'00ff', 5000), x'01')",
        )
        inc2 = backup.run_physical_backup(spec, [local, s3], zstd, incremental=True, log=logs.append)
        sums_inc2 = _sums(server)
        yield Env(server, local, s3, full, inc1, inc2, sums_inc1, sums_inc2, logs)
    finally:
        sandbox.stop_server(server)


def test_full_and_incrementals_are_in_the_catalog(env: Env) -> None:
    full, inc1, inc2 = env.full.manifest, env.inc1.manifest, env.inc2.manifest
    for result in (env.full, env.inc1, env.inc2):
        assert result.ok, result.locations
    assert full.method is BackupMethod.PHYSICAL and full.kind is BackupKind.FULL and full.parent_id is None
    assert inc1.kind is BackupKind.INCREMENTAL and inc1.parent_id == full.backup_id  # default base: newest
    assert inc2.kind is BackupKind.INCREMENTAL and inc2.parent_id == inc1.backup_id
    assert full.lsn_from == 0 and full.lsn_to and full.lsn_to > 0
    assert inc1.lsn_from == full.lsn_to and inc2.lsn_from == inc1.lsn_to
    assert {"shop", "bulk"} <= set(full.databases)
    assert [f.path for f in full.files] == ["backup.mbstream.zst"]
    assert full.files[0].raw_bytes > full.files[0].stored_bytes > 0
    assert inc2.files[0].raw_bytes < full.files[0].raw_bytes  # only changed pages
    assert full.coordinates is not None and full.coordinates.file.startswith("mysql-bin.")
    assert full.coordinates.gtid
    assert inc2.coordinates is not None and inc2.coordinates.position != full.coordinates.position
    assert full.extra["stream_format"] == "mbstream" and full.extra["server_identity"]["server_id"] == 601
    for loc in (env.local, env.s3):
        scan = catalog.scan([loc])[0]
        found = {m.backup_id: m for m in scan.backups}
        assert set(found) == {full.backup_id, inc1.backup_id, inc2.backup_id}
        assert all(m.method is BackupMethod.PHYSICAL and m.location == loc.name for m in found.values())
        assert found[inc2.backup_id].lsn_from == inc1.lsn_to
        assert scan.orphans == [] and scan.temporary == []
        record = found[inc1.backup_id].to_record(proven=False)
        assert record.parent_id == full.backup_id and record.method is BackupMethod.PHYSICAL
        assert not record.verified  # a manifest alone proves no restore


def test_restore_chain_into_scratch_server_matches_source(env: Env) -> None:
    scans = catalog.scan([env.local, env.s3])
    chain = restore.physical_chain(scans, env.server.name)
    assert [c[0][1].backup_id for c in chain] == [
        env.full.manifest.backup_id,
        env.inc1.manifest.backup_id,
        env.inc2.manifest.backup_id,
    ]
    # the source is quiet since incremental 2: compare with it live
    result = restore.restore_test_physical(chain, source=env.server.spec())
    assert result.passed, [c for c in result.checks if not c.passed]
    table_checks = [c for c in result.checks if c.name.endswith("rows and checksum")]
    assert len(table_checks) == sum(len(tables) for tables in env.sums_inc2.values())
    assert not any("dropme" in c.name for c in result.checks)  # dropped in incremental 2: gone
    assert result.locations_used == {m: "local" for m in result.chain}
    assert result.certificate.backup_id == env.inc2.manifest.backup_id
    assert {"download", "extract", "prepare", "start", "verify"} <= set(result.durations)


def test_restore_partial_chain_matches_state_at_incremental_1(env: Env) -> None:
    scans = catalog.scan([env.local])
    chain = restore.physical_chain(scans, env.server.name, env.inc1.manifest.backup_id)
    assert len(chain) == 2
    assert env.sums_inc1 != env.sums_inc2
    result = restore.restore_test_physical(chain, expected=env.sums_inc1)
    assert result.passed, [c for c in result.checks if not c.passed]
    assert any("dropme" in c.name for c in result.checks)


def test_restore_physical_into_a_stopped_servers_empty_datadir(
    env: Env, tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's physical restore (restore.run_physical, the restore-physical flow): the
    full + 2 incrementals chain into a fresh, empty datadir, refused on a non-empty one or one a
    server runs on, the datadir appearing whole (its mode kept, no work directory left); a
    server started on it holds exactly the source's data."""
    host = os.path.join(os.fspath(tmp_path), "host")
    datadir = os.path.join(host, "data")
    os.makedirs(datadir, mode=0o750)
    os.chmod(datadir, 0o750)
    locations = (env.local, env.s3)
    busy = os.path.join(host, "busy")
    os.mkdir(busy)
    with open(os.path.join(busy, "ibdata1"), "w") as fh:
        fh.write("the old server's data")
    with pytest.raises(RestoreError, match=r"is not empty .*ibdata1.*never writes over data"):
        restore.run_physical(restore.PhysicalRestoreRequest(busy, locations, env.server.name), RunContext())
    with pytest.raises(ConfigError, match="absolute path"):
        restore.run_physical(restore.PhysicalRestoreRequest("data", locations, env.server.name), RunContext())
    running = restore.target_problems(env.server.datadir)
    assert any(p.startswith("pid ") and "stop it before restoring" in p for p in running), running
    logs: list[str] = []
    ctx = RunContext(reporter=Reporter.from_log(logs.append))
    outcome = restore.run_physical(restore.PhysicalRestoreRequest(datadir, locations, env.server.name), ctx)
    assert outcome.chain == (
        env.full.manifest.backup_id,
        env.inc1.manifest.backup_id,
        env.inc2.manifest.backup_id,
    )
    assert outcome.locations_used == dict.fromkeys(outcome.chain, "local")
    assert {"download", "extract", "prepare"} <= set(outcome.durations)
    assert os.path.isfile(os.path.join(datadir, "ibdata1")) and os.stat(datadir).st_mode & 0o777 == 0o750
    assert sorted(os.listdir(host)) == ["busy", "data"]  # the work directory beside it is gone
    assert f"datadir={datadir}" in outcome.summary()["next_steps"] and any("restored 3" in x for x in logs)
    started = sandbox.start_server_on_datadir(
        os.fspath(tmp_path),
        "restored",
        datadir,
        server_id=699,
        build=restore.scratch_build(env.inc2.manifest),
    )
    try:
        assert _sums(started) == env.sums_inc2
    finally:
        sandbox.stop_server(started)
    # a datadir that is a mount point (forced here): prepared inside it, its entries moved in;
    # run as root into a datadir of another owner, every file gets that owner (the server's user)
    mounted = os.path.join(host, "mnt")
    os.mkdir(mounted, 0o750)
    if os.geteuid() == 0:
        os.chown(mounted, 65534, 65534)
    os.mkdir(os.path.join(mounted, "lost+found"))  # the filesystem's own: not data in the way
    monkeypatch.setattr(physical, "own_filesystem", lambda path: path == mounted)
    request = restore.PhysicalRestoreRequest(mounted, locations, env.server.name, env.inc1.manifest.backup_id)
    again = restore.run_physical(request, RunContext())
    assert again.chain == (env.full.manifest.backup_id, env.inc1.manifest.backup_id)
    inside = sorted(os.listdir(mounted))
    assert "ibdata1" in inside and not [n for n in inside if n.startswith(physical.WORK_PREFIX)]
    if os.geteuid() == 0:
        restored = [
            os.path.join(b, n) for b, ds, fs in os.walk(mounted) for n in ds + fs if "lost+found" not in b + n
        ]
        owners = {os.lstat(path).st_uid for path in restored}
        assert owners == {65534} and again.owner_uid == 65534 and "chown" not in again.next_steps()


def _flip_byte(location: Location, key: str) -> None:
    store = Store(location)
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 0xFF
    with store.fs.open(store.path(key), "wb") as fh:  # bypasses write-once on purpose
        fh.write(bytes(data))


def test_corrupt_s3_copy_falls_back_to_local(env: Env, tmp_path: os.PathLike[str]) -> None:
    full = env.full.manifest
    key = f"{layout.backup_dir(full.server, full.backup_id)}/{full.files[0].path}"
    _flip_byte(env.s3, key)
    chain = restore.physical_chain(catalog.scan([env.s3, env.local]), env.server.name)
    report = restore.ChainReport()
    logs: list[str] = []
    target = os.path.join(os.fspath(tmp_path), "datadir")
    prepared = restore.restore_physical(
        chain,
        target,
        RunContext(staging_dir=os.fspath(tmp_path), reporter=Reporter.from_log(logs.append)),
        report=report,
    )
    assert prepared == target and os.path.isfile(os.path.join(target, "ibdata1"))
    assert os.path.isdir(os.path.join(target, "bulk")) and not os.path.exists(
        os.path.join(target, "bulk", "dropme.ibd")
    )
    assert report.locations_used[full.backup_id] == "local"
    assert report.locations_used[env.inc2.manifest.backup_id] == "s3"
    assert any("sha256" in p and "'s3'" in p for p in report.problems), report.problems
    assert any("trying the next location" in line for line in logs)
    # only the prepared datadir is left: no staging directory behind
    assert sorted(os.listdir(os.fspath(tmp_path))) == ["datadir"]


def test_incremental_without_base_and_missing_base_fail_clearly(env: Env, tmp_path: os.PathLike[str]) -> None:
    empty = Location("empty", f"file://{os.fspath(tmp_path)}/empty")
    with pytest.raises(PreflightFailed, match="make a full physical backup first"):
        backup.run_physical_backup(env.server.spec(), [empty], codec("zstd"), incremental=True)
    # mariabackup reads the server-reported datadir whatever --datadir says: a wrong hint is a warning
    hinted = backup.run_physical_backup(
        env.server.spec(), [empty], codec("zstd", threads=1), datadir_hint="/nonexistent"
    )
    assert hinted.ok and any("datadir_hint /nonexistent is ignored" in w for w in hinted.warnings)
    assert hinted.manifest.extra["datadir"] == env.server.datadir
    # the full's manifest disappears from the local location: its incrementals cannot be restored
    full = env.full.manifest
    Store(env.local).delete(f"{layout.backup_dir(full.server, full.backup_id)}/{layout.MANIFEST_NAME}")
    with pytest.raises(RestoreError, match=f"base backup {full.backup_id} of incremental .* is missing"):
        restore.physical_chain(catalog.scan([env.local]), env.server.name)
    # a chain with a hole (incremental 1 left out) is refused before anything is fetched
    scans = catalog.scan([env.s3])
    chain = restore.physical_chain(scans, env.server.name)
    target = os.path.join(os.fspath(tmp_path), "hole")
    with pytest.raises(RestoreError, match="based on"):
        restore.restore_physical([chain[0], chain[2]], target, RunContext(staging_dir=os.fspath(tmp_path)))
    assert not os.path.exists(target)


def test_manifest_round_trips(env: Env) -> None:
    m = env.inc2.manifest
    again = BackupManifest.from_json(m.to_json())
    assert (again.lsn_from, again.lsn_to, again.parent_id, again.method) == (
        m.lsn_from,
        m.lsn_to,
        m.parent_id,
        BackupMethod.PHYSICAL,
    )


@pytest.mark.flavors
def test_physical_backup_on_each_mariadb_build(
    sandbox_root: str, server_build: builds.ServerBuild, tmp_path: os.PathLike[str]
) -> None:
    """A MariaDB server of each build is backed up with that build's own mariabackup (loader
    included for a fetched build), the manifest names the tool build, and the restore test
    (prepare with the same build's tool, scratch server of the backup's build) passes."""
    if server_build.flavor is not Flavor.MARIADB:
        pytest.skip("mariabackup backs up MariaDB; MySQL's physical backups use CLONE (test_clone)")
    server = sandbox.start_server(
        sandbox_root,
        f"phys-{server_build.name}",
        server_id=611 + server_build.version.minor,
        build=server_build,
    )
    try:
        with db.session(server.spec()) as conn:
            create_awkward_database(conn, "shop")
            create_bulk_table(conn, "bulk", "t", 2_000)
            version = db.server_version(conn)
        local = Location("local", f"file://{os.fspath(tmp_path)}/backups")
        logs: list[str] = []
        result = backup.run_physical_backup(server.spec(), [local], codec("zstd", threads=1), log=logs.append)
        assert result.ok, result.locations
        tools = result.manifest.tools
        assert tools["backup_build"] == server_build.name, tools
        assert tools["backup_build_version"] == server_build.version_text
        assert tools["backup_build_source"] == server_build.source
        assert f"MariaDB server {server_build.version_text}" in tools["backup"], tools
        assert tools["backup"].startswith(server_build.tool_path("backup")), tools
        assert any(line.startswith("backup tool: ") and server_build.name in line for line in logs), logs

        chain = restore.physical_chain(catalog.scan([local]), server.name)
        test = restore.restore_test_physical(chain, source=server.spec())
        assert test.passed, [c for c in test.checks if not c.passed]
        assert server_build.version_text in test.target_version, test.target_version
        assert any(c.name.endswith("rows and checksum") for c in test.checks)
    finally:
        sandbox.stop_server(server)
    # another series' tool is refused with what to install, before anything runs
    other = clients.physical_tools(ServerVersion(Flavor.MARIADB, 10, 11, 0))
    wrong = ServerVersion(Flavor.MARIADB, version.major, version.minor + 1, 0)
    problems, _line = clients.check_physical(other, wrong)
    assert problems and f"builds fetch mariadb-{wrong.series}" in problems[0], problems
    assert "install mariadb-backup of series" in problems[0]
