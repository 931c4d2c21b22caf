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

Keys are never trusted: every key goes through ``layout.check_key`` (relative, no ``..``/``.``/
empty segment, no control character or backslash, bounded length). At a local location every
file is reached one directory at a time relative to its parent's descriptor with
``O_NOFOLLOW`` (``localfs.open_dir_beneath``): a symbolic link planted there is refused, never
followed, for reads, writes, listings and deletes alike.

One concept at ~500 lines: the one storage contract, whose every rule (write-once, read-back,
keys checked, links refused, errors translated) must hold for every operation; split by
operation, each half would have to repeat the rules.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar

import fsspec

from mysqlops import layout
from mysqlops.adapters import localfs
from mysqlops.adapters.localfs import makedirs_private
from mysqlops.adapters.writers import S3_MIN_PART, _GenericWriter, _LocalWriter, _S3Writer, _Writer
from mysqlops.errors import IntegrityError, MysqlopsError, ObjectExists, StorageError, UnsafePath
from mysqlops.model import Location
from mysqlops.streams.checksum import CHUNK, CountingHash, iter_chunks

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


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ObjectExists, IntegrityError, PermissionError, FileNotFoundError)):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    name = type(exc).__name__ + " " + str(exc)[:200]
    return any(t in name for t in _TRANSIENT_NAMES)


