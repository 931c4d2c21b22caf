"""Private local files and directories: 0700 directories, 0600 files, whatever the umask.

Backups, binlogs, staging copies and reports can hold data worth protecting even when
encrypted (names, sizes, timings); nothing mysqlops creates on local disk is readable by other
users. Existing directories are never changed (a directory the operator made keeps its mode).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

__all__ = ["make_private", "makedirs_private", "private_dir", "private_tempdir", "write_private"]


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
