"""Hostile storage and corrupt newest backups, through the real flows (Prefect harness),
real sandbox servers, a real local directory and a real S3 endpoint (moto over HTTP).

* A location is written by whoever holds its keys (the README recommends a write-only key
  for backups): a manifest found there must never make restore, the restore test, retention,
  the report or the catalog read, write or delete anything outside the backup's own prefix
  or the staging directory, and a symbolic link planted at a local location is never followed.
* Retention counts only backups a restore test proved: with the newest backups corrupt at
  every location it keeps the newest good one everywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import backup as bk
from mysqlops import catalog, layout
from mysqlops import restore as core
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.binlog import archive as binlog_archive
from mysqlops.errors import RestoreError, UnsafePath
from mysqlops.manifest import BackupFile, BackupManifest
from mysqlops.model import Location
from mysqlops.streams.compression import codec
from tests.jobs import job

pytestmark = [pytest.mark.flows, pytest.mark.integration]
SERVER = "dsrc"
_blocks = itertools.count()


@dataclasses.dataclass
class Env:
    source: sandbox.SandboxServer
    target: sandbox.SandboxServer
    moto: str
    tmp: pytest.TempPathFactory

    def locations(self, tag: str) -> tuple[str, Location, str, Location]:
        """A fresh local directory and a fresh S3 prefix, saved as BackupLocation blocks."""
        from blocks import BackupLocation

        n = next(_blocks)
        local_url = f"file://{self.tmp.mktemp(f'{tag}-loc')}/b"
        s3_url = f"s3://data-safety/{tag}-{n}"
        BackupLocation(url=local_url).save(f"{tag}-local-{n}", overwrite=True)
        BackupLocation(
            url=s3_url,
            key=SecretStr("testing"),
            secret=SecretStr("testing"),
            endpoint_url=self.moto,
            offsite=True,
        ).save(f"{tag}-s3-{n}", overwrite=True)
        local = Location(f"{tag}-local-{n}", local_url)
        s3 = Location(
            f"{tag}-s3-{n}",
            s3_url,
            {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": self.moto}},
            offsite=True,
        )
        return local.name, local, s3.name, s3


@pytest.fixture(scope="module")
def env(sandbox_root: str, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import boto3

    from blocks import MySQLServer

    source = sandbox.start_server(sandbox_root, SERVER, server_id=711)
    target = sandbox.start_server(sandbox_root, "dtgt", server_id=712)
    try:
        with db.session(source.spec()) as conn:
            db.execute(conn, "CREATE DATABASE simple")
            db.execute(conn, "CREATE TABLE simple.t (id INT PRIMARY KEY, v VARCHAR(10))")
            db.execute(conn, "INSERT INTO simple.t VALUES (1, 'a'), (2, 'b')")
        boto3.client(
            "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
        ).create_bucket(Bucket="data-safety")
        MySQLServer(
            port=target.port, user="root", password=SecretStr(target.root_password), server_name="dtgt"
        ).save("ds-target", overwrite=True)
        yield Env(source, target, moto_server, tmp_path_factory)
    finally:
        sandbox.stop_server(target)
        sandbox.stop_server(source)


def _backup(env: Env, *locations: Location) -> BackupManifest:
    result = bk.run_backup(*job(env.source.spec(name=SERVER), list(locations), codec("zstd")))
    assert result.ok
    return result.manifest


def _raw_put(location: Location, key: str, data: bytes) -> None:
    """Write an object the way an attacker holding the location's key would: no checks."""
    store = Store(location)
    if store.is_local:
        path = f"{store.root}/{key}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
    else:
        store.fs.pipe_file(f"{store.root}/{key}", data)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _certificates(location: Location, server: str, backup_id: str) -> list[str]:
    store = Store(location)
    prefix = store.root + "/" + layout.backup_dir(server, backup_id)
    try:
        found = store.fs.find(prefix)
    except FileNotFoundError:
        return []
    return [k for k in found if layout.CERTIFICATE_PREFIX in k]


def _target_databases(env: Env) -> list[str]:
    with db.session(env.target.spec()) as conn:
        return db.user_databases(conn)


def _hostile(
    good: BackupManifest, backup_id: str, files: tuple[BackupFile, ...], **changes: Any
) -> BackupManifest:
    return dataclasses.replace(good, backup_id=backup_id, files=files, **changes)


