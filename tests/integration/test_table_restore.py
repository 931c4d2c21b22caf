"""Table-addressable backup files and single-table restore: real servers of each build, the
server's own client, a real S3 endpoint (moto server)."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest

from mysqlops import backup as bk
from mysqlops import catalog, layout
from mysqlops import restore as core
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.errors import ConfigError, ProcessError, RestoreError
from mysqlops.manifest import BackupManifest
from mysqlops.model import Location
from mysqlops.restore import tables as rt
from mysqlops.restore.sections import fetch_section
from mysqlops.runs import Reporter, RunContext
from mysqlops.streams import crypto
from mysqlops.streams.compression import codec, codec_from_label
from mysqlops.streams.crypto import Keyring
from tests.jobs import job

pytestmark = [pytest.mark.integration, pytest.mark.flavors]

KEY = bytes(range(32))


def _make_shop(conn: db.Connection, rows: int = 3000) -> None:
    """Tables with FKs (named and generated), a trigger, a view, a routine, bulk rows."""
    for sql in (
        "CREATE DATABASE shop",
        "CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(50), KEY (name))",
        "CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100))",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, customer_id INT NOT NULL, note TEXT,"
        " KEY k_customer (customer_id),"
        " CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES shop.customers (id))",
        "CREATE TABLE shop.order_items (order_id INT, n INT, qty INT, PRIMARY KEY (order_id, n),"
        " FOREIGN KEY (order_id) REFERENCES shop.orders (id))",
        "CREATE TABLE shop.`odd ``name`` ü` (id INT PRIMARY KEY, v VARCHAR(10))",
        "CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.orders FOR EACH ROW"
        " INSERT INTO shop.audit (what) VALUES (CONCAT('order ', NEW.id))",
        "CREATE VIEW shop.big_orders AS SELECT id FROM shop.orders WHERE id > 10",
        "CREATE DATABASE other",
        "CREATE TABLE other.t (id INT PRIMARY KEY)",
        "INSERT INTO other.t VALUES (1), (2)",
    ):
        db.execute(conn, sql)
    db.execute(conn, "INSERT INTO shop.customers VALUES " + ",".join(f"({i}, 'c{i}')" for i in range(1, 101)))
    values = ",".join(
        f"({i}, {i % 100 + 1}, 'note {i} {'x' * (i % 50)}\\n\\'q\\'')" for i in range(1, rows + 1)
    )
    db.execute(conn, "INSERT INTO shop.orders VALUES " + values)
    db.execute(
        conn,
        "INSERT INTO shop.order_items VALUES " + ",".join(f"({i}, 1, {i % 7})" for i in range(1, rows + 1)),
    )
    db.execute(conn, "INSERT INTO shop.`odd ``name`` ü` VALUES (1, 'a'), (2, 'b')")


def _checksum(conn: db.Connection, table: str) -> tuple[int, Any]:
    row = db.query(conn, f"CHECKSUM TABLE {table}")[0]
    count = db.scalar(conn, f"SELECT COUNT(*) FROM {table}")
    return int(count), row["Checksum"]


@pytest.fixture(scope="module")
def shop_backups(
    sandbox_root: str, server_build: Any, tmp_path_factory: pytest.TempPathFactory, moto_server: str
) -> Any:
    """A source with `shop`, backed up three ways: zstd to local + S3, encrypted zstd to
    local, gzip to local."""
    import boto3

    server = sandbox.start_server(
        sandbox_root, f"tsrc-{server_build.name}", server_id=1811, build=server_build
    )
    base = tmp_path_factory.mktemp("tloc")
    bucket = f"tables-{server_build.name.replace('.', '-')}"
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=bucket)
    s3 = Location(
        "s3",
        f"s3://{bucket}/m",
        {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": moto_server}},
        offsite=True,
    )
    local = Location("local", f"file://{base}/plain")
    enc = Location("enc", f"file://{base}/enc")
    gz = Location("gz", f"file://{base}/gz")
    try:
        with db.session(server.spec()) as conn:
            _make_shop(conn)
            sums = {t: _checksum(conn, f"shop.{t}") for t in ("customers", "orders", "order_items", "audit")}
        plain = bk.run_backup(*job(server.spec(), [s3, local], codec("zstd")))
        encrypted = bk.run_backup(*job(server.spec(), [enc], codec("zstd"), encryption_key=KEY))
        gzipped = bk.run_backup(*job(server.spec(), [gz], codec("gzip")))
        assert plain.ok and encrypted.ok and gzipped.ok
        yield {
            "server": server,
            "sums": sums,
            "plain": plain.manifest,
            "encrypted": encrypted.manifest,
            "gzip": gzipped.manifest,
            "s3": s3,
            "local": local,
            "enc": enc,
            "gz": gz,
        }
    finally:
        sandbox.stop_server(server)


def _stored(location: Location, manifest: BackupManifest, path: str) -> bytes:
    return Store(location).read_bytes(f"{layout.backup_dir(manifest.server, manifest.backup_id)}/{path}")


def _raw(location: Location, manifest: BackupManifest, path: str, keyring: Keyring | None) -> bytes:
    data = _stored(location, manifest, path)
    if keyring is not None:
        data = crypto.decrypt_bytes(keyring, data)
    dec = codec_from_label(manifest.compression).decompressor()
    return dec.decompress(data) + dec.finish()


def test_table_index_in_manifest(shop_backups: Any) -> None:
    """Each table's structure, data and trigger sections are recorded in the manifest, and each
    decompresses on its own to exactly that table's bytes of the dump: plain, encrypted, gzip;
    the file stays one stream the plain tools restore."""
    b = shop_backups
    keyring = Keyring(KEY)
    for kind, location, key in (
        ("plain", b["local"], None),
        ("encrypted", b["enc"], keyring),
        ("gzip", b["gz"], None),
    ):
        manifest = BackupManifest.from_json(b[kind].to_json())  # through the JSON, as read back
        f = next(f for f in manifest.files if f.database == "shop")
        index = {t.table: t for t in f.table_index}
        assert list(index) == ["audit", "customers", "odd `name` ü", "order_items", "orders"], kind
        assert index["orders"].triggers is not None and index["customers"].triggers is None
        raw = _raw(location, manifest, f.path, key)
        stored = _stored(location, manifest, f.path)
        store = Store(location)
        file_key = f"{layout.backup_dir(manifest.server, manifest.backup_id)}/{f.path}"
        for name, t in index.items():
            assert t.structure and t.data, (kind, name)
            text = raw[t.structure.raw_offset : t.structure.raw_offset + t.structure.raw_bytes]
            assert text.startswith(b"--\n-- Table structure for table `" + name.replace("`", "``").encode())
            assert b"CREATE TABLE" in text and b"INSERT INTO" not in text
            data = raw[t.data.raw_offset : t.data.raw_offset + t.data.raw_bytes]
            assert data.startswith(b"--\n-- Dumping data for table ") and b"CREATE TABLE" not in data
            assert t.structure.raw_offset + t.structure.raw_bytes == t.data.raw_offset  # adjacent, no gap
            if t.triggers:
                trig = raw[t.triggers.raw_offset : t.triggers.raw_offset + t.triggers.raw_bytes]
                assert t.data.raw_offset + t.data.raw_bytes == t.triggers.raw_offset
                assert (
                    b"TRIGGER" in trig
                    and b"orders_ai" in trig
                    and b"INSERT INTO `" not in trig.split(b"\n")[0]
                )
            for section in (t.structure, t.data, t.triggers):
                if section is None:
                    continue
                # the section's own bytes, read by a ranged read, decompress alone to its dump text
                piece = _section_bytes(store, file_key, f, section, key)
                assert len(piece) == section.length
                dec = codec_from_label(manifest.compression).decompressor()
                alone = dec.decompress(piece) + dec.finish()
                assert alone == raw[section.raw_offset : section.raw_offset + section.raw_bytes], (kind, name)
                if key is None:
                    assert stored[section.offset : section.offset + section.length] == piece
        # the data section of orders holds every row's INSERT, nothing of another table
        orders = index["orders"].data
        assert orders is not None and orders.raw_bytes > 100_000
        # old manifests without the index still parse (and restore: test_single_table_restore)
        doc = manifest.to_json().replace('"table_index"', '"table_index_unknown"')
        assert all(not ff.table_index for ff in BackupManifest.from_json(doc).files)
    # one mysqldump-compatible stream: the plain tool decodes the whole file
    f = next(f for f in b["plain"].files if f.database == "shop")
    whole = _stored(b["local"], b["plain"], f.path)
    out = subprocess.run(["zstd", "-dc"], input=whole, capture_output=True, check=True).stdout
    assert out == _raw(b["local"], b["plain"], f.path, None)
    assert out.rstrip().split(b"\n")[-1].startswith(b"-- Dump completed")
    g = next(f for f in b["gzip"].files if f.database == "shop")
    gz_out = subprocess.run(
        ["gzip", "-dc"], input=_stored(b["gz"], b["gzip"], g.path), capture_output=True, check=True
    ).stdout
    assert gz_out == _raw(b["gz"], b["gzip"], g.path, None)


def _section_bytes(store: Store, key: str, f: Any, section: Any, keyring: Keyring | None) -> bytes:
    """The section's compressed bytes as the restore reads them (ranged reads)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "s")
        fetch_section(store, key, f, section, keyring, dest)
        with open(dest, "rb") as fh:
            return fh.read()


