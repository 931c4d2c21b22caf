"""The backup engine against real sandbox servers, the real mariadb-dump and a real S3 endpoint."""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from typing import Any

import pytest

from mysqlops import backup as core
from mysqlops import catalog, layout
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, sandbox
from mysqlops.adapters.storage import Store
from mysqlops.backup import freeze as backup_freeze
from mysqlops.backup import preflight as backup_preflight
from mysqlops.errors import DumpIncomplete, PreflightFailed, ProcessError
from mysqlops.manifest import BackupManifest
from mysqlops.model import Location, ServerSpec
from mysqlops.sampledata import create_awkward_database, create_bulk_table
from mysqlops.streams.compression import Codec, codec, codec_from_label
from mysqlops.tools.client import client_option_file, mysql_argv
from mysqlops.units import human_bytes
from tests.jobs import job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def source(sandbox_root: str) -> Any:
    """A server with the awkward database, an empty one and a small plain one."""
    server = sandbox.start_server(sandbox_root, "bsrc", server_id=501)
    with db.session(server.spec()) as conn:
        create_awkward_database(conn, "shop")
        create_awkward_database(conn, "db ` with; spaces ü")
        db.execute(conn, "CREATE DATABASE empty_db")
    yield server
    sandbox.stop_server(server)


def _restore_file(store: Store, key: str, label: str, target: sandbox.SandboxServer) -> None:
    dec = codec_from_label(label).decompressor()
    with process.Pipeline(
        [mysql_argv("mariadb")],
        credentials=client_option_file(target.spec()),
        stdin=process.PIPE,
        stdout=process.DEVNULL,
        name="restore",
    ) as pipe:
        with store.open_read(key) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                pipe.stdin_pipe.write(dec.decompress(chunk))
        pipe.stdin_pipe.write(dec.finish())
        pipe.wait()


def _checksums(server: sandbox.SandboxServer, database: str) -> dict[str, Any]:
    with db.session(server.spec()) as conn:
        return {
            k: [s.rows, s.checksum]
            for k, s in ((s.table, s) for s in backup_freeze.table_stats(conn, [database])[database])
        }


def test_backup_to_local_and_s3_round_trips(
    source: sandbox.SandboxServer, local_location: Location, s3_location: Location, sandbox_root: str
) -> None:
    spec = source.spec()
    result = core.run_backup(*job(spec, [local_location, s3_location], codec("zstd")))
    assert result.ok, result.locations
    m = result.manifest
    assert set(m.databases) == {"shop", "db ` with; spaces ü", "empty_db"}
    assert m.coordinates is not None and m.coordinates.file.startswith("mysql-bin.") and m.coordinates.gtid
    shop = next(f for f in m.files if f.database == "shop")
    assert shop.counts is not None and shop.counts.as_dict() == {
        "tables": 4,
        "views": 2,
        "routines": 2,
        "triggers": 1,
        "events": 1,
    }
    assert shop.content_sha256 and shop.raw_bytes > shop.stored_bytes > 0
    assert not m.extra["empty"]
    for loc in (local_location, s3_location):
        scans = catalog.scan([loc])
        assert [b.backup_id for b in scans[0].backups] == [m.backup_id]
        assert scans[0].orphans == [] and scans[0].temporary == []
        stored = BackupManifest.from_json(
            Store(loc).read_bytes(f"{layout.backup_dir(m.server, m.backup_id)}/manifest.json")
        )
        assert stored.files == m.files and stored.location == loc.name
    # each per-database file restores on its own, from the S3 copy, to identical checksums
    target = sandbox.start_server(sandbox_root, "brestore", server_id=502)
    try:
        store = Store(s3_location)
        for f in m.files:
            _restore_file(
                store, f"{layout.backup_dir(m.server, m.backup_id)}/{f.path}", m.compression, target
            )
        for database in ("shop", "db ` with; spaces ü"):
            assert _checksums(target, database) == _checksums(source, database)
        with db.session(target.spec()) as conn:
            assert db.object_counts(conn, "shop").as_dict() == shop.counts.as_dict()
            row = db.query(conn, "SELECT note, profile, name FROM shop.customers ORDER BY id LIMIT 1")[0]
            assert row["name"] == "Zoë 😀 Ünïcode" and "\\ backslash ' quote" in row["note"]
            assert db.scalar(conn, "SELECT data FROM shop.blobs WHERE id=1") == bytes(range(256)) * 64
            assert db.scalar(conn, "SELECT note IS NULL FROM shop.customers WHERE name='null note'") == 1
            assert db.scalar(conn, "SELECT note = '' FROM shop.customers WHERE name='empty note'") == 1
    finally:
        sandbox.stop_server(target)