def _state_text(state: Any) -> str:
    return str(state.result(raise_on_failure=False))


def _readers_refuse(
    env: Env, names: list[str], locations: list[Location], hostile_ids: list[str], victim: Path, good_id: str
) -> None:
    """restore, restore-test, retention, report, list-backups and the catalog over locations
    holding hostile copies: none of them uses a hostile copy, each says why, nothing outside."""
    from flows.backup import list_backups
    from flows.report import backup_report
    from flows.restore import restore, restore_test
    from flows.retention import apply_retention

    before = _tree(victim)
    scans = catalog.scan(locations)
    usable = {m.backup_id for s in scans for m in s.backups}
    unusable = {u.backup_id for s in scans for u in s.unusable}
    assert good_id in usable
    assert set(hostile_ids) <= unusable and not set(hostile_ids) & usable
    for backup_id in hostile_ids:
        state = restore_test(locations=names, servers=[SERVER], backup_id=backup_id, return_state=True)
        assert state.is_failed(), backup_id
        assert "unusable copy" in _state_text(state)
        for location in locations:
            assert _certificates(location, SERVER, backup_id) == []
        state = restore(
            target="ds-target", locations=names, backup_id=backup_id, server=SERVER, return_state=True
        )
        assert state.is_failed() and "not found" in _state_text(state)
    assert _target_databases(env) == []
    state = apply_retention(
        locations=names, policy={"keep_last": 1}, apply=True, grace_hours=0, return_state=True
    )
    assert state.is_failed() and "nothing is deleted" in _state_text(state)
    assert {m.backup_id for s in catalog.scan(locations) for m in s.backups} == usable  # nothing deleted
    frames = backup_report(locations=names)
    assert set(frames["backups"]["backup_id"]) == usable
    rows = list_backups(locations=names)
    shown = {r["backup_id"]: r for r in rows}
    for backup_id in hostile_ids:
        assert shown[backup_id]["status"].startswith("unusable: ") and shown[backup_id]["proven"] is False
    assert _tree(victim) == before


def test_hostile_manifest_absolute_path(env: Env, tmp_path: Path) -> None:
    """The review's attack: ``files[].path`` absolute, the object planted at
    ``<id>//<absolute path>``, a second entry naming an existing file with a wrong sha256."""
    names = []
    locations = []
    local_name, local, s3_name, s3 = env.locations("abs")
    good = _backup(env, local, s3)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "cron.job").write_bytes(b"precious\n")
    planted = str(victim / "planted.job")
    payload = b"* * * * * root touch /tmp/pwned\n"
    hostile_ids = []
    for name, location in ((local_name, local), (s3_name, s3)):
        names.append(name)
        locations.append(location)
        backup_id = layout.new_backup_id()
        hostile_ids.append(backup_id)
        directory = layout.backup_dir(SERVER, backup_id)
        real = good.files[0]
        files = (
            real,
            dataclasses.replace(
                real,
                path=planted,
                stored_bytes=len(payload),
                stored_sha256=hashlib.sha256(payload).hexdigest(),
            ),
            dataclasses.replace(real, path=str(victim / "cron.job"), stored_sha256="0" * 64),
        )
        manifest = _hostile(good, backup_id, files)
        _raw_put(
            location,
            f"{directory}/{real.path}",
            Store(location).read_bytes(f"{layout.backup_dir(SERVER, good.backup_id)}/{real.path}"),
        )
        _raw_put(location, f"{directory}/{planted}", payload)  # <id>//<absolute path>
        _raw_put(location, f"{directory}/{layout.MANIFEST_NAME}", manifest.to_json().encode())
        with pytest.raises(UnsafePath, match="absolute"):
            BackupManifest.from_json(manifest.to_json())
        # the core refuses the manifest object itself, before any server or file is touched
        with pytest.raises(UnsafePath, match="absolute"):
            core.restore_backup([(location, manifest)], env.target.spec(), databases=["simple"])
        with pytest.raises(UnsafePath, match="absolute"):
            core.restore_test_copy(location, manifest, sandbox_dir=str(tmp_path / "rt"))
        assert _certificates(location, SERVER, backup_id) == []
        assert sorted(os.listdir(victim)) == ["cron.job"]
    _readers_refuse(env, names, locations, hostile_ids, victim, good.backup_id)
    assert sorted(os.listdir(victim)) == ["cron.job"] and (victim / "cron.job").read_bytes() == b"precious\n"