def _copies(locations: list[Location], backup_id: str) -> list[Any]:
    return catalog.find_backup(catalog.scan(locations), None, backup_id)


def _tables(conn: db.Connection, database: str) -> list[str]:
    rows = db.query(
        conn,
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME",
        [database],
    )
    return sorted(str(r["t"]) for r in rows)


def test_single_table_restore(
    shop_backups: Any, sandbox_root: str, server_build: Any, tmp_path: Any, caplog: Any
) -> None:
    b = shop_backups
    sums = b["sums"]
    plain: BackupManifest = b["plain"]
    f = next(f for f in plain.files if f.database == "shop")
    target = sandbox.start_server(
        sandbox_root, f"ttgt-{server_build.name}", server_id=1812, build=server_build
    )
    try:
        spec = target.spec()
        with db.session(spec) as conn:
            # a live `shop` with tables of its own that must never be touched
            db.execute(conn, "CREATE DATABASE shop")
            db.execute(conn, "CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(50))")
            db.execute(conn, "INSERT INTO shop.customers VALUES (1, 'live'), (999, 'only here')")
            db.execute(conn, "CREATE TABLE shop.orders (id INT PRIMARY KEY, customer_id INT, note TEXT)")
            db.execute(conn, "INSERT INTO shop.orders VALUES (1, 1, 'live order')")
            live = {t: _checksum(conn, f"shop.{t}") for t in ("customers", "orders")}

        # 1. from S3 (first location), ranged reads only, renamed into the live database
        copies = _copies([b["s3"], b["local"]], plain.backup_id)
        assert copies[0][0].name == "s3"
        log: list[str] = []
        progress: list[float] = []
        result = core.restore_backup(
            copies,
            spec,
            RunContext(reporter=Reporter(info=log.append, progress=progress.append)),
            tables=["shop.orders"],
            rename={"shop.orders": "orders_restored"},
        )
        orders_index = next(t for t in f.table_index if t.table == "orders")
        assert orders_index.triggers is not None
        loaded_bytes = orders_index.raw_bytes - orders_index.triggers.raw_bytes  # renamed: no triggers
        assert result.raw_bytes == loaded_bytes and progress[-1] == 100.0
        # the parallel loader's path: the secondary key and the FK were added after the rows
        assert result.keys_deferred == ["shop.orders_restored"], log
        assert any("table `shop`.`orders_restored`:" in ln and "deferred key(s) added" in ln for ln in log), (
            log
        )
        assert isinstance(result, rt.TableRestoreResult)
        assert result.databases == {"shop.orders": "shop.orders_restored"}
        assert result.locations_used == {"shop.orders": "s3"}, (result.problems, log)
        assert not result.problems
        assert 0 < result.fetched_bytes < f.stored_bytes * 0.9  # only the table's ranges were read
        assert any("triggers of shop.orders were not restored" in w for w in result.warnings)
        with db.session(spec) as conn:
            assert _checksum(conn, "shop.orders_restored") == sums["orders"]
            assert {t: _checksum(conn, f"shop.{t}") for t in ("customers", "orders")} == live
            assert _tables(conn, "shop") == ["customers", "orders", "orders_restored"]
            ddl = db.query(conn, "SHOW CREATE TABLE shop.orders_restored")[0]["Create Table"]
            assert "CONSTRAINT `orders_restored_customer`" not in ddl  # named: prefix rule below
            assert "FOREIGN KEY (`customer_id`) REFERENCES `customers`" in ddl
            assert "KEY `k_customer`" in ddl
            triggers = db.query(
                conn,
                "SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA <> 'sys'",
            )
            assert triggers == []  # the renamed table's trigger was not restored

        # 2. refusal when the target exists; overwrite=True replaces it (and only it)
        with pytest.raises(RestoreError, match=r"already exist.*overwrite=True"):
            core.restore_backup(
                copies, spec, tables=["shop.orders"], rename={"shop.orders": "orders_restored"}
            )
        with pytest.raises(RestoreError, match="already exist"):
            core.restore_backup(copies, spec, tables=["shop.orders"], allow_source_target=True)
        with db.session(spec) as conn:
            db.execute(conn, "DELETE FROM shop.orders_restored WHERE id < 100")
        result = core.restore_backup(
            copies, spec, tables=["shop.orders"], rename={"shop.orders": "orders_restored"}, overwrite=True
        )
        with db.session(spec) as conn:
            assert _checksum(conn, "shop.orders_restored") == sums["orders"]
            assert {t: _checksum(conn, f"shop.{t}") for t in ("customers", "orders")} == live

        # 3. a table with its trigger and FKs, under its own name, into another server's new
        # database; a pattern; gzip
        result = core.restore_backup(
            _copies([b["gz"]], b["gzip"].backup_id),
            spec,
            tables=["shop.order_*", "shop.aud*"],
            rename={"shop": "shop2"},
        )
        assert result.databases == {"shop.audit": "shop2.audit", "shop.order_items": "shop2.order_items"}
        result = core.restore_backup(
            _copies([b["local"]], plain.backup_id), spec, tables=["shop.orders"], rename={"shop": "shop2"}
        )
        with db.session(spec) as conn:
            assert _tables(conn, "shop2") == ["audit", "order_items", "orders"]
            assert _checksum(conn, "shop2.order_items") == sums["order_items"]
            assert _checksum(conn, "shop2.orders") == sums["orders"]
            ddl = db.query(conn, "SHOW CREATE TABLE shop2.orders")[0]["Create Table"]
            assert "CONSTRAINT `fk_orders_customer` FOREIGN KEY" in ddl  # original DDL: name kept
        assert any("triggers of shop.orders were not restored" in w for w in result.warnings)  # other db

        # 4. under its own name and database: the trigger comes with it
        fresh = sandbox.start_server(
            sandbox_root, f"ttg2-{server_build.name}", server_id=1813, build=server_build
        )
        try:
            # a load that fails half-way (its trigger's name is taken on the target): the partly
            # loaded table is dropped, the other table is untouched; replacing an existing table,
            # the error says its old rows are gone
            with db.session(fresh.spec()) as conn:
                db.execute(conn, "CREATE DATABASE shop")
                db.execute(conn, "CREATE TABLE shop.x (id INT)")
                db.execute(
                    conn, "CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.x FOR EACH ROW SET @a = 1"
                )
            local_copies = _copies([b["local"]], plain.backup_id)
            with pytest.raises(ProcessError, match=r"loading table shop\.orders as shop\.orders"):
                core.restore_backup(local_copies, fresh.spec(), tables=["shop.orders"])
            with db.session(fresh.spec()) as conn:
                assert _tables(conn, "shop") == ["x"]
                db.execute(conn, "CREATE TABLE shop.orders (id INT)")
            with pytest.raises(ProcessError, match="old rows are gone"):
                core.restore_backup(local_copies, fresh.spec(), tables=["shop.orders"], overwrite=True)
            with db.session(fresh.spec()) as conn:
                assert _tables(conn, "shop") == ["x"]
                db.execute(conn, "DROP TABLE shop.x")
            result = core.restore_backup(
                _copies([b["local"]], plain.backup_id), fresh.spec(), tables=["shop.orders", "shop.audit"]
            )
            assert not result.warnings
            with db.session(fresh.spec()) as conn:
                assert _tables(conn, "shop") == ["audit", "orders"]
                names = [
                    r["n"]
                    for r in db.query(
                        conn,
                        "SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA <> 'sys'",
                    )
                ]
                assert names == ["orders_ai"]
                db.execute(conn, "SET FOREIGN_KEY_CHECKS=0")
                db.execute(conn, "INSERT INTO shop.orders VALUES (100000, 1, 'new')")
                assert db.scalar(conn, "SELECT COUNT(*) FROM shop.audit WHERE what='order 100000'") == 1
        finally:
            sandbox.stop_server(fresh)

        # 5. encrypted: ranged reads of whole chunks, each authenticated; the key is required
        enc_copies = _copies([b["enc"]], b["encrypted"].backup_id)
        with pytest.raises(RestoreError, match="encrypted with key id"):
            core.restore_backup(enc_copies, spec, tables=["shop.customers"], rename={"shop": "shop_enc"})
        result = core.restore_backup(
            enc_copies,
            spec,
            RunContext(keyring=Keyring(KEY)),
            tables=["shop.customers", "shop.odd*"],
            rename={"shop": "shop_enc"},
        )
        with db.session(spec) as conn:
            assert _checksum(conn, "shop_enc.customers") == sums["customers"]
            assert _tables(conn, "shop_enc") == ["customers", "odd `name` ü"]

        # 6. a corrupt section at the first location: that table falls back to the next one,
        # the reason is reported and logged
        bad = Location("bad", f"file://{tmp_path}/bad")
        src, dst = Store(b["local"]), Store(bad)
        directory = layout.backup_dir(plain.server, plain.backup_id)
        data_section = next(t for t in f.table_index if t.table == "order_items").data
        assert data_section is not None
        for key in src.list_keys(directory):
            content = bytearray(src.read_bytes(key))
            if key.endswith("/" + f.path):
                content[data_section.offset + data_section.length // 2] ^= 0x01
            dst.put_bytes(bytes(content), key)
        caplog.set_level("INFO")
        log.clear()
        result = core.restore_backup(
            _copies([bad, b["local"]], plain.backup_id),
            spec,
            RunContext(reporter=Reporter.from_log(log.append)),
            tables=["shop.order_items", "shop.customers"],
            rename={"shop": "shop3"},
        )
        assert result.locations_used == {"shop.order_items": "local", "shop.customers": "bad"}
        assert len(result.problems) == 1 and "data section of shop.order_items" in result.problems[0]
        assert "sha256" in result.problems[0] and "'bad'" in result.problems[0]
        assert any("unusable for table shop.order_items" in line and "sha256" in line for line in log)
        with db.session(spec) as conn:
            assert _checksum(conn, "shop3.order_items") == sums["order_items"]

        # 7. bad input: clear early errors, nothing changed
        for kwargs, message in (
            ({"tables": ["shop.nope*"]}, "matches 'nope\\*'"),
            ({"tables": ["shop"]}, "not 'database.table'"),
            ({"tables": ["nodb.t"]}, "has no database 'nodb'"),
            ({"tables": ["shop.big_orders"]}, "views, routines and events"),
            ({"tables": ["shop.orders"], "rename": {"shop.customers": "x"}}, "not among the tables"),
            ({"tables": ["shop.orders"], "databases": ["shop"]}, "either databases"),
        ):
            with pytest.raises(ConfigError, match=message):
                core.restore_backup(copies, spec, **kwargs)
        # a backup made before the index: a clear refusal naming the way out
        old = BackupManifest.from_json(plain.to_json().replace('"table_index"', '"old_field"'))
        with pytest.raises(ConfigError, match=r"without a table index.*databases=\['shop'\]"):
            core.restore_backup([(b["local"], old)], spec, tables=["shop.orders"], rename={"shop": "x"})
        with db.session(spec) as conn:
            assert {t: _checksum(conn, f"shop.{t}") for t in ("customers", "orders")} == live
            assert "x" not in db.user_databases(conn)
    finally:
        sandbox.stop_server(target)


def test_single_table_restore_defers_keys_ddl_exact(shop_backups: Any, server_build: Any) -> None:
    """The single-table path loads through the parallel loader: secondary keys and foreign keys
    are added after the rows (the loader's stats say which tables), and the restored SHOW CREATE
    TABLE is the source's exactly, and the same as loading the DDL as dumped (``workers=0``:
    one connection, keys in the CREATE TABLE)."""
    b = shop_backups
    spec = b["server"].spec()  # the source itself, under another database name
    copies = _copies([b["local"]], b["plain"].backup_id)
    tables = ["customers", "orders", "order_items"]

    def ddl(conn: db.Connection, database: str) -> dict[str, str]:
        out = {t: str(db.query(conn, f"SHOW CREATE TABLE {database}.{t}")[0]["Create Table"]) for t in tables}
        if server_build.flavor.value == "mysql":
            # MySQL prints a column whose collation it was given (a dump's `COLLATE x`) as
            # `CHARACTER SET cs COLLATE x` from then on, whoever runs the CREATE TABLE (the
            # plain client too): the same column, spelled two ways
            out = {t: re.sub(r" CHARACTER SET \w+ COLLATE ", " COLLATE ", d) for t, d in out.items()}
        return out

    with db.session(spec) as conn:
        source = ddl(conn, "shop")
    restored = {}
    for workers, deferred in (
        (2, ["shop_ddl.customers", "shop_ddl.order_items", "shop_ddl.orders"]),
        (0, []),
    ):
        log: list[str] = []
        result = core.restore_backup(
            copies,
            spec,
            RunContext(reporter=Reporter.from_log(log.append)),
            tables=[f"shop.{t}" for t in tables],
            rename={"shop": "shop_ddl"},
            load=core.LoadOptions(workers=workers),
        )
        try:
            assert sorted(result.keys_deferred) == deferred, log
            assert any("deferred key(s) added" in ln for ln in log) == bool(deferred), log
            with db.session(spec) as conn:
                restored[workers] = ddl(conn, "shop_ddl")
                for t in tables:
                    assert _checksum(conn, f"shop_ddl.{t}") == b["sums"][t]
        finally:
            with db.session(spec) as conn:
                db.execute(conn, "DROP DATABASE IF EXISTS shop_ddl")
    assert restored[2] == restored[0] == source


def test_table_sections_of_every_build(fresh_server: Any, server_build: Any) -> None:
    """The dump of every build's own client (MySQL 9.7's mysqldump too) splits into each
    table's structure, data and trigger sections, exactly."""
    from mysqlops.adapters import process
    from mysqlops.streams.dumpscan import DumpScanner
    from mysqlops.tools.client import client_option_file, dump_argv

    with db.session(fresh_server.spec()) as conn:
        _make_shop(conn, rows=200)
    with process.Pipeline(
        [dump_argv(server_build.client_argv("dump"), "shop")],
        credentials=client_option_file(fresh_server.spec()),
        stdout=process.PIPE,
        name="dump",
    ) as pipe:
        data = pipe.stdout_pipe.read()
        pipe.wait()
    out: list[bytes] = []
    marks: list[tuple[str, str | None, int]] = []
    scanner = DumpScanner(
        lambda _d, piece: out.append(bytes(piece)), lambda k, t: marks.append((k, t, sum(map(len, out))))
    )
    for i in range(0, len(data), 4096):
        scanner.feed(data[i : i + 4096])
    scanner.finish()
    assert b"".join(out) == data
    bounds = [m[2] for m in marks] + [len(data)]
    sections = {(k, t): data[bounds[i] : bounds[i + 1]] for i, (k, t, _o) in enumerate(marks)}
    tables = sorted({t for _k, t in sections if t is not None})
    assert tables == ["audit", "customers", "odd `name` ü", "order_items", "orders"]
    for t in tables:
        quoted = t.replace("`", "``").encode()
        assert sections[("structure", t)].startswith(b"--\n-- Table structure for table `" + quoted + b"`")
        assert b"CREATE TABLE `" + quoted + b"`" in sections[("structure", t)]
        assert sections[("data", t)].startswith(b"--\n-- Dumping data for table `" + quoted + b"`")
        assert sections[("data", t)].count(b"INSERT INTO `" + quoted + b"` VALUES") >= 1
    trig = sections[("triggers", "orders")]
    assert b"orders_ai" in trig and b"CREATE TABLE" not in trig and b"INSERT INTO `" not in trig
    assert [k for k, t in sections if t is None] and all(
        ("triggers", t) not in sections for t in tables if t != "orders"
    )