def test_empty_database_is_a_valid_backup_marked_empty(
    source: sandbox.SandboxServer, local_location: Location
) -> None:
    result = core.run_backup(*job(source.spec(), [local_location], codec("gzip"), databases=["empty_db"]))
    assert result.ok and result.manifest.extra["empty"] is True
    assert result.manifest.databases == ("empty_db",)


def test_parallel_dump_records_per_database_coordinates(
    source: sandbox.SandboxServer, local_location: Location
) -> None:
    result = core.run_backup(*job(source.spec(), [local_location], codec("zstd"), parallel=2))
    assert result.ok
    assert all(f.coordinates is not None for f in result.manifest.files)
    assert any("parallel=2 on a primary" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: {"databases": ["nope"]}, "database 'nope' does not exist"),
        (lambda s: {"spec": s.spec(user="root", password="wrong-canary-pw")}, "wrong user or password"),
        (lambda s: {"spec": ServerSpec(name="gone", port=1, password="x-canary-pw")}, "cannot connect"),
    ],
)
def test_bad_input_fails_before_dumping(
    source: sandbox.SandboxServer, local_location: Location, change: Any, expected: str
) -> None:
    kwargs = change(source)
    spec = kwargs.pop("spec", source.spec())
    with pytest.raises(PreflightFailed) as info:
        core.run_backup(*job(spec, [local_location], codec("zstd"), **kwargs))
    assert expected in str(info.value)
    assert "canary-pw" not in str(info.value) and source.root_password not in str(info.value)
    assert (
        not os.path.exists(local_location.url[len("file://") :])
        or catalog.scan([local_location])[0].backups == []
    )