def test_hostile_manifest_traversal_and_symlinks(env: Env, tmp_path: Path) -> None:
    """``..`` in a file name, duplicate file names, a server name with '/', a manifest in
    another backup's directory, and symbolic links planted at a local location (a data file,
    a whole backup directory, the binlog directory, a server directory a backup writes to)."""

    local_name, local, s3_name, s3 = env.locations("trav")
    good = _backup(env, local, s3)
    good_dir = layout.backup_dir(SERVER, good.backup_id)
    real = good.files[0]
    data = Store(local).read_bytes(f"{good_dir}/{real.path}")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_bytes(b"precious\n")
    hostile_ids: list[str] = []

    def plant(location: Location, manifest: BackupManifest, files: dict[str, bytes]) -> None:
        directory = layout.backup_dir(SERVER, manifest.backup_id)
        for name, content in files.items():
            _raw_put(location, f"{directory}/{name}", content)
        _raw_put(location, f"{directory}/{layout.MANIFEST_NAME}", manifest.to_json().encode())
        hostile_ids.append(manifest.backup_id)

    for location in (local, s3):
        # 1. '..' in a file name (the object sits where the traversal would land)
        m = _hostile(
            good, layout.new_backup_id(), (dataclasses.replace(real, path="../../../victim/keep.txt"),)
        )
        plant(location, m, {"x": data})
        with pytest.raises(UnsafePath, match=r"'\.\.' segment"):
            BackupManifest.from_json(m.to_json())
        # 2. one file name twice (the second entry would overwrite/delete the first one's download)
        m = _hostile(good, layout.new_backup_id(), (real, dataclasses.replace(real, stored_sha256="0" * 64)))
        plant(location, m, {real.path: data})
        with pytest.raises(UnsafePath, match="twice"):
            BackupManifest.from_json(m.to_json())
        # 3. a server name with '/' (found in this server's directory)
        m = _hostile(good, layout.new_backup_id(), good.files, server=f"{SERVER}/../../victim")
        directory = layout.backup_dir(SERVER, m.backup_id)
        _raw_put(location, f"{directory}/{real.path}", data)
        _raw_put(location, f"{directory}/{layout.MANIFEST_NAME}", m.to_json().encode())
        hostile_ids.append(m.backup_id)
        with pytest.raises(UnsafePath, match="server name"):
            BackupManifest.from_json(m.to_json())
        # 4. a valid manifest of another backup copied into a new directory
        other = layout.new_backup_id()
        _raw_put(location, f"{layout.backup_dir(SERVER, other)}/{real.path}", data)
        _raw_put(
            location, f"{layout.backup_dir(SERVER, other)}/{layout.MANIFEST_NAME}", good.to_json().encode()
        )
        hostile_ids.append(other)

    # 5. symbolic links at the local location
    root = Path(Store(local).root)
    # a data file that is a link to a file outside (holding the right bytes: following it would "work")
    (victim / "copy.sql.zst").write_bytes(data)
    linked = _hostile(good, layout.new_backup_id(), good.files)
    linked_dir = root / layout.backup_dir(SERVER, linked.backup_id)
    linked_dir.mkdir(parents=True)
    (linked_dir / layout.MANIFEST_NAME).write_text(linked.to_json())
    (linked_dir / real.path).symlink_to(victim / "copy.sql.zst")
    hostile_ids.append(linked.backup_id)
    # a whole (old) backup directory that is a link to a directory outside holding a valid backup
    outside = victim / "old-backup"
    outside.mkdir()
    old = _hostile(
        good, "20200101T000000Z-01d000", good.files, finished_at=good.finished_at.replace(year=2020)
    )
    (outside / layout.MANIFEST_NAME).write_text(old.to_json())
    (outside / real.path).write_bytes(data)
    (root / layout.backup_dir(SERVER, old.backup_id)).symlink_to(outside, target_is_directory=True)
    hostile_ids.append(old.backup_id)
    # the binlog directory a link to a directory outside
    (victim / "binlogs").mkdir()
    (victim / "binlogs" / "mysql-bin.000001.json").write_text("{}")
    (root / SERVER / layout.BINLOGS_DIR).symlink_to(victim / "binlogs", target_is_directory=True)

    # the core refuses to read through the links, whatever a manifest says
    with pytest.raises(RestoreError, match="symbolic link"):
        core.restore_backup([(local, linked)], env.target.spec(), databases=["simple"])
    with pytest.raises(UnsafePath, match="symbolic link"):
        binlog_archive.list_archived(Store(local), SERVER)
    with pytest.raises(UnsafePath, match="symbolic link"):
        Store(local).read_bytes(f"{layout.backup_dir(SERVER, old.backup_id)}/{layout.MANIFEST_NAME}")
    # and to write through one: a server directory that is a link
    (root / "other").symlink_to(victim, target_is_directory=True)
    with pytest.raises(UnsafePath, match="symbolic link"):
        Store(local).put_bytes(b"x", f"other/full/{layout.new_backup_id()}/{layout.MANIFEST_NAME}")
    (root / "other").unlink()
    # and to delete through one
    with pytest.raises(UnsafePath, match="symbolic link"):
        Store(local).delete(f"{layout.backup_dir(SERVER, old.backup_id)}/{real.path}")
    assert (outside / real.path).read_bytes() == data

    scan = catalog.scan_location(local)
    refused = " ".join(scan.errors)
    assert "refused entry" in refused and f"{SERVER}/{layout.BINLOGS_DIR}" in refused
    assert any(u.backup_id == linked.backup_id and "refused entries" in u.reason for u in scan.unusable)
    assert old.backup_id not in {m.backup_id for m in scan.backups}
    _readers_refuse(env, [local_name, s3_name], [local, s3], hostile_ids, victim, good.backup_id)
    assert (outside / real.path).read_bytes() == data and (victim / "keep.txt").read_bytes() == b"precious\n"
    assert (victim / "copy.sql.zst").read_bytes() == data


