"""fsspec locations: write-once publish, read-back verify, list, delete, cleanup.

Contract (the same on every backend, proven by one contract test suite):
- ``put_file``/``put_bytes`` never overwrite an existing object (``ObjectExists``), and a
  failed or interrupted write never leaves a visible object under the final name;
- every stored object is read back and its sha256 compared (``IntegrityError``);
- backend errors are translated here into :class:`StorageError` subclasses whose messages
  name the location and the fix, never a key or secret.

Local files: temp file in the destination directory, fsync, ``os.link`` (fails if the name
exists: atomic and write-once), fsync the directory. S3: the object only becomes visible when
its upload completes; on error the multipart upload is aborted (``discard``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar

import fsspec

from mysqlops.checksum import CHUNK, CountingHash, iter_chunks
from mysqlops.errors import IntegrityError, ObjectExists, StorageError
from mysqlops.ids import TMP_PREFIX
from mysqlops.model import Location

T = TypeVar("T")
_TRANSIENT_NAMES = (
    "Timeout",
    "Throttl",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeTooSkewed",
)


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    seconds: float


def _remaining(src: IO[bytes]) -> int:
    """Bytes left to read in a seekable source (0 when unknown)."""
    try:
        here = src.tell()
        end = src.seek(0, os.SEEK_END)
        src.seek(here)
        return int(end - here)
    except (OSError, ValueError, AttributeError):
        return 0


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ObjectExists, IntegrityError, PermissionError, FileNotFoundError)):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    name = type(exc).__name__ + " " + str(exc)[:200]
    return any(t in name for t in _TRANSIENT_NAMES)


class Store:
    """One location opened through fsspec. Keys are ``/``-separated, relative to the URL."""

    def __init__(self, location: Location, *, retries: int = 3, backoff: float = 0.5) -> None:
        self.location = location
        self.retries = retries
        self.backoff = backoff
        options = dict(location.storage_options)
        if location.protocol == "s3":
            options.setdefault("skip_instance_cache", True)
            options.setdefault("use_listings_cache", False)  # stale listings would break write-once
            options.setdefault(
                "config_kwargs",
                {
                    "connect_timeout": 5,
                    "read_timeout": 60,
                    "retries": {"max_attempts": 2, "mode": "standard"},
                },
            )
        try:
            self.fs, root = fsspec.core.url_to_fs(location.url, **options)
        except (ImportError, ValueError, TypeError) as exc:
            raise StorageError(f"location {location.name!r}: cannot open {location.url!r}: {exc}") from None
        self.root = root.rstrip("/")
        self.is_local = self.fs.protocol in ("file", "local") or "file" in (self.fs.protocol or ())

    # -- naming -----------------------------------------------------------------------------
    def path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/") or "\x00" in key:
            raise StorageError(f"refusing key {key!r}: it would escape the location prefix")
        key = key.strip("/")
        return f"{self.root}/{key}" if key else self.root

    def _err(self, action: str, exc: BaseException) -> StorageError:
        name = self.location.name
        if isinstance(exc, FileNotFoundError):
            return StorageError(
                f"location {name!r}: {action} failed: the bucket or directory does not exist "
                f"({self.location.url}); create it or fix the URL"
            )
        if isinstance(exc, PermissionError) or (
            isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS)
        ):
            return StorageError(
                f"location {name!r}: {action} failed: permission denied or read-only "
                f"({self.location.url}); grant write access or pick another location"
            )
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return StorageError(f"location {name!r}: {action} failed: no space left on device")
        return StorageError(f"location {name!r}: {action} failed: {type(exc).__name__}: {exc}")

    def _retry(self, action: str, func: Callable[[], T]) -> T:
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            try:
                return func()
            except (ObjectExists, IntegrityError):
                raise
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - translated below
                if attempt < self.retries and _is_transient(exc):
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._err(action, exc) from None
        raise StorageError(f"location {self.location.name!r}: {action} failed after {self.retries} attempts")

    # -- checks -----------------------------------------------------------------------------
    def check_writable(self) -> list[str]:
        """Write, read back and delete a probe object; a clear error when writing or reading
        fails. A key that may write but not delete (a writer key kept apart from the pruning
        key) is fine for backups: that is returned as a warning, not an error."""
        key = f"{TMP_PREFIX}probe-{secrets.token_hex(6)}"
        data = b"mysqlops write probe\n"

        def probe() -> None:
            if self.is_local:
                self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(self.path(key), "wb") as fh:
                fh.write(data)
            with self.fs.open(self.path(key), "rb") as fh:
                if fh.read() != data:
                    raise IntegrityError(f"location {self.location.name!r}: probe read back different bytes")

        self._retry("write probe", probe)
        try:
            self.delete(key)
        except StorageError as exc:
            if "permission denied" not in str(exc):
                raise
            return [
                f"location {self.location.name!r}: these credentials may write but not delete (fine for "
                "backups; retention needs a key that may delete); the probe object stays until cleanup"
            ]
        return []

    def free_bytes(self) -> int | None:
        if not self.is_local:
            return None
        path = self.root
        while path and not os.path.exists(path):
            path = os.path.dirname(path)
        return shutil.disk_usage(path or "/").free

    # -- write --------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return bool(self._retry("exists", lambda: self.fs.exists(self.path(key))))

    def put_file(
        self, local_path: str, key: str, *, sha256: str | None = None, verify: bool = True
    ) -> StoredObject:
        """Publish ``local_path`` as ``key`` (write-once), then read it back and check sha256."""
        started = time.monotonic()
        with open(local_path, "rb") as src:
            written = self._retry("upload", lambda: self._publish(key, src))
        if sha256 is not None and written.hexdigest() != sha256:
            self._discard_published(key)
            raise IntegrityError(
                f"location {self.location.name!r}: the staged file changed while uploading {key}"
            )
        if verify:
            self.verify(key, written.hexdigest(), written.size)
        return StoredObject(key, written.size, written.hexdigest(), time.monotonic() - started)

    def put_bytes(self, data: bytes, key: str, *, verify: bool = True) -> StoredObject:
        import io

        started = time.monotonic()
        written = self._retry("write", lambda: self._publish(key, io.BytesIO(data)))
        if verify:
            self.verify(key, written.hexdigest(), written.size)
        return StoredObject(key, written.size, written.hexdigest(), time.monotonic() - started)

    def _publish(self, key: str, src: IO[bytes]) -> CountingHash:
        src.seek(0)
        final = self.path(key)
        if self.fs.exists(final):
            raise ObjectExists(
                f"location {self.location.name!r}: {key} already exists; backups are never overwritten"
            )
        if self.is_local:
            return self._publish_local(final, src)
        if self.location.protocol == "s3":
            return self._publish_s3(final, src)
        return self._publish_generic(final, src)

    def _publish_local(self, final: str, src: IO[bytes]) -> CountingHash:
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"{TMP_PREFIX}{secrets.token_hex(6)}-{os.path.basename(final)}")
        digest = CountingHash()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter_chunks(src, CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, final)  # atomic, and fails if the name exists: write-once
            except FileExistsError:
                raise ObjectExists(
                    f"location {self.location.name!r}: {os.path.basename(final)} already exists; never overwritten"
                ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return digest

    def _publish_s3(self, final: str, src: IO[bytes]) -> CountingHash:
        digest = CountingHash()
        # "xb": a conditional PUT (If-None-Match: *): write-once even against a concurrent writer
        # parts of 8 MiB keep memory flat (s3fs buffers a part, and copies it to send it); bigger
        # files get bigger parts to stay under S3's 10,000-part limit
        size = _remaining(src)
        part = max(8 * 1024 * 1024, -(-size // 9000)) if size else 8 * 1024 * 1024
        handle = self.fs.open(final, "xb", block_size=part)
        try:
            for chunk in iter_chunks(src, CHUNK):
                handle.write(chunk)
                digest.update(chunk)
        except BaseException:
            with contextlib.suppress(Exception):
                handle.discard()  # abort the multipart upload: nothing becomes visible
                handle.closed = True  # and never flush it from __del__
            raise
        try:
            handle.close()
        except FileExistsError:
            raise ObjectExists(
                f"location {self.location.name!r}: {final.rsplit('/', 1)[-1]} was written concurrently; never overwritten"
            ) from None
        return digest

    def _publish_generic(self, final: str, src: IO[bytes]) -> CountingHash:
        parent = final.rsplit("/", 1)[0]
        tmp = f"{parent}/{TMP_PREFIX}{secrets.token_hex(6)}-{final.rsplit('/', 1)[-1]}"
        digest = CountingHash()
        try:
            with self.fs.open(tmp, "wb") as out:
                for chunk in iter_chunks(src, CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
            self.fs.mv(tmp, final)
        finally:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
        return digest

    def _discard_published(self, key: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm(self.path(key))

    # -- read ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            handle = self.fs.open(self.path(key), "rb", block_size=8 * 1024 * 1024)
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._err(f"read {key}", exc) from None
        try:
            yield handle
        finally:
            with contextlib.suppress(Exception):
                handle.close()

    def read_bytes(self, key: str) -> bytes:
        return bytes(self._retry(f"read {key}", lambda: self.fs.cat_file(self.path(key))))

    def verify(self, key: str, sha256: str, size: int | None = None) -> None:
        """Read the stored copy back and compare sha256 (and size)."""

        def check() -> CountingHash:
            digest = CountingHash()
            with self.fs.open(self.path(key), "rb", block_size=8 * 1024 * 1024) as fh:
                for chunk in iter_chunks(fh, CHUNK):
                    digest.update(chunk)
            return digest

        digest = self._retry(f"verify {key}", check)
        if size is not None and digest.size != size:
            raise IntegrityError(
                f"location {self.location.name!r}: {key} is {digest.size} bytes, expected {size} (truncated or corrupt)"
            )
        if digest.hexdigest() != sha256:
            raise IntegrityError(
                f"location {self.location.name!r}: {key} fails its sha256 check (corrupt copy)"
            )

    # -- list / delete ------------------------------------------------------------------------
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (recursive, files only), relative to the location."""
        base = self.path(prefix)

        def find() -> list[str]:
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                return []
            return list(found)

        paths = self._retry("list", find)
        root = self.root + "/"
        return sorted(p[len(root) :] if p.startswith(root) else p for p in paths)

    def info(self, key: str) -> dict[str, Any]:
        return dict(self._retry("stat", lambda: self.fs.info(self.path(key))))

    def modified(self, key: str) -> datetime | None:
        info = self.info(key)
        for field in ("LastModified", "mtime", "created"):
            value = info.get(field)
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            if isinstance(value, (int, float)):
                return datetime.fromtimestamp(value, UTC)
        return None

    def delete(self, key: str) -> None:
        """Delete one object, and make sure it is gone: s3fs's bulk ``rm`` ignores per-key
        errors (AccessDenied, object lock), which would report a delete that did not happen."""
        path = self.path(key)

        def remove() -> None:
            if self.location.protocol == "s3":
                self.fs.rm_file(path)
                if self.fs.exists(path):
                    raise PermissionError(
                        f"{key} still exists after delete (permission denied or object lock)"
                    )
            else:
                self.fs.rm(path)

        self._retry(f"delete {key}", remove)
        if self.is_local:
            self._prune_empty_dirs(os.path.dirname(self.path(key)))

    def _prune_empty_dirs(self, directory: str) -> None:
        while directory.startswith(self.root + "/"):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    def abort_stale_uploads(
        self, older_than: timedelta, now: datetime | None = None, prefix: str = ""
    ) -> list[str]:
        """Abort multipart uploads under this location (or ``prefix`` in it) older than
        ``older_than`` (S3 only). Scope it: another backup may be uploading right now."""
        if self.location.protocol != "s3":
            return []
        now = now or datetime.now(UTC)
        bucket, _, prefix = self.path(prefix).partition("/")
        aborted: list[str] = []

        def run() -> None:
            uploads = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
            for upload in uploads.get("Uploads", []):
                started = upload.get("Initiated")
                if isinstance(started, datetime) and now - started < older_than:
                    continue
                self.fs.call_s3(
                    "abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted.append(upload["Key"])

        self._retry("abort stale uploads", run)
        return aborted
