"""Restore and restore tests against real servers, the real client and a real S3 endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import catalog, layout
from mysqlops import restore as core
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.errors import RestoreError
from mysqlops.manifest import RestoreCertificate
from mysqlops.model import Location
from mysqlops.restore import rename as restore_rename
from mysqlops.runs import Reporter, RunContext
from mysqlops.sampledata import create_awkward_database
from mysqlops.streams.compression import codec
from tests.jobs import job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def made(sandbox_root: str, tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Any:
    """A source server with awkward data, FLOAT columns, backed up to local + S3."""
    import boto3

    server = sandbox.start_server(sandbox_root, "rsrc", server_id=601)
    with db.session(server.spec()) as conn:
        create_awkward_database(conn, "shop")
        db.execute(conn, "CREATE TABLE shop.measure (id INT PRIMARY KEY, f FLOAT, d DOUBLE)")
        db.execute(
            conn, "INSERT INTO shop.measure VALUES (1, 14285.7138671875, 14285.7138671875), (2, NULL, 0)"
        )
        db.execute(conn, "CREATE DATABASE simple")
        db.execute(conn, "CREATE TABLE simple.t (id INT PRIMARY KEY, v VARCHAR(10))")
        db.execute(conn, "INSERT INTO simple.t VALUES (1, 'a'), (2, 'b')")
        db.execute(conn, "CREATE VIEW simple.v AS SELECT id FROM simple.t")
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket="restore-tests")
    local = Location("local", f"file://{tmp_path_factory.mktemp('rloc')}/b")
    s3 = Location(
        "s3",
        "s3://restore-tests/m",
        {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": moto_server}},
        offsite=True,
    )
    result = bk.run_backup(*job(server.spec(), [s3, local], codec("zstd")))
    assert result.ok
    yield server, result.manifest, s3, local
    sandbox.stop_server(server)


def _copies(s3: Location, local: Location, backup_id: str) -> list[Any]:
    return catalog.find_backup(catalog.scan([s3, local]), None, backup_id)


def test_restore_test_passes_and_writes_certificate(made: Any, tmp_path: Any) -> None:
    server, manifest, s3, local = made
    cert = core.restore_test_copy(s3, manifest, sandbox_dir=str(tmp_path))
    assert cert.passed, [c for c in cert.checks if not c.passed]
    names = [c.name for c in cert.checks]
    assert "sha256 of the copy at s3" in names
    assert "shop: object counts" in names and "shop: re-dump content hash" in names
    assert any("14285" not in n and "FLOAT columns measure.f" in n for n in cert.lossy)
    assert cert.durations["load"] > 0 and cert.durations["total"] >= cert.durations["load"]
    stored = catalog.scan([s3])[0].certificates
    assert [c.backup_id for c in stored] == [manifest.backup_id] and isinstance(stored[0], RestoreCertificate)
    assert not [n for n in sandbox.load_servers(str(tmp_path))]  # scratch server gone


def test_corrupt_s3_copy_fails_its_test_and_restore_falls_back(
    made: Any, tmp_path: Any, sandbox_root: str
) -> None:
    server, manifest, s3, local = made
    store = Store(s3)
    key = f"{layout.backup_dir(manifest.server, manifest.backup_id)}/shop.sql.zst"
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 0x01  # one flipped bit in the stored copy
    store.fs.pipe_file(store.path(key), bytes(data))
    try:
        cert = core.restore_test_copy(s3, manifest, sandbox_dir=str(tmp_path), write_certificate=False)
        assert not cert.passed
        failed = [c for c in cert.checks if not c.passed]
        assert failed[0].name == "sha256 of the copy at s3" and "sha256" in failed[0].detail
        target = sandbox.start_server(sandbox_root, "rtarget", server_id=602)
        try:
            result = core.restore_backup(
                _copies(s3, local, manifest.backup_id), target.spec(), databases=["shop"]
            )
            assert result.locations_used == {"shop.sql.zst": "local"}
            assert any("corrupt" in p for p in result.problems)
            with db.session(target.spec()) as conn:
                assert db.object_counts(conn, "shop").tables == 5
        finally:
            sandbox.stop_server(target)
    finally:
        store.fs.rm(store.path(key))
        store.fs.pipe_file(store.path(key), Store(local).read_bytes(key))


def test_truncated_copy_fails_clearly_and_leaves_nothing(made: Any, sandbox_root: str, tmp_path: Any) -> None:
    server, manifest, s3, local = made
    trunc = Location("trunc", f"file://{tmp_path}/t")
    src, dst = Store(local), Store(trunc)
    directory = layout.backup_dir(manifest.server, manifest.backup_id)
    for key in src.list_keys(directory):
        data = src.read_bytes(key)
        dst.put_bytes(data[: len(data) // 2] if key.endswith(".zst") else data, key)
    target = sandbox.start_server(sandbox_root, "rtrunc", server_id=603)
    try:
        with pytest.raises(RestoreError, match="truncated"):
            core.restore_backup(_copies(trunc, trunc, manifest.backup_id)[:1], target.spec())
        with db.session(target.spec()) as conn:
            assert db.user_databases(conn) == []
    finally:
        sandbox.stop_server(target)
    before = {s.name for s in sandbox.load_servers(str(tmp_path))}
    cert = core.restore_test_copy(trunc, manifest, sandbox_dir=str(tmp_path), write_certificate=False)
    assert not cert.passed and "truncated" in cert.checks[1].detail
    assert {s.name for s in sandbox.load_servers(str(tmp_path))} == before


def test_refusals_and_rename(made: Any, sandbox_root: str) -> None:
    server, manifest, s3, local = made
    copies = _copies(local, s3, manifest.backup_id)
    target = sandbox.start_server(sandbox_root, "rren", server_id=604)
    try:
        with db.session(target.spec()) as conn:
            db.execute(conn, "CREATE DATABASE shop")
            db.execute(conn, "CREATE TABLE shop.keepme (id INT)")
        with pytest.raises(RestoreError, match="not empty"):
            core.restore_backup(copies, target.spec(), databases=["shop"])
        # shop's trigger, procedure and event bodies name `shop` explicitly: a rename is refused
        # before anything is loaded, naming them
        with pytest.raises(restore_rename.RenameRefused) as refused:
            core.restore_backup(copies, target.spec(), databases=["shop"], rename={"shop": "shop_restored"})
        for name in ("trigger `customers_audit`", "procedure `add_customer`", "event `nightly`"):
            assert f"{name} names `shop` explicitly" in str(refused.value)
        assert "Nothing was loaded" in str(refused.value)
        seen: list[float] = []
        lines: list[str] = []
        result = core.restore_backup(
            copies,
            target.spec(),
            RunContext(reporter=Reporter(info=lines.append, progress=seen.append)),
            databases=["simple"],
            rename={"simple": "simple2"},
        )
        assert result.databases == {"simple": "simple2"}
        # the load's progress reaches the run's reporter: percentages, the last one complete,
        # and a line that says what was loaded
        assert seen and seen[-1] == 100.0 and all(0 <= p <= 100 for p in seen)
        assert any(ln.startswith("loaded ") and ln.endswith("(done)") for ln in lines), lines
        with db.session(target.spec()) as conn:
            assert "shop_restored" not in db.user_databases(conn)
            assert db.object_counts(conn, "simple2").as_dict() == {
                "tables": 1,
                "views": 1,
                "routines": 0,
                "triggers": 0,
                "events": 0,
            }
            assert db.scalar(conn, "SELECT COUNT(*) FROM simple2.v") == 2
            assert db.scalar(conn, "SELECT COUNT(*) FROM shop.keepme") == 0  # untouched
        core.restore_backup(copies, target.spec(), databases=["shop"], overwrite=True)
        with db.session(target.spec()) as conn:
            assert db.object_counts(conn, "shop").tables == 5
            assert "keepme" not in [
                r["t"]
                for r in db.query(
                    conn, "SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop'"
                )
            ]
        with pytest.raises(RestoreError, match="own source server"):
            core.restore_backup(copies, server.spec(name=manifest.server))
    finally:
        sandbox.stop_server(target)


def test_rename_rewriter_only_touches_structure_lines() -> None:
    rw = restore_rename.RenameRewriter({"shop": "shop2"})
    dump = (
        b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 x */;\n\nUSE `shop`;\n"
        b"INSERT INTO `t` VALUES ('USE `shop`;');\n"
    )
    out = b"".join(rw.feed(dump[i : i + 5]) for i in range(0, len(dump), 5)) + rw.finish()
    assert out == dump.replace(b"`shop` /*", b"`shop2` /*").replace(b"\nUSE `shop`;", b"\nUSE `shop2`;")


def _database_state(spec: Any, database: str) -> dict[str, Any]:
    """Everything a rename could change about ``database``: its definition, its default
    charset, and each routine/trigger/event with the charset context it was created in."""
    with db.session(spec) as conn:
        return {
            "create": db.query(conn, f"SHOW CREATE DATABASE `{database}`"),
            "schemata": db.query(
                conn, "SELECT * FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", [database]
            ),
            "routines": db.query(
                conn,
                "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION, DATABASE_COLLATION, CHARACTER_SET_CLIENT,"
                " COLLATION_CONNECTION, CREATED, LAST_ALTERED FROM information_schema.ROUTINES"
                " WHERE ROUTINE_SCHEMA=%s ORDER BY ROUTINE_NAME",
                [database],
            ),
            "triggers": db.query(
                conn,
                "SELECT TRIGGER_NAME, ACTION_STATEMENT, DATABASE_COLLATION, CREATED FROM information_schema.TRIGGERS"
                " WHERE TRIGGER_SCHEMA=%s ORDER BY TRIGGER_NAME",
                [database],
            ),
            "events": db.query(
                conn,
                "SELECT EVENT_NAME, EVENT_DEFINITION, DATABASE_COLLATION, CREATED, LAST_ALTERED"
                " FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s ORDER BY EVENT_NAME",
                [database],
            ),
            "tables": db.query(
                conn,
                "SELECT TABLE_NAME, TABLE_COLLATION, CREATE_TIME FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME",
                [database],
            ),
            "rows": db.query(conn, f"SELECT * FROM `{database}`.t ORDER BY id"),
        }


def _collations(spec: Any, database: str) -> dict[str, Any]:
    """Per object, the database collation it was created under (what a faithful copy keeps)."""
    with db.session(spec) as conn:
        rows = db.query(
            conn,
            "SELECT ROUTINE_NAME n, DATABASE_COLLATION c FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s"
            " UNION ALL SELECT TRIGGER_NAME, DATABASE_COLLATION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s"
            " UNION ALL SELECT EVENT_NAME, DATABASE_COLLATION FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s",
            [database] * 3,
        )
        default = db.scalar(
            conn,
            "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
            [database],
        )
    return {"default": default, **{r["n"]: r["c"] for r in rows}}


def test_rename_never_touches_another_database(sandbox_root: str, tmp_path: Any) -> None:
    """Routines, a trigger and an event created while `src` was latin1, then `src` moved to
    utf8mb4: the dump wraps them in ALTER DATABASE `src` lines. Restored as `copy` on the
    server that holds `src` (whose collation changed since the backup), `src` is untouched
    and `copy` is faithful; restored as `copy` on a server without `src`, it works. Bodies
    that qualify names with `src` make the rename refuse before anything is loaded."""
    source = sandbox.start_server(sandbox_root, "rnsrc", server_id=611)
    other = sandbox.start_server(sandbox_root, "rnoth", server_id=612)
    location = Location("local", f"file://{tmp_path}/b")
    try:
        spec = source.spec()
        with db.session(spec) as conn:
            for sql in (
                "CREATE DATABASE src CHARACTER SET latin1 COLLATE latin1_swedish_ci",
                "CREATE TABLE src.t (id INT PRIMARY KEY, v VARCHAR(60)) CHARACTER SET utf8mb4",
                "INSERT INTO src.t VALUES (1, 'USE `src`;'), (2, 'ALTER DATABASE `src` CHARACTER SET ascii')",
                "CREATE TABLE src.log (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(20))",
                "CREATE PROCEDURE src.p_latin() SELECT COUNT(*) FROM t",
                "CREATE FUNCTION src.f_latin() RETURNS INT DETERMINISTIC RETURN 7",
                "CREATE TRIGGER src.tr_latin AFTER INSERT ON src.t FOR EACH ROW INSERT INTO log (note) VALUES ('ins')",
                "CREATE EVENT src.ev_latin ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM log WHERE id < 0",
                "CREATE VIEW src.v AS SELECT id FROM src.t",
                "ALTER DATABASE src CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                "CREATE PROCEDURE src.p_utf8() SELECT 1",
            ):
                db.execute(conn, sql)
        backup = bk.run_backup(*job(spec, [location], codec("zstd"), databases=["src"]))
        assert backup.ok
        dump_text = Store(location).read_bytes(
            f"{layout.backup_dir(backup.manifest.server, backup.manifest.backup_id)}/{backup.manifest.files[0].path}"
        )
        # (every frame: each table's sections are frames of their own)
        assert b"ALTER DATABASE `src` CHARACTER SET latin1" in codec("zstd").decompressor().decompress(
            dump_text
        )  # the case under test is really in the dump
        expected_copy = _collations(spec, "src")
        assert (
            expected_copy["p_latin"] == "latin1_swedish_ci"
            and expected_copy["p_utf8"] == "utf8mb4_unicode_ci"
        )

        # the live `src` moved on since the backup; restoring a copy beside it must not touch it
        with db.session(spec) as conn:
            db.execute(conn, "ALTER DATABASE src COLLATE utf8mb4_bin")
        before = _database_state(spec, "src")
        copies = catalog.find_backup(catalog.scan([location]), None, backup.manifest.backup_id)
        core.restore_backup(copies, spec, rename={"src": "copy"}, allow_source_target=True)
        assert _database_state(spec, "src") == before
        assert _collations(spec, "copy") == expected_copy
        with db.session(spec) as conn:
            assert db.query(conn, "SELECT * FROM copy.t ORDER BY id") == before["rows"]
            db.execute(conn, "INSERT INTO copy.t VALUES (3, 'x')")  # the copy's trigger writes the copy
            assert db.scalar(conn, "SELECT COUNT(*) FROM copy.log") == 1
            assert db.scalar(conn, "SELECT COUNT(*) FROM src.log") == 0

        # a server without `src`: the rename alone makes a faithful copy
        core.restore_backup(copies, other.spec(), rename={"src": "copy"})
        with db.session(other.spec()) as conn:
            assert "src" not in db.user_databases(conn)
        assert _collations(other.spec(), "copy") == expected_copy

        # bodies that qualify names with `src`: refused, naming them, before anything is loaded
        with db.session(spec) as conn:
            db.execute(conn, "CREATE DATABASE elsewhere")
            db.execute(conn, "CREATE TABLE elsewhere.x (id INT)")
            db.execute(conn, "CREATE PROCEDURE src.p_qualified() SELECT COUNT(*) FROM src.t")
            db.execute(
                conn, "CREATE VIEW src.v_cross AS SELECT t.id FROM src.t JOIN elsewhere.x ON x.id = t.id"
            )
        qualified = bk.run_backup(*job(spec, [location], codec("zstd"), databases=["src"]))
        before = _database_state(spec, "src")
        copies = catalog.find_backup(catalog.scan([location]), None, qualified.manifest.backup_id)
        for target in (spec, other.spec()):
            with pytest.raises(restore_rename.RenameRefused) as refused:
                core.restore_backup(copies, target, rename={"src": "copy2"}, allow_source_target=True)
            assert "procedure `p_qualified` names `src` explicitly (`src`.`t`)" in str(refused.value)
            assert "view `v_cross` names `src` explicitly" in str(refused.value)
            with db.session(target) as conn:
                assert "copy2" not in db.user_databases(conn)
        assert _database_state(spec, "src") == before
    finally:
        sandbox.stop_server(source)
        sandbox.stop_server(other)


def test_restore_test_names_the_table_whose_rows_differ(
    made: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-dump hash is compared table by table, each table's rows re-dumped as soon as it is
    loaded: a good copy is certified, and restored rows that differ from the dump (one row
    changed on the scratch server right after its table loaded, before its re-dump) fail the
    certificate naming that table, and only it."""
    from mysqlops.restore import verify

    server, manifest, s3, local = made
    good = core.restore_test_copy(
        local, manifest, sandbox_dir=str(tmp_path / "good"), write_certificate=False
    )
    assert good.passed, [c for c in good.checks if not c.passed]
    shop = next(c for c in good.checks if c.name == "shop: re-dump content hash")
    assert "piece by piece" in shop.detail and "while others loaded" in shop.detail, shop.detail

    real = verify.restore_backup

    def tampering(*args: Any, on_table: Any = None, **kw: Any) -> Any:
        def changed(database: str, table: str) -> None:
            if (database, table) == ("shop", "measure"):
                spec = args[1]
                with db.session(spec) as conn:
                    db.execute(conn, "UPDATE shop.measure SET d = d + 1 WHERE id = 2")
            if on_table is not None:
                on_table(database, table)

        return real(*args, on_table=changed, **kw)

    monkeypatch.setattr(verify, "restore_backup", tampering)
    cert = core.restore_test_copy(local, manifest, sandbox_dir=str(tmp_path / "bad"), write_certificate=False)
    assert not cert.passed
    failed = {c.name: c.detail for c in cert.checks if not c.passed}
    assert set(failed) == {"shop: re-dump content hash", "shop.measure: re-dump content hash"}, failed
    assert "`measure`" in failed["shop: re-dump content hash"]
    assert failed["shop.measure: re-dump content hash"].startswith("rows of `measure`: sha256 ")
    assert any(c.name == "simple: re-dump content hash" and c.passed for c in cert.checks)