S3_MAX_PARTS = 10_000


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
    def key(self, key: str) -> str:
        """``key`` checked by ``layout.check_key`` (the location's name in the message)."""
        try:
            return layout.check_key(key)
        except UnsafePath as exc:
            raise UnsafePath(f"location {self.location.name!r}: {exc}") from None

    def path(self, key: str) -> str:
        """The backend path of ``key`` ("" is the location root). At a local location an
        existing symbolic link on the way is refused (for code that opens by name)."""
        if key == "":
            return self.root
        self.key(key)
        if self.is_local:
            try:
                localfs.check_no_link_beneath(self.root, key)
            except localfs.NotBeneath as exc:
                raise UnsafePath(
                    f"location {self.location.name!r}: refusing key {key!r}: {exc.strerror}"
                ) from None
        return f"{self.root}/{key}"

    def _local(self, action: str, key: str, func: Callable[[], T]) -> T:
        """Run a descriptor-based local operation; a symbolic link or special file on the way
        becomes :class:`UnsafePath`, other OS errors the usual :class:`StorageError`."""
        if key:
            self.key(key)
        try:
            return func()
        except localfs.NotBeneath as exc:
            raise UnsafePath(
                f"location {self.location.name!r}: {action} {key!r} refused: {exc.strerror} (a location holds only "
                "directories and regular files written by mysqlops; remove it by hand after checking who made it)"
            ) from None
        except MysqlopsError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._err(f"{action} {key}", exc) from None

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
            except MysqlopsError:
                raise  # ours already says what is wrong (write-once, integrity, abandoned backup)
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
        key = layout.temporary_name("probe")
        data = b"mysqlops write probe\n"

        def probe() -> None:
            if self.is_local:
                makedirs_private(self.root)
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
        if self.is_local:

            def lexists() -> bool:
                try:
                    localfs.lstat_beneath(self.root, key)
                except FileNotFoundError:
                    return False
                return True

            return self._local("exists", key, lexists)
        return bool(self._retry("exists", lambda: self.fs.exists(self.path(key))))

    def put_file(
        self, local_path: str, key: str, *, sha256: str | None = None, verify: bool = True
    ) -> StoredObject:
        """Publish ``local_path`` as ``key`` (write-once), then read it back and check sha256."""

        def expect(written: CountingHash) -> None:
            if sha256 is not None and written.hexdigest() != sha256:
                raise IntegrityError(
                    f"location {self.location.name!r}: the staged file changed while uploading {key}"
                )

        return self.put_from(
            key,
            lambda: open(local_path, "rb"),
            size_hint=os.path.getsize(local_path),
            before_commit=expect,
            verify=verify,
        )

    def put_bytes(self, data: bytes, key: str, *, verify: bool = True) -> StoredObject:
        return self.put_from(key, lambda: io.BytesIO(data), size_hint=len(data), verify=verify)

    def put_from(
        self,
        key: str,
        open_src: Callable[[], IO[bytes]],
        *,
        size_hint: int = 0,
        before_commit: Callable[[CountingHash], None] | None = None,
        verify: bool = True,
    ) -> StoredObject:
        """Stream ``open_src()`` to ``key`` and publish it write-once, then read it back.

        ``open_src`` is called once per attempt (a transient error retries from the start), and
        may be a reader that follows a file still being written. ``before_commit(digest)`` runs
        after the last byte and before the object becomes visible: it may wait (for the rest of
        the backup to be proven good) or raise to abandon the upload, which then leaves nothing.
        """
        started = time.monotonic()

        def attempt() -> CountingHash:
            writer = self._begin(key, size_hint)
            digest = CountingHash()
            try:
                with open_src() as src:
                    for chunk in iter_chunks(src, CHUNK):
                        writer.write(chunk)
                        digest.update(chunk)
                if before_commit is not None:
                    before_commit(digest)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            return digest

        written = self._retry("upload", attempt)
        if verify:
            self.verify(key, written.hexdigest(), written.size)
        return StoredObject(key, written.size, written.hexdigest(), time.monotonic() - started)

    def _begin(self, key: str, size_hint: int) -> _Writer:
        if self.is_local:
            if self.exists(key):
                raise ObjectExists(
                    f"location {self.location.name!r}: {key} already exists; backups are never overwritten"
                )
            return self._local("write", key, lambda: _LocalWriter(self.location.name, self.root, key))
        final = self.path(key)
        if self.fs.exists(final):
            raise ObjectExists(
                f"location {self.location.name!r}: {key} already exists; backups are never overwritten"
            )
        if self.location.protocol == "s3":
            # parts of 8 MiB keep memory flat; a file known to be big starts with bigger parts
            part = max(S3_MIN_PART, -(-size_hint // 9000))
            return _S3Writer(self.location.name, self.fs, final, part)
        return _GenericWriter(self.fs, final)

    # -- read ---------------------------------------------------------------------------------
    def _open(self, key: str) -> IO[bytes]:
        if self.is_local:
            fd = self._local("read", key, lambda: localfs.open_file_beneath(self.root, key))
            return os.fdopen(fd, "rb")
        return self.fs.open(self.path(key), "rb", block_size=8 * 1024 * 1024)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            handle = self._open(key)
        except MysqlopsError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._err(f"read {key}", exc) from None
        try:
            yield handle
        finally:
            with contextlib.suppress(Exception):
                handle.close()

    def read_bytes(self, key: str) -> bytes:
        if self.is_local:

            def read() -> bytes:
                with self._open(key) as fh:
                    return fh.read()

            return self._retry(f"read {key}", read)
        return bytes(self._retry(f"read {key}", lambda: self.fs.cat_file(self.path(key))))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``key`` (a ranged GET on S3): exactly ``end - start`` bytes
        or a :class:`StorageError` saying the object is shorter."""
        if self.is_local:

            def read() -> bytes:
                with self._open(key) as fh:
                    fh.seek(start)
                    return fh.read(end - start)

            data = self._retry(f"read {key} [{start}:{end}]", read)
        else:
            data = bytes(
                self._retry(
                    f"read {key} [{start}:{end}]",
                    lambda: self.fs.cat_file(self.path(key), start=start, end=end),
                )
            )
        if len(data) != end - start:
            raise StorageError(
                f"location {self.location.name!r}: {key} is shorter than the manifest says "
                f"(bytes {start}..{end} asked, {len(data)} read): truncated copy"
            )
        return data

    def verify(self, key: str, sha256: str, size: int | None = None) -> None:
        """Read the stored copy back and compare sha256 (and size)."""

        def check() -> CountingHash:
            if self.location.protocol == "s3":
                return self._s3_stream_hash(key)
            digest = CountingHash()
            with self._open(key) as fh:
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

    def _s3_stream_hash(self, key: str) -> CountingHash:
        """sha256 of one S3 object read by a single streaming GET: constant memory, and one
        request (ranged reads cost a request per block, and some servers copy the whole object
        for each range)."""
        from fsspec.asyn import sync

        bucket, path, version = self.fs.split_path(self.path(key))
        digest = CountingHash()

        async def run() -> None:
            extra = {"VersionId": version} if version else {}
            response = await self.fs._call_s3("get_object", Bucket=bucket, Key=path, **extra)
            body = response["Body"]
            try:
                while chunk := await body.read(CHUNK):
                    digest.update(chunk)
            finally:
                body.close()

        sync(self.fs.loop, run)
        return digest

    # -- list / delete ------------------------------------------------------------------------
    def list_keys(self, prefix: str = "", refused: list[str] | None = None) -> list[str]:
        """Keys under ``prefix`` (recursive, files only), relative to the location.

        Entries that are not safe keys (``layout.check_key``: ``a//b``, control characters, ...) and,
        at a local location, symbolic links, FIFOs, sockets and devices are never returned:
        they are appended to ``refused`` when it is given, else :class:`UnsafePath` is raised."""
        if prefix:
            self.key(prefix)
        bad: list[str] = []
        if self.is_local:
            keys = self._local("list", prefix, lambda: localfs.walk_beneath(self.root, prefix, bad))
        else:
            base = self.path(prefix)

            def find() -> list[str]:
                try:
                    found = self.fs.find(base)
                except FileNotFoundError:
                    return []
                return list(found)

            paths = self._retry("list", find)
            root = self.root + "/"
            keys = [p[len(root) :] if p.startswith(root) else p for p in paths]
        good = []
        for key in keys:
            try:
                good.append(layout.check_key(key))
            except UnsafePath:
                bad.append(key)
        if bad and refused is None:
            raise UnsafePath(
                f"location {self.location.name!r}: unsafe entries under {prefix or 'the root'!r} (symbolic links, "
                f"special files or names that escape the prefix): {', '.join(repr(k)[:120] for k in bad[:5])}; "
                "nothing there is read; remove them by hand after checking who made them"
            )
        if refused is not None:
            refused.extend(bad)
        return sorted(good)

    def info(self, key: str) -> dict[str, Any]:
        if self.is_local:
            st = self._local("stat", key, lambda: localfs.lstat_beneath(self.root, key))
            return {"name": key, "size": st.st_size, "mtime": st.st_mtime, "type": "file"}
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
        errors (AccessDenied, object lock), which would report a delete that did not happen.
        At a local location the entry itself is removed (a symbolic link, never its target),
        through its directory's descriptor, then the directories it leaves empty."""
        if self.is_local:
            self._local("delete", key, lambda: localfs.unlink_beneath(self.root, key))
            return
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
