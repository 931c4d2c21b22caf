"""Private local files and directories: 0700 directories, 0600 files, whatever the umask.

Backups, binlogs, staging copies and reports can hold data worth protecting even when
encrypted (names, sizes, timings); nothing mysqlops creates on local disk is readable by other
users. Existing directories are never changed (a directory the operator made keeps its mode).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = [
    "NotBeneath",
    "check_no_link_beneath",
    "lstat_beneath",
    "make_private",
    "makedirs_private",
    "open_dir_beneath",
    "open_file_beneath",
    "private_dir",
    "private_tempdir",
    "unlink_beneath",
    "walk_beneath",
    "write_private",
]


def makedirs_private(path: str) -> None:
    """Create ``path`` and every missing parent with mode 0700 (``os.makedirs(mode=...)`` only
    applies the mode to the last component, and the umask may change it)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made concurrently: not ours to change
        os.chmod(directory, 0o700)


def make_private(directory: str) -> list[str]:
    """Make ``directory`` (created when missing) 0700 and every regular file directly in it
    0600, when this user owns them: for a directory that holds secrets, such as a Prefect home
    (``prefect.db`` holds the key to its encrypted blocks and SQLite creates it 0644; its
    ``-wal``/``-shm`` files copy the database's mode). Returns what it changed (paths)."""
    changed: list[str] = []
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        makedirs_private(directory)
        changed.append(directory)
    uid = os.getuid()
    st = os.stat(directory)
    if st.st_uid == uid and st.st_mode & 0o077:
        os.chmod(directory, 0o700)
        changed.append(directory)
    for entry in os.scandir(directory):
        est = entry.stat(follow_symlinks=False)
        if entry.is_file(follow_symlinks=False) and est.st_uid == uid and est.st_mode & 0o077:
            os.chmod(entry.path, 0o600)
            changed.append(entry.path)
    return changed


def private_tempdir(parent: str | None, prefix: str) -> str:
    """A new 0700 temporary directory under ``parent`` (created 0700 when missing; the system
    temporary directory when None), marked as owned by this process (see
    :mod:`mysqlops.adapters.reaper`: if the process is killed, the next run removes it). The
    caller removes it."""
    from mysqlops.adapters import reaper

    if parent:
        makedirs_private(parent)
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        os.chmod(path, 0o700)
        reaper.mark(path, prefix.rstrip("-"))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


@contextlib.contextmanager
def private_dir(parent: str | None, prefix: str) -> Iterator[str]:
    """:func:`private_tempdir` as a context manager: removed with everything in it on the way out."""
    path = private_tempdir(parent, prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_bytes(path: str) -> int:
    """Bytes of the files under ``path`` (not following links; files that vanish count 0)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file (replacing it atomically if it exists)."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# --------------------------------------------------------------------------- beneath a root
# Files at a local location are reached one path component at a time, each opened relative to
# its parent's descriptor with O_NOFOLLOW: a symbolic link (or a directory swapped for one)
# planted under the location can never redirect a read, a write or a delete elsewhere. The
# root itself is the operator's configuration and may be a symbolic link.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NotBeneath(OSError):
    """A component below the root is a symbolic link or not a directory/regular file."""


def _open_component(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotBeneath(exc.errno, f"{name!r} is a symbolic link or not a directory") from None
        raise


def open_dir_beneath(root: str, rel_dir: str, *, create: bool = False) -> int:
    """A descriptor of ``root/rel_dir`` reached without following any symbolic link below
    ``root``. ``create``: missing directories (and the root) are made 0700. The caller closes it."""
    if create:
        makedirs_private(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in rel_dir.split("/") if rel_dir else ():
            try:
                child = _open_component(part, fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                child = _open_component(part, fd)
                os.fchmod(child, 0o700)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file_beneath(root: str, rel: str) -> int:
    """A read descriptor of the regular file ``root/rel`` (no symbolic link, FIFO or device
    anywhere below ``root``: opening a FIFO would block, a device would read forever)."""
    directory, _, name = rel.rpartition("/")
    dfd = open_dir_beneath(root, directory)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotBeneath(exc.errno, f"{name!r} is a symbolic link") from None
            raise
    finally:
        os.close(dfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotBeneath(errno.EINVAL, f"{name!r} is not a regular file")
    return fd


def link_open_file(handle: IO[bytes], path: str, dest: str) -> bool:
    """Make ``dest`` (a new name: never an existing file or link) a hard link to the very file
    ``handle`` has open, which was opened by the name ``path`` (a regular file of a local
    location, opened without following links). The link is made by name, then proven to be
    the open file (same device and inode), else removed. False when it cannot be done
    (another filesystem, no hard links there, the name now points elsewhere): the caller copies
    instead. A write-once backup file needs no second copy to be restored from, and the link
    keeps it readable even if retention removes its name meanwhile."""
    try:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode):
            return False
        os.link(path, dest, follow_symlinks=False)
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    linked = os.lstat(dest)
    if (linked.st_dev, linked.st_ino) != (opened.st_dev, opened.st_ino):
        os.unlink(dest)
        return False
    return True


def lstat_beneath(root: str, rel: str) -> os.stat_result:
    directory, _, name = rel.rpartition("/")
    dfd = open_dir_beneath(root, directory)
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    finally:
        os.close(dfd)


def unlink_beneath(root: str, rel: str) -> None:
    """Remove the entry ``root/rel`` itself (a symbolic link is removed, never its target),
    then every directory above it that became empty, up to (not including) the root."""
    directory, _, name = rel.rpartition("/")
    dfd = open_dir_beneath(root, directory)
    try:
        os.unlink(name, dir_fd=dfd)
    finally:
        os.close(dfd)
    while directory:
        parent, _, name = directory.rpartition("/")
        try:
            pfd = open_dir_beneath(root, parent)
        except OSError:
            return
        try:
            os.rmdir(name, dir_fd=pfd)
        except OSError:
            return
        finally:
            os.close(pfd)
        directory = parent


def walk_beneath(root: str, rel_dir: str, refused: list[str]) -> list[str]:
    """Relative paths (from ``root``) of the regular files under ``root/rel_dir``, never
    entering a symbolic link; any other entry (link, FIFO, socket, device) goes to ``refused``."""
    try:
        top = open_dir_beneath(root, rel_dir)
    except FileNotFoundError:
        return []
    found: list[str] = []
    stack = [(top, rel_dir)]
    try:
        while stack:
            fd, here = stack.pop()
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        rel = f"{here}/{entry.name}" if here else entry.name
                        if entry.is_dir(follow_symlinks=False):
                            try:
                                stack.append((_open_component(entry.name, fd), rel))
                            except NotBeneath:  # swapped for a link since it was listed
                                refused.append(rel)
                        elif entry.is_file(follow_symlinks=False):
                            found.append(rel)
                        else:
                            refused.append(rel)
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
    return found


def check_no_link_beneath(root: str, rel: str) -> None:
    """Raise :class:`NotBeneath` when an existing component of ``root/rel`` below ``root`` is
    a symbolic link (for paths handed to code that opens by name, e.g. fsspec)."""
    path = root
    for part in rel.split("/") if rel else ():
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise NotBeneath(errno.ELOOP, f"{rel!r} passes through the symbolic link {part!r}")
