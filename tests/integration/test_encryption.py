"""Encryption at rest of binlog archives and physical backups, on real servers and tools:
mariadb-binlog / mariabackup / mbstream, a local location and moto S3.

Every failure case asserts that nothing was applied to the target (or extracted on disk)."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from mysqlops import backup as backup
from mysqlops import backup as bk
from mysqlops import catalog, layout
from mysqlops import restore as restore
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, sandbox
from mysqlops.adapters.storage import Store
from mysqlops.binlog import archive_binlogs, replay_binlogs
from mysqlops.binlog.archive import list_archived
from mysqlops.errors import EncryptionError, IntegrityError, RestoreError
from mysqlops.manifest import BackupManifest, BinlogManifest
from mysqlops.model import BinlogCoordinates, Location, RecoveryTarget, ServerSpec
from mysqlops.restore import pitr
from mysqlops.runs import RunContext
from mysqlops.streams import crypto
from mysqlops.streams.compression import codec
from mysqlops.streams.crypto import Keyring
from mysqlops.tablesum import table_checksums
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv, mysql_argv

pytestmark = pytest.mark.integration
NONE = codec("none")
ZSTD = codec("zstd", threads=1)


def sql(spec: ServerSpec, *statements: str) -> None:
    with db.session(spec) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def rows(spec: ServerSpec) -> list[int] | None:
    with db.session(spec) as conn:
        if not db.scalar(conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='shop'"):
            return None
        return [int(r["id"]) for r in db.query(conn, "SELECT id FROM shop.t ORDER BY id")]


def copy_location(src: Location, dst: Location) -> None:
    a, b = Store(src), Store(dst)
    for key in a.list_keys():
        b.put_bytes(a.read_bytes(key), key)


def forge_truncated_binlog(location: Location, server: str, m: BinlogManifest, cut: int) -> None:
    """Replace an archived binlog by its truncated ciphertext AND rewrite its manifest to match
    (an attacker who can write both): only decryption can notice."""
    store = Store(location)
    key = f"{layout.binlog_dir(server)}/{m.stored_path}"
    data = store.read_bytes(key)[:-cut]
    store.delete(key)
    store.delete(layout.binlog_manifest_key(server, m.file))
    obj = store.put_bytes(data, key)
    forged = dataclasses.replace(m, stored_bytes=obj.size, stored_sha256=obj.sha256)
    store.put_bytes(forged.to_json().encode(), layout.binlog_manifest_key(server, m.file))


def test_encrypted_binlogs_key_rotation_mixed_chain_and_failures(
    fresh_server: sandbox.SandboxServer,
    sandbox_root: str,
    local_location: Location,
    s3_location: Location,
    tmp_path: Any,
) -> None:
    source = fresh_server.spec()
    locations = [local_location, s3_location]
    old, new = crypto.generate_key(), crypto.generate_key()
    old_id, new_id = crypto.key_id(old), crypto.key_id(new)
    canaries = {2: "plain-canary-0a1b2c", 3: "oldkey-canary-3d4e5f", 4: "newkey-canary-6a7b8c"}
    sql(
        source,
        "CREATE DATABASE shop",
        "CREATE TABLE shop.t (id INT PRIMARY KEY, note VARCHAR(60))",
        "INSERT INTO shop.t VALUES (1, 'base')",
    )
    dump = process.run(
        dump_argv("mariadb-dump", "shop", DumpOptions(position_options=("--master-data=2", "--gtid"))),
        credentials=client_option_file(source),
    ).stdout
    found = re.search(rb"MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)", dump)
    assert found
    start = BinlogCoordinates(found.group(1).decode(), int(found.group(2)))
    stage = str(tmp_path / "stage")
    sql(source, f"INSERT INTO shop.t VALUES (2, '{canaries[2]}')")
    plain = archive_binlogs(source, locations, NONE, RunContext(staging_dir=stage), datetime.now(UTC))
    sql(source, f"INSERT INTO shop.t VALUES (3, '{canaries[3]}')")
    t0 = time.monotonic()
    by_old = archive_binlogs(
        source, locations, NONE, RunContext(staging_dir=stage, keyring=Keyring(old)), datetime.now(UTC)
    )
    assert time.monotonic() - t0 < 30
    sql(source, f"INSERT INTO shop.t VALUES (4, '{canaries[4]}')")
    by_new = archive_binlogs(
        source, locations, ZSTD, RunContext(staging_dir=stage, keyring=Keyring(new)), datetime.now(UTC)
    )
    assert os.stat(stage).st_mode & 0o777 == 0o700 and os.listdir(stage) == []

    # manifests record the key id (never the key); stored bytes are ciphertext
    assert {m.encryption_key_id for m in plain.manifests} == {None}
    assert {m.encryption_key_id for m in by_old.manifests} == {old_id}
    assert {m.encryption_key_id for m in by_new.manifests} == {new_id}
    for location in locations:
        store = Store(location)
        listed = {m.file: m for m in list_archived(store, source.name)}
        assert [listed[f].encryption_key_id for f in sorted(listed)].count(None) == len(plain.files)
        for m in listed.values():
            manifest_text = store.read_bytes(layout.binlog_manifest_key(source.name, m.file))
            for key in (old, new):
                assert key.hex().encode() not in manifest_text
                assert crypto.format_key(key).encode() not in manifest_text
            data = store.read_bytes(f"{layout.binlog_dir(source.name)}/{m.stored_path}")
            if m.encryption_key_id is None:
                continue
            assert data.startswith(crypto.MAGIC)
            assert crypto.peek_key_id(data[: crypto.HEADER_MAX_SIZE]) == m.encryption_key_id
            for canary in canaries.values():
                assert canary.encode() not in data
        # positive control: the same search finds the canary in the plaintext archive
        plain_data = b"".join(
            store.read_bytes(f"{layout.binlog_dir(source.name)}/{m.stored_path}")
            for m in plain.manifests
            if m.location == location.name
        )
        assert canaries[2].encode() in plain_data

    target = sandbox.start_server(sandbox_root, "enctgt", server_id=861)
    try:
        spec = target.spec()
        process.run(mysql_argv("mariadb"), credentials=client_option_file(spec), input=dump)
        assert rows(spec) == [1]
        stores = [Store(loc) for loc in locations]
        # no keys, one key missing, a wrong key: a clear error naming the key id, nothing applied
        with pytest.raises(RestoreError) as info:
            replay_binlogs(spec, stores, source.name, start, staging_dir=stage)
        assert old_id in str(info.value) and new_id in str(info.value)
        with pytest.raises(RestoreError) as info:
            replay_binlogs(spec, stores, source.name, start, staging_dir=stage, keyring=crypto.Keyring(new))
        assert f"key id {old_id}" in str(info.value) and f"key id {new_id}" not in str(info.value)
        wrong = crypto.Keyring(crypto.generate_key())
        with pytest.raises(RestoreError, match=old_id):
            replay_binlogs(spec, stores, source.name, start, staging_dir=stage, keyring=wrong)
        assert rows(spec) == [1]

        # a truncated ciphertext whose manifest was forged to match: decryption catches it
        tampered = Location("tampered", f"file://{tmp_path}/tampered")
        copy_location(local_location, tampered)
        newest = max(by_new.manifests, key=lambda m: m.sequence)
        forge_truncated_binlog(tampered, source.name, newest, cut=20)
        ring = crypto.Keyring(new, old=[old])
        with pytest.raises(IntegrityError, match=r"cannot be decrypted.*truncated"):
            replay_binlogs(spec, [Store(tampered)], source.name, start, staging_dir=stage, keyring=ring)
        assert rows(spec) == [1] and os.listdir(stage) == []

        # rotation: both keys in the ring read the whole mixed chain; the tampered copy is skipped
        result = replay_binlogs(
            spec, [Store(tampered), *stores], source.name, start, staging_dir=stage, keyring=ring
        )
        assert rows(spec) == [1, 2, 3, 4]
        assert result.key_ids == (old_id, new_id)
        assert any(c.startswith(f"tampered: {newest.file}") for c in result.skipped_copies)
        assert result.sources[newest.file] == "local"
        with db.session(spec) as conn:
            assert db.scalar(conn, "SELECT note FROM shop.t WHERE id = 4") == canaries[4]
    finally:
        sandbox.stop_server(target)


def test_encrypted_pitr_checks_every_key_before_touching_the_target(sandbox_root: str, tmp_path: Any) -> None:
    source = sandbox.start_server(sandbox_root, "encpitr", server_id=862)
    target = sandbox.start_server(sandbox_root, "encpitt", server_id=863)
    location = Location("local", f"file://{tmp_path}/b")
    backup_key, binlog_key = crypto.generate_key(), crypto.generate_key()
    try:
        spec = source.spec()
        sql(
            spec,
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(20))",
            "INSERT INTO shop.t (note) VALUES ('a'), ('b')",
        )
        first = bk.run_backup(spec, [location], ZSTD, encryption_key=backup_key).manifest
        sql(spec, "INSERT INTO shop.t (note) VALUES ('c')", "UPDATE shop.t SET note = 'B' WHERE id = 2")
        second = bk.run_backup(spec, [location], ZSTD, encryption_key=backup_key).manifest
        sql(spec, "INSERT INTO shop.t (note) VALUES ('after B2')")
        archive_binlogs(
            spec,
            [location],
            ZSTD,
            RunContext(staging_dir=str(tmp_path / "st"), keyring=Keyring(binlog_key)),
            datetime.now(UTC),
        )
        assert second.coordinates is not None and first.encryption_key_id == crypto.key_id(backup_key)
        until = RecoveryTarget.parse(
            until_position=f"{second.coordinates.file}:{second.coordinates.position}"
        )
        assert until is not None
        # the base backup's key is there, the binlogs' key is not: refused before the restore
        with pytest.raises(RestoreError, match=crypto.key_id(binlog_key)):
            pitr.point_in_time_restore(
                [location],
                spec.name,
                target.spec(),
                until,
                backup_id=first.backup_id,
                ctx=RunContext(keyring=crypto.Keyring(backup_key)),
            )
        assert rows(target.spec()) is None  # the base backup was not loaded either
        both = crypto.Keyring(binlog_key, old=[backup_key])
        result = pitr.point_in_time_restore(
            [location],
            spec.name,
            target.spec(),
            until,
            backup_id=first.backup_id,
            ctx=RunContext(keyring=both),
        )
        assert result.replay.key_ids == (crypto.key_id(binlog_key),)
        with db.session(target.spec()) as conn:
            got = [(r["id"], r["note"]) for r in db.query(conn, "SELECT id, note FROM shop.t ORDER BY id")]
        assert got == [(1, "a"), (2, "B"), (3, "c")]
        # the restore test's PITR proof decrypts too, and fails clearly without the binlog key
        checks = pitr.prove_binlog_chain(
            [location], spec.name, sandbox_dir=str(tmp_path / "sb"), ctx=RunContext(keyring=both)
        )
        assert checks and all(c.passed for c in checks), checks
        assert "encrypted binlogs decrypted" in [c.name for c in checks]
        failed = pitr.prove_binlog_chain(
            [location],
            spec.name,
            sandbox_dir=str(tmp_path / "sb2"),
            ctx=RunContext(keyring=crypto.Keyring(backup_key)),
        )
        assert not all(c.passed for c in failed)
        assert any(crypto.key_id(binlog_key) in c.detail for c in failed if not c.passed)
    finally:
        sandbox.stop_server(source)
        sandbox.stop_server(target)


# --------------------------------------------------------------------------- physical
def forge_truncated_backup(src: Location, dst: Location, m: BackupManifest, cut: int) -> None:
    """A copy of physical backup ``m`` at ``dst`` with its stream truncated and the manifest
    rewritten to match the truncated bytes."""
    a, b = Store(src), Store(dst)
    directory = layout.backup_dir(m.server, m.backup_id)
    f = m.files[0]
    data = a.read_bytes(f"{directory}/{f.path}")[:-cut]
    obj = b.put_bytes(data, f"{directory}/{f.path}")
    forged = dataclasses.replace(
        m, location=dst.name, files=(dataclasses.replace(f, stored_bytes=obj.size, stored_sha256=obj.sha256),)
    )
    b.put_bytes(forged.to_json().encode(), f"{directory}/{layout.MANIFEST_NAME}")


def test_encrypted_physical_backup_restore_and_failures(sandbox_root: str, tmp_path: Any) -> None:
    server = sandbox.start_server(sandbox_root, "encphys", server_id=864)
    location = Location("local", f"file://{tmp_path}/b")
    key = crypto.generate_key()
    canary = "physical-canary-9e8d7c"
    try:
        sql(
            server.spec(),
            "CREATE DATABASE shop",
            "CREATE TABLE shop.t (id INT PRIMARY KEY, note VARCHAR(60)) ENGINE=InnoDB",
            f"INSERT INTO shop.t VALUES (1, '{canary}')",
            "INSERT INTO shop.t SELECT seq, REPEAT('x', 50) FROM shop.seq_2_to_2000",
        )
        with db.session(server.spec()) as conn:
            expected = {"shop": table_checksums(conn, "shop")}
        result = backup.run_physical_backup(
            server.spec(), [location], NONE, encryption_key=key, staging_dir=str(tmp_path / "stage")
        )
        assert result.ok
        m = result.manifest
        assert m.encryption_key_id == crypto.key_id(key)
        store = Store(location)
        stored = store.read_bytes(f"{layout.backup_dir(m.server, m.backup_id)}/{m.files[0].path}")
        assert stored.startswith(crypto.MAGIC) and canary.encode() not in stored
        plain = crypto.decrypt_bytes(crypto.Keyring(key), stored)  # positive control: uncompressed
        assert canary.encode() in plain and len(plain) == m.files[0].raw_bytes
        chain = restore.physical_chain(catalog.scan([location]), m.server, m.backup_id)

        # missing / wrong key: refused before anything is fetched or created
        target = str(tmp_path / "restored")
        for ring in (None, crypto.Keyring(crypto.generate_key())):
            with pytest.raises(RestoreError, match=m.encryption_key_id or "?"):
                restore.restore_physical(
                    chain, target, RunContext(staging_dir=str(tmp_path / "st"), keyring=ring)
                )
            assert not os.path.exists(target)
        # truncated ciphertext with a forged manifest: decryption fails, nothing is left behind
        forged = Location("forged", f"file://{tmp_path}/forged")
        forge_truncated_backup(location, forged, m, cut=100)
        forged_chain = restore.physical_chain(catalog.scan([forged]), m.server, m.backup_id)
        with pytest.raises(EncryptionError, match="truncated"):
            restore.restore_physical(
                forged_chain,
                target,
                RunContext(staging_dir=str(tmp_path / "st"), keyring=crypto.Keyring(key)),
            )
        assert not os.path.exists(target)
        # the restore test decrypts with the key (an old key in the ring is fine) and proves the data
        ring = crypto.Keyring(crypto.generate_key(), old=[key])
        test = restore.restore_test_physical(
            chain, RunContext(keyring=ring), expected=expected
        )  # short /tmp path
        assert test.passed, [c for c in test.checks if not c.passed]
        failed = restore.restore_test_physical(chain, expected=expected)
        assert not failed.passed
        assert any(m.encryption_key_id and m.encryption_key_id in c.detail for c in failed.checks)
    finally:
        sandbox.stop_server(server)


def test_adopting_an_existing_encrypted_object_needs_its_key(
    fresh_server: sandbox.SandboxServer, local_location: Location, tmp_path: Any
) -> None:
    spec = fresh_server.spec()
    sql(spec, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")
    key, other = crypto.generate_key(), crypto.generate_key()
    stage = str(tmp_path / "st")
    first = archive_binlogs(
        spec, [local_location], ZSTD, RunContext(staging_dir=stage, keyring=Keyring(key)), datetime.now(UTC)
    )
    store = Store(local_location)
    last = max(first.manifests, key=lambda m: m.sequence)
    data_key = f"{layout.binlog_dir(spec.name)}/{last.stored_path}"
    before = store.read_bytes(data_key)
    store.delete(layout.binlog_manifest_key(spec.name, last.file))  # a run that died before its manifest
    # another key (or none) cannot prove the object is the same binlog: refused, never overwritten
    for wrong in (other, None):
        with pytest.raises(IntegrityError, match=f"key id {crypto.key_id(key)}"):
            archive_binlogs(
                spec,
                [local_location],
                ZSTD,
                RunContext(staging_dir=stage, keyring=Keyring(wrong) if wrong else None),
                datetime.now(UTC),
                rotate=False,
            )
        assert store.read_bytes(data_key) == before
        assert last.file not in [m.file for m in list_archived(store, spec.name)]
    again = archive_binlogs(
        spec,
        [local_location],
        ZSTD,
        RunContext(staging_dir=stage, keyring=Keyring(key)),
        datetime.now(UTC),
        rotate=False,
    )
    assert [(a.file, a.adopted) for a in again.archived] == [(last.file, True)]
    adopted = next(m for m in list_archived(store, spec.name) if m.file == last.file)
    assert adopted.encryption_key_id == crypto.key_id(key) and adopted.stored_sha256 == last.stored_sha256