def test_retention_keeps_newest_proven_backup(env: Env) -> None:
    """The review case: four backups at two locations, the two newest corrupt at both (their
    restore tests FAILED on all four copies). ``keep_last=1, min_redundancy=1, apply=True``
    must keep the newest good backup at every location, not the corrupt newest one."""
    from flows.restore import restore_test
    from flows.retention import apply_retention

    local_name, local, s3_name, s3 = env.locations("ret")
    names, locations = [local_name, s3_name], [local, s3]
    made = [_backup(env, local, s3) for _ in range(4)]
    b1, b2, b3, b4 = (m.backup_id for m in made)

    # a fresh install: no restore test yet, so nothing is proven and nothing is deleted
    state = apply_retention(
        locations=names, policy={"keep_last": 1, "min_redundancy": 1}, apply=True, return_state=True
    )
    assert state.is_failed() and "restore-test" in _state_text(state)
    assert all({m.backup_id for m in s.backups} == {b1, b2, b3, b4} for s in catalog.scan(locations))

    rows = restore_test(locations=names, servers=[SERVER], backup_id=b2)
    assert [r["passed"] for r in rows] == [True, True]
    for manifest in made[2:]:  # corrupt the two newest at both locations
        for location in locations:
            store = Store(location)
            key = f"{layout.backup_dir(SERVER, manifest.backup_id)}/{manifest.files[0].path}"
            flipped = bytearray(store.read_bytes(key))
            flipped[len(flipped) // 2] ^= 0x01
            store.fs.pipe_file(store.path(key), bytes(flipped))
        state = restore_test(
            locations=names, servers=[SERVER], backup_id=manifest.backup_id, return_state=True
        )
        assert state.is_failed()
    verdicts = catalog.verdicts(catalog.scan(locations))
    assert {v.value for (_, _, b), v in verdicts.items() if b in (b3, b4)} == {"failed"}

    outcome = apply_retention(locations=names, policy={"keep_last": 1, "min_redundancy": 1}, apply=True)
    for location in locations:
        scan = catalog.scan_location(location)
        kept = {m.backup_id for m in scan.backups}
        assert b2 in kept, f"{location.name}: the newest proven backup was deleted"
        assert b1 not in kept and outcome[location.name]["deleted"] == [b1]
        store = Store(location)
        good = next(m for m in scan.backups if m.backup_id == b2)
        for f in good.files:  # and it is still intact
            store.verify(f"{layout.backup_dir(SERVER, b2)}/{f.path}", f.stored_sha256, f.stored_bytes)