def test_missing_bucket_and_unwritable_directory(
    source: sandbox.SandboxServer, moto_server: str, tmp_path: Any
) -> None:
    bucket = Location(
        "s3",
        "s3://no-such-bucket-x/y",
        {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": moto_server}},
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = Location("ro", f"file://{blocker}/sub")
    with pytest.raises(PreflightFailed) as info:
        core.run_backup(*job(source.spec(), [bucket, unwritable], codec("zstd")))
    assert "location 's3'" in str(info.value) and "does not exist" in str(info.value)
    assert "location 'ro'" in str(info.value)


def test_missing_trigger_privilege_fails_preflight_with_grant(
    source: sandbox.SandboxServer, local_location: Location
) -> None:
    with db.session(source.spec()) as conn:
        db.execute(conn, "CREATE USER IF NOT EXISTS 'weak'@'%' IDENTIFIED BY 'weak-pw-1'")
        db.execute(conn, "GRANT SELECT, SHOW VIEW, EVENT, RELOAD, BINLOG MONITOR ON *.* TO 'weak'@'%'")
        db.execute(conn, "GRANT SELECT ON mysql.proc TO 'weak'@'%'")
    with pytest.raises(PreflightFailed) as info:
        core.run_backup(
            *job(
                source.spec(user="weak", password="weak-pw-1"),
                [local_location],
                codec("zstd"),
                databases=["shop"],
            )
        )
    assert "TRIGGER" in str(info.value) and "GRANT" in str(info.value)


class _FailingCodec(Codec):
    def compressor(self) -> Any:
        class Boom:
            n = 0

            def compress(self, data: bytes) -> bytes:
                Boom.n += 1
                if Boom.n > 3:
                    raise OSError("compressor crashed")
                return data

            def flush(self) -> bytes:
                return b""

        return Boom()


def _assert_nothing_published(location: Location) -> None:
    scan = catalog.scan([location])[0]
    assert scan.backups == [] and scan.orphans == [] and scan.temporary == []


def _staging_dirs(root: str) -> list[str]:
    return [n for n in os.listdir(root) if n.startswith("mysqlops-staging-")]


@pytest.fixture(scope="module")
def big_source(sandbox_root: str) -> Any:
    server = sandbox.start_server(sandbox_root, "bbig", server_id=503)
    with db.session(server.spec()) as conn:
        create_bulk_table(conn, "bulk", "t", 300_000, payload_bytes=256)
    yield server
    sandbox.stop_server(server)


def test_compressor_failure_publishes_nothing(
    big_source: sandbox.SandboxServer, local_location: Location, tmp_path: Any
) -> None:
    staging = str(tmp_path / "staging")
    os.makedirs(staging)
    with pytest.raises(OSError, match="compressor crashed"):
        core.run_backup(
            *job(big_source.spec(), [local_location], _FailingCodec("zstd", ".zst", 3), staging_dir=staging)
        )
    _assert_nothing_published(local_location)
    assert _staging_dirs(staging) == []


def test_disk_full_while_staging_publishes_nothing(
    big_source: sandbox.SandboxServer, local_location: Location, tmp_path: Any
) -> None:
    staging = str(tmp_path / "staging")
    os.makedirs(staging)
    plan = backup_preflight.preflight(big_source.spec(), [local_location], staging_dir=staging)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, old_limit[1]))
    try:
        with pytest.raises(OSError):
            core.run_backup(
                *job(big_source.spec(), [local_location], codec("none"), staging_dir=staging), plan=plan
            )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    _assert_nothing_published(local_location)
    assert _staging_dirs(staging) == []


def test_server_killed_mid_dump_publishes_nothing(
    sandbox_root: str, local_location: Location, tmp_path: Any
) -> None:
    server = sandbox.start_server(sandbox_root, "bkill", server_id=504)
    try:
        with db.session(server.spec()) as conn:
            create_bulk_table(conn, "bulk", "t", 400_000, payload_bytes=512)
        staging = str(tmp_path / "staging")
        os.makedirs(staging)
        killed = threading.Event()

        def on_progress(p: core.Progress) -> None:
            if p.dumped_bytes > 1_000_000 and not killed.is_set():
                killed.set()
                os.kill(server.pid, signal.SIGKILL)

        with pytest.raises((ProcessError, DumpIncomplete)):
            core.run_backup(
                *job(
                    server.spec(),
                    [local_location],
                    codec("zstd"),
                    staging_dir=staging,
                    progress=on_progress,
                    progress_interval=0,
                )
            )
        assert killed.is_set()
        _assert_nothing_published(local_location)
        assert _staging_dirs(staging) == []
    finally:
        sandbox.stop_server(server)


def test_one_location_down_the_other_is_verified(
    source: sandbox.SandboxServer, local_location: Location
) -> None:
    from moto.server import ThreadedMotoServer

    from tests.conftest import _free_port

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    s3 = Location(
        "s3down",
        "s3://downbucket/m",
        {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
        },
    )
    import boto3

    boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="downbucket")
    plan = backup_preflight.preflight(source.spec(), [local_location, s3], databases=["shop"])
    moto.stop()  # the S3 endpoint goes away after pre-flight
    result = core.run_backup(*job(source.spec(), [local_location, s3], codec("zstd")), plan=plan)
    assert not result.ok and result.failed_locations == ["s3down"]
    assert [b.backup_id for b in catalog.scan([local_location])[0].backups] == [result.manifest.backup_id]
    assert "s3down" in next(r.error for r in result.locations if not r.ok)


