"""One contract, every backend: local files and a real S3 endpoint (moto server over HTTP)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from datetime import timedelta
from typing import Any

import pytest

from mysqlops.adapters import writers
from mysqlops.adapters.storage import Store
from mysqlops.errors import IntegrityError, ObjectExists, StorageError
from mysqlops.model import Location

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> Store:
    location: Location = request.getfixturevalue(f"{request.param}_location")
    return Store(location, retries=2, backoff=0.05)


def _file(tmp_path: os.PathLike[str], data: bytes) -> str:
    path = os.path.join(os.fspath(tmp_path), "staged.bin")
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def test_put_verify_list_read_delete(store: Store, tmp_path: os.PathLike[str]) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    obj = store.put_file(
        _file(tmp_path, data), "srv/full/x/db.sql.zst", sha256=hashlib.sha256(data).hexdigest()
    )
    assert obj.size == len(data) and obj.sha256 == hashlib.sha256(data).hexdigest()
    assert store.list_keys("srv") == ["srv/full/x/db.sql.zst"]
    with store.open_read("srv/full/x/db.sql.zst") as fh:
        assert fh.read() == data
    store.delete("srv/full/x/db.sql.zst")
    assert store.list_keys("srv") == []


def test_read_range(store: Store) -> None:
    """Ranged reads (a single table's sections): exact bytes, or a clear error past the end."""
    data = os.urandom(1024 * 1024 + 5)
    store.put_bytes(data, "srv/full/x/db.sql.zst")
    for start, end in ((0, 1), (7, 1000), (500_000, 1024 * 1024 + 5), (1024 * 1024 + 4, 1024 * 1024 + 5)):
        assert store.read_range("srv/full/x/db.sql.zst", start, end) == data[start:end]
    with pytest.raises(StorageError, match="shorter than the manifest says"):
        store.read_range("srv/full/x/db.sql.zst", 1024 * 1024, 1024 * 1024 + 10)
    with pytest.raises(StorageError):
        store.read_range("srv/full/x/missing.sql.zst", 0, 10)


def test_never_overwrites(store: Store) -> None:
    store.put_bytes(b"first", "k/manifest.json")
    with pytest.raises(ObjectExists):
        store.put_bytes(b"second", "k/manifest.json")
    assert store.read_bytes("k/manifest.json") == b"first"


def test_failed_write_publishes_nothing(store: Store, tmp_path: os.PathLike[str]) -> None:
    class Exploding(io.RawIOBase):
        def __init__(self) -> None:
            self.n = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            self.n += 1
            if self.n > 2:
                raise OSError("disk went away")
            buffer[: 1 << 20] = b"x" * (1 << 20)
            return 1 << 20

    with pytest.raises(StorageError):
        store.put_from("k/data.bin", Exploding)
    assert store.list_keys("k") == []
    assert not store.exists("k/data.bin")


def test_abandoned_before_commit_leaves_nothing(store: Store) -> None:
    """``before_commit`` sees every byte written, and raising there publishes nothing (a backup
    whose dump failed after its upload had started)."""
    data = os.urandom(9 * 1024 * 1024)  # more than one S3 part: a real multipart upload
    seen: list[str] = []

    def refuse(digest: Any) -> None:
        seen.append(digest.hexdigest())
        raise ObjectExists("the dump failed: abandon")  # not transient: no retry

    with pytest.raises(ObjectExists):
        store.put_from("k/big.bin", lambda: io.BytesIO(data), before_commit=refuse)
    assert seen == [hashlib.sha256(data).hexdigest()]
    assert store.list_keys("k") == [] and not store.exists("k/big.bin")
    if store.location.protocol == "s3":
        bucket = store.root.partition("/")[0]
        assert store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


def test_local_location_tree_is_private(local_location: Location) -> None:
    store = Store(local_location)
    store.put_bytes(b"secret rows", "srv/full/20260101T000000Z/db.sql.zst")
    root = store.root
    for directory, _, files in os.walk(root):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory  # the root too: made here
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600, name


def test_verify_detects_corruption_and_truncation(store: Store) -> None:
    store.put_bytes(b"hello world", "k/f")
    good = hashlib.sha256(b"hello world").hexdigest()
    store.verify("k/f", good, 11)
    with pytest.raises(IntegrityError, match="truncated"):
        store.verify("k/f", good, 12)
    with pytest.raises(IntegrityError, match="sha256"):
        store.verify("k/f", hashlib.sha256(b"other").hexdigest())


def test_keys_cannot_escape_prefix(store: Store) -> None:
    for key in ("../evil", "a/../../evil", "/abs"):
        with pytest.raises(StorageError, match="escape"):
            store.path(key)


def test_write_probe(store: Store) -> None:
    store.check_writable()
    assert [k for k in store.list_keys() if ".tmp-" in k] == []


def test_missing_bucket_is_clear(moto_server: str) -> None:
    loc = Location(
        "s3",
        "s3://no-such-bucket-here/x",
        {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": moto_server}},
    )
    with pytest.raises(StorageError, match="does not exist"):
        Store(loc, retries=1).check_writable()


def test_read_only_directory_is_clear(tmp_path: os.PathLike[str]) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions; use a read-only bind-free alternative: a file in the way
        blocker = os.path.join(os.fspath(tmp_path), "file")
        open(blocker, "w").close()
        loc = Location("ro", f"file://{blocker}/sub")
    else:
        ro = os.path.join(os.fspath(tmp_path), "ro")
        os.makedirs(ro)
        os.chmod(ro, 0o500)
        loc = Location("ro", f"file://{ro}")
    with pytest.raises(StorageError, match="location 'ro'"):
        Store(loc, retries=1).check_writable()


def test_stale_multipart_uploads_are_aborted(s3_location: Location) -> None:
    store = Store(s3_location)
    bucket, _, prefix = store.root.partition("/")
    store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=f"{prefix}/srv/full/x/big.sql.zst")
    # moto reports a fixed 2010 "Initiated" time: a 100-year grace keeps it, 0 aborts it
    assert store.abort_stale_uploads(timedelta(days=36500)) == []
    aborted = store.abort_stale_uploads(timedelta(0))
    assert aborted == [f"{prefix}/srv/full/x/big.sql.zst"]
    assert store.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


def test_s3_write_once_is_a_conditional_put(s3_location: Location) -> None:
    """Two writers that both passed the existence check: the second PUT is refused."""
    a, b = Store(s3_location), Store(s3_location)
    a.put_bytes(b"first", "race/k")
    with pytest.raises(ObjectExists):
        writer = writers._S3Writer(s3_location.name, b.fs, b.path("race/k"), 8 * 1024 * 1024)
        writer.write(b"second")
        writer.commit()
    assert b.read_bytes("race/k") == b"first"
