"""Fetching a copy from a local location links the stored file into staging instead of copying
it (no second copy of the backup on disk), with the same size and sha256 checks."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

from mysqlops.adapters.storage import Store
from mysqlops.errors import IntegrityError
from mysqlops.manifest import BackupFile
from mysqlops.model import Location
from mysqlops.restore.fetch import fetch_verified

KEY = "db1/full/20261130T000000Z-abcdef/shop.sql.zst"


def _stored(tmp_path: pathlib.Path, data: bytes) -> tuple[Store, BackupFile, pathlib.Path]:
    root = tmp_path / "location"
    path = root / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    entry = BackupFile(
        path="shop.sql.zst",
        database="shop",
        raw_bytes=len(data),
        raw_sha256="r",
        stored_bytes=len(data),
        stored_sha256=hashlib.sha256(data).hexdigest(),
    )
    return Store(Location("local", f"file://{root}")), entry, path


def test_local_copy_is_linked_not_copied(tmp_path: pathlib.Path) -> None:
    store, entry, stored = _stored(tmp_path, b"x" * 100_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    dest = staging / "shop.sql.zst"
    fetch_verified(store, KEY, entry, str(dest))
    assert os.stat(dest).st_ino == os.stat(stored).st_ino  # one file on disk, two names
    os.unlink(dest)  # staging cleanup leaves the backup alone
    assert stored.read_bytes() == b"x" * 100_000


def test_a_corrupt_local_copy_is_refused_and_only_the_link_removed(tmp_path: pathlib.Path) -> None:
    store, entry, stored = _stored(tmp_path, b"y" * 1000)
    stored.write_bytes(b"z" * 1000)  # same size, other bytes
    dest = tmp_path / "shop.sql.zst"
    with pytest.raises(IntegrityError, match="sha256"):
        fetch_verified(store, KEY, entry, str(dest))
    assert not dest.exists() and stored.exists()


def test_an_existing_staging_name_is_never_reused(tmp_path: pathlib.Path) -> None:
    store, entry, _ = _stored(tmp_path, b"q" * 10)
    dest = tmp_path / "taken"
    dest.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        fetch_verified(store, KEY, entry, str(dest))
    assert dest.read_bytes() == b"keep"
