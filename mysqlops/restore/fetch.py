"""Verified downloads of backup files."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mysqlops import layout
from mysqlops.adapters import localfs
from mysqlops.adapters.storage import Store
from mysqlops.errors import (
    IntegrityError,
    RestoreError,
    StorageError,
)
from mysqlops.manifest import BackupFile, BackupManifest, validate_backup_manifest
from mysqlops.model import Location
from mysqlops.streams.checksum import CHUNK, CountingHash, iter_chunks
from mysqlops.streams.keys import Keyring


def check_key(manifest: BackupManifest, keyring: Keyring | None) -> None:
    """Fail before touching anything when an encrypted backup's key is not available."""
    kid = manifest.encryption_key_id
    if kid and (keyring is None or kid not in keyring):
        raise RestoreError(
            f"backup {manifest.backup_id} is encrypted with key id {kid}, which is not in the given keys "
            f"({', '.join(keyring.ids) if keyring else 'none given'}): pass the encryption key Secret block "
            "that was current when it was made"
        )


# --------------------------------------------------------------------------- fetching
@dataclass
class FetchedFile:
    database: str | None
    path: str
    location: str
    seconds: float


def fetch_verified(store: Store, key: str, expected: BackupFile, dest: str) -> float:
    """Download ``key`` to ``dest`` (a new 0600 file: never an existing file or a symbolic
    link, ``O_EXCL | O_NOFOLLOW``), checking size and sha256; remove it on mismatch. From a
    local location on the staging directory's filesystem, ``dest`` is a hard link to the
    stored file instead of a copy (no second copy of the backup on disk), checked the same."""
    started = time.monotonic()
    digest = CountingHash()
    created = False
    try:
        with store.open_read(key) as src:
            if store.is_local and localfs.link_open_file(src, store.path(key), dest):
                created = True
                for chunk in iter_chunks(src, CHUNK):
                    digest.update(chunk)
            else:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                created = True
                with os.fdopen(fd, "wb") as out:
                    for chunk in iter_chunks(src, CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
    except BaseException:
        if created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
        raise
    problem = ""
    if digest.size != expected.stored_bytes:
        problem = f"is {digest.size} bytes, the manifest says {expected.stored_bytes} (truncated or corrupt)"
    elif digest.hexdigest() != expected.stored_sha256:
        problem = "fails its sha256 check (corrupt copy)"
    if problem:
        os.unlink(dest)
        raise IntegrityError(f"location {store.location.name!r}: {key} {problem}")
    return time.monotonic() - started


def fetch_backup_files(
    copies: Sequence[tuple[Location, BackupManifest]],
    files: Sequence[BackupFile],
    staging: str,
    log: Callable[[str], None],
) -> tuple[list[FetchedFile], list[str]]:
    """Each file from the first location (in preference order) holding a good copy.

    Returns the fetched files and the problems met on the way (corrupt/missing copies). Every
    manifest and file name is validated again here (``validate_backup_manifest``): a name that
    could leave ``staging`` or the backup's directory is refused before anything is read.
    """
    for _location, manifest in copies:
        validate_backup_manifest(manifest)
    names = [layout.check_data_file_name(f.path) for f in files]
    if len(set(names)) != len(names):
        raise RestoreError(f"the files to restore name one file twice ({sorted(names)}): refused")
    problems: list[str] = []
    fetched: list[FetchedFile] = []
    for f in files:
        for location, manifest in copies:
            key = layout.data_key(manifest.server, manifest.backup_id, f.path)
            dest = os.path.join(staging, f.path)
            try:
                seconds = fetch_verified(Store(location), key, f, dest)
            except (IntegrityError, StorageError) as exc:
                problems.append(str(exc))
                log(f"copy at {location.name} unusable: {exc}; trying the next location")
                continue
            fetched.append(FetchedFile(f.database, dest, location.name, seconds))
            break
        else:
            raise RestoreError(
                f"no good copy of {f.path} at any location: " + " | ".join(problems[-len(copies) :])
            )
    return fetched, problems
