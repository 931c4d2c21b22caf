"""How an object is written to a location so that it appears whole or not at all: a temp file
linked into place (local), a multipart upload completed or aborted (S3), a temp name renamed
(other fsspec backends). :class:`mysqlops.adapters.storage.Store` chooses the writer."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from mysqlops import layout
from mysqlops.adapters import localfs
from mysqlops.errors import ObjectExists


class _Writer:
    """One object being written: ``write`` any number of times, then ``commit`` (the object
    becomes visible under its final name, write-once) or ``abort`` (nothing is left)."""

    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class _LocalWriter(_Writer):
    """Temp file in the destination directory, fsync, ``os.link`` (atomic, fails if the name
    exists), fsync the directory. The directory is reached and used through its descriptor
    (``localfs.open_dir_beneath``): a symbolic link below the location root is never followed."""

    def __init__(self, location: str, root: str, key: str) -> None:
        self.location = location
        directory, _, self.name = key.rpartition("/")
        self.dfd = localfs.open_dir_beneath(root, directory, create=True)
        self.tmp = layout.temporary_name(self.name)
        try:
            fd = os.open(
                self.tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self.dfd,
            )
        except BaseException:
            os.close(self.dfd)
            raise
        self.out = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)

    def commit(self) -> None:
        try:
            self.out.flush()
            os.fsync(self.out.fileno())
            self.out.close()
            try:
                os.link(self.tmp, self.name, src_dir_fd=self.dfd, dst_dir_fd=self.dfd, follow_symlinks=False)
            except FileExistsError:
                raise ObjectExists(
                    f"location {self.location!r}: {self.name} already exists; never overwritten"
                ) from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.tmp, dir_fd=self.dfd)
            os.fsync(self.dfd)
        finally:
            os.close(self.dfd)
            self.dfd = -1

    def abort(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.out.close()
        if self.dfd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp, dir_fd=self.dfd)
            os.close(self.dfd)
            self.dfd = -1


S3_MIN_PART = 8 * 1024 * 1024  # s3fs buffers a part and copies it to send it: memory ~3 parts


def s3_part_size(parts_done: int, initial: int = S3_MIN_PART) -> int:
    """Size of the next part of a multipart upload whose total size may be unknown: ``initial``
    for the first 1,000 parts, then doubling every 1,000 parts, so 10,000 parts hold more than
    S3's 5 TiB object limit while small and medium files keep small parts (flat memory)."""
    return max(initial, S3_MIN_PART << (parts_done // 1000))


class _S3Writer(_Writer):
    """A multipart upload opened with "xb": the final PUT is conditional (If-None-Match: *),
    write-once even against a concurrent writer; nothing is visible until it completes."""

    def __init__(self, location: str, fs: Any, final: str, part: int) -> None:
        self.location = location
        self.final = final
        self.part = part
        self.handle = fs.open(final, "xb", block_size=part)

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        # the size of a followed file is not known in advance: parts grow as they accumulate
        self.handle.blocksize = s3_part_size(len(getattr(self.handle, "parts", None) or ()), self.part)

    def commit(self) -> None:
        try:
            self.handle.close()
        except FileExistsError:
            raise ObjectExists(
                f"location {self.location!r}: {self.final.rsplit('/', 1)[-1]} was written concurrently; never overwritten"
            ) from None

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.handle.discard()  # abort the multipart upload: nothing becomes visible
        self.handle.closed = True  # and never flush it from __del__


class _GenericWriter(_Writer):
    """Other fsspec backends: a temp name, renamed when complete."""

    def __init__(self, fs: Any, final: str) -> None:
        self.fs = fs
        self.final = final
        parent, _, name = final.rpartition("/")
        self.tmp = f"{parent}/{layout.temporary_name(name)}"
        self.out = fs.open(self.tmp, "wb")

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)

    def commit(self) -> None:
        self.out.close()
        try:
            self.fs.mv(self.tmp, self.final)
        finally:
            with contextlib.suppress(Exception):
                if self.fs.exists(self.tmp):
                    self.fs.rm(self.tmp)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.out.close()
        with contextlib.suppress(Exception):
            if self.fs.exists(self.tmp):
                self.fs.rm(self.tmp)