def test_writes_during_dump_restore_to_one_consistent_snapshot(
    sandbox_root: str, local_location: Location
) -> None:
    """Transfers move money between two tables in one transaction and log each transfer in a
    third, while the dump runs. The tables are dumped seconds apart (a big table sorts between
    them), so only one snapshot for all of them keeps the cross-table invariants; and writes
    committed during the dump (seen from the progress callback) are not in the backup, while
    writes committed before it are."""
    server = sandbox.start_server(sandbox_root, "bwrite", server_id=505)
    target = sandbox.start_server(sandbox_root, "bwrite2", server_id=506)
    stop = threading.Event()
    committed = [0]  # last transfer number committed by the writer
    try:
        with db.session(server.spec()) as conn:
            db.execute(conn, "CREATE DATABASE bank")
            db.execute(
                conn, "CREATE TABLE bank.a_acct (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB"
            )
            create_bulk_table(conn, "bank", "b_filler", 150_000, payload_bytes=256)  # dumped between them
            db.execute(
                conn, "CREATE TABLE bank.c_acct (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB"
            )
            db.execute(
                conn, "CREATE TABLE bank.d_ledger (n INT PRIMARY KEY, to_c BIGINT NOT NULL) ENGINE=InnoDB"
            )
            db.execute(conn, "INSERT INTO bank.a_acct SELECT seq, 1000 FROM bank.seq_1_to_100")
            db.execute(conn, "INSERT INTO bank.c_acct SELECT seq, 1000 FROM bank.seq_1_to_100")

        def writer() -> None:
            with db.session(server.spec(), autocommit=False) as conn, conn.cursor() as cur:
                i = 0
                while not stop.is_set():
                    i += 1
                    amount = 5 if i % 3 else -7  # both directions
                    cur.execute("UPDATE bank.a_acct SET bal = bal - %s WHERE id=%s", (amount, i % 100 + 1))
                    cur.execute(
                        "UPDATE bank.c_acct SET bal = bal + %s WHERE id=%s", (amount, (i * 7) % 100 + 1)
                    )
                    cur.execute("INSERT INTO bank.d_ledger VALUES (%s, %s)", (i, amount))
                    conn.commit()
                    committed[0] = i

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while committed[0] < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        before_backup = committed[0]
        during_dump: list[int] = []

        def on_progress(p: core.Progress) -> None:  # called from the dump loop, while it runs
            during_dump.append(committed[0])

        result = core.run_backup(
            *job(
                server.spec(),
                [local_location],
                codec("zstd"),
                databases=["bank"],
                progress=on_progress,
                progress_interval=0,
            )
        )
        stop.set()
        thread.join(10)
        assert result.ok
        m = result.manifest
        _restore_file(
            Store(local_location),
            f"{layout.backup_dir(m.server, m.backup_id)}/{m.files[0].path}",
            m.compression,
            target,
        )
        with db.session(target.spec()) as conn:
            a = int(db.scalar(conn, "SELECT SUM(bal) FROM bank.a_acct"))
            c = int(db.scalar(conn, "SELECT SUM(bal) FROM bank.c_acct"))
            moved = int(db.scalar(conn, "SELECT COALESCE(SUM(to_c), 0) FROM bank.d_ledger"))
            transfers, last = (
                int(v or 0)
                for v in db.query(conn, "SELECT COUNT(*) n, MAX(n) m FROM bank.d_ledger")[0].values()
            )
        # one snapshot for all three tables: the money is all there, and where the ledger says
        assert a + c == 200_000, (a, c)
        assert c - 100_000 == moved and 100_000 - a == moved, (a, c, moved)
        assert transfers == last  # no gap: every transfer up to the snapshot, none after it
        # the snapshot was taken during the backup while the writer ran: writes committed before
        # the backup are in it, writes committed while the dump ran are not
        assert before_backup <= last, (before_backup, last)
        # (the middle of the dump: near its end the client has exited while its output is still read)
        assert len(during_dump) >= 3 and during_dump[len(during_dump) // 2] > last, (last, during_dump)
    finally:
        stop.set()
        sandbox.stop_server(server)
        sandbox.stop_server(target)


def _in_flight(local: Location, s3: Location) -> dict[str, Any]:
    """What each location shows while a backup is running: temp files and final objects on
    disk, multipart uploads (with their part counts) and final objects on S3."""
    lstore, sstore = Store(local), Store(s3)
    keys = lstore.list_keys("") if os.path.isdir(lstore.root) else []
    bucket, _, prefix = sstore.root.partition("/")
    uploads = sstore.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix).get("Uploads", [])
    parts = [
        len(
            sstore.fs.call_s3("list_parts", Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get(
                "Parts", []
            )
        )
        for u in uploads
    ]
    return {
        "local_tmp": [k for k in keys if os.path.basename(k).startswith(layout.TMP_PREFIX)],
        "local_final": [k for k in keys if not os.path.basename(k).startswith(layout.TMP_PREFIX)],
        "s3_parts": parts,
        "s3_final": sstore.list_keys(""),
    }


def _wait_for_upload(local: Location, s3: Location, seen: list[dict[str, Any]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = _in_flight(local, s3)
        if state["local_tmp"] and any(n >= 1 for n in state["s3_parts"]):
            seen.append(state)
            return
        time.sleep(0.1)
    raise AssertionError(f"no upload in flight while dumping: {_in_flight(local, s3)}")


def test_upload_overlaps_the_dump_and_publishes_only_after_it(
    big_source: sandbox.SandboxServer, local_location: Location, s3_location: Location, tmp_path: Any
) -> None:
    """Both locations receive the file while mariadb-dump is still writing it (a temp file on
    disk, S3 parts uploaded), yet nothing carries a final name until the dump is proven."""
    seen: list[dict[str, Any]] = []

    def on_progress(p: core.Progress) -> None:
        # the dump thread waits here (the pipe fills, mariadb-dump blocks) until both uploads
        # have caught up with what is staged: the dump is provably still running meanwhile
        if not seen and p.dumped_bytes > 70_000_000:  # of 112 MB raw, 22 MB compressed
            _wait_for_upload(local_location, s3_location, seen)

    result = core.run_backup(
        *job(
            big_source.spec(),
            [local_location, s3_location],
            codec("zstd"),
            staging_dir=str(tmp_path),
            progress=on_progress,
            progress_interval=0,
        )
    )
    assert result.ok, result.locations
    assert seen and seen[0]["local_final"] == [] and seen[0]["s3_final"] == [], seen
    done = _in_flight(local_location, s3_location)
    assert done["local_tmp"] == [] and done["s3_parts"] == []
    for loc in (local_location, s3_location):
        (found,) = catalog.scan([loc])[0].backups
        assert found.backup_id == result.manifest.backup_id
        assert found.durations[f"upload:{loc.name}"] >= found.durations[f"upload_after_dump:{loc.name}"]


def test_dump_failing_after_upload_began_leaves_nothing_anywhere(
    big_source: sandbox.SandboxServer, local_location: Location, s3_location: Location, tmp_path: Any
) -> None:
    """A backup cancelled mid-dump (here: an exception in the dump thread, as a cancelled flow
    run gets) after both uploads started: no object, temp file or multipart upload is left."""
    seen: list[dict[str, Any]] = []

    def on_progress(p: core.Progress) -> None:
        if p.dumped_bytes > 70_000_000:  # S3 parts are 8 MiB: one is uploaded by then
            _wait_for_upload(local_location, s3_location, seen)
            raise KeyboardInterrupt("cancelled by the operator")

    staging = str(tmp_path / "staging")
    os.makedirs(staging)
    with pytest.raises(KeyboardInterrupt):
        core.run_backup(
            *job(
                big_source.spec(),
                [local_location, s3_location],
                codec("zstd"),
                staging_dir=staging,
                progress=on_progress,
                progress_interval=0,
            )
        )
    assert seen, "the uploads never started"
    assert _in_flight(local_location, s3_location) == {
        "local_tmp": [],
        "local_final": [],
        "s3_parts": [],
        "s3_final": [],
    }
    assert _staging_dirs(staging) == []


def test_a_slow_location_after_the_dump_is_reported_not_silent(
    source: sandbox.SandboxServer, local_location: Location, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a location is still uploading after the dump ended (a slow link), the backup says
    how far each location got, every progress interval, instead of going quiet."""
    real_verify = Store.verify

    def slow_verify(self: Store, *args: Any, **kwargs: Any) -> None:
        time.sleep(1.0)  # the read-back of a far-away copy
        real_verify(self, *args, **kwargs)

    monkeypatch.setattr(Store, "verify", slow_verify)
    lines: list[str] = []
    result = core.run_backup(
        *job(
            source.spec(),
            [local_location],
            codec("zstd"),
            databases=["shop"],
            staging_dir=str(tmp_path),
            log=lines.append,
            progress_interval=0.2,
        )
    )
    assert result.ok
    reports = [line for line in lines if "uploading:" in line]
    assert reports, lines
    stored = sum(f.stored_bytes for f in result.manifest.files)
    assert f"local {human_bytes(stored)} of {human_bytes(stored)} (100%)" in reports[-1]


def test_include_pattern_matching_nothing_fails_preflight(
    source: sandbox.SandboxServer, local_location: Location
) -> None:
    with pytest.raises(PreflightFailed) as info:
        core.run_backup(*job(source.spec(), [local_location], codec("zstd"), include=["shop", "shpo*"]))
    message = str(info.value)
    assert (
        "include pattern 'shpo*' matches no database" in message and "include pattern 'shop'" not in message
    )
    assert "databases on the server: " in message and "shop" in message.split("databases on the server: ")[1]
    with pytest.raises(PreflightFailed, match="nothing to back up"):
        core.run_backup(*job(source.spec(), [local_location], codec("zstd"), exclude=["*"]))
    assert catalog.scan([local_location])[0].backups == []


def test_non_transactional_tables_are_named_in_the_backup(
    fresh_server: sandbox.SandboxServer, local_location: Location
) -> None:
    """MyISAM, Aria and MEMORY tables are read outside the --single-transaction snapshot: the
    backup warns, naming them, and its manifest records them; InnoDB tables, views and
    sequences are not named (and a sequence counts as the table it is)."""
    with db.session(fresh_server.spec()) as conn:
        for sql in ("CREATE DATABASE legacy", "CREATE DATABASE modern",
                    "CREATE TABLE legacy.t_aria (id INT PRIMARY KEY) ENGINE=Aria",
                    "CREATE TABLE legacy.t_myisam (id INT PRIMARY KEY) ENGINE=MyISAM",
                    "CREATE TABLE legacy.t_mem (id INT PRIMARY KEY) ENGINE=MEMORY",
                    "CREATE TABLE legacy.t_innodb (id INT PRIMARY KEY) ENGINE=InnoDB",
                    "CREATE VIEW legacy.v AS SELECT id FROM legacy.t_aria",
                    "CREATE SEQUENCE legacy.s",
                    "INSERT INTO legacy.t_aria VALUES (1)", "INSERT INTO legacy.t_myisam VALUES (1)",
                    "CREATE TABLE modern.t (id INT PRIMARY KEY) ENGINE=InnoDB"):  # fmt: skip
            db.execute(conn, sql)
    expected = {"legacy": {"t_aria": "Aria", "t_mem": "MEMORY", "t_myisam": "MyISAM"}}
    result = core.run_backup(*job(fresh_server.spec(), [local_location], codec("zstd")))
    assert result.ok
    warning = next(w for w in result.warnings if "non-transactional" in w)
    assert warning.startswith(
        "3 table(s) use a non-transactional engine and are outside the consistent snapshot: "
        "legacy.t_aria (Aria), legacy.t_mem (MEMORY), legacy.t_myisam (MyISAM)."
    )
    m = result.manifest
    assert m.non_transactional_tables == expected and warning in m.warnings
    stored = BackupManifest.from_json(
        Store(local_location).read_bytes(f"{layout.backup_dir(m.server, m.backup_id)}/manifest.json")
    )
    assert stored.non_transactional_tables == expected
    clean = core.run_backup(*job(fresh_server.spec(), [local_location], codec("zstd"), databases=["modern"]))
    assert clean.manifest.non_transactional_tables == {} and not any(
        "non-transactional" in w for w in clean.warnings
    )
