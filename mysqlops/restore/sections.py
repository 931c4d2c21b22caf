"""Ranged, verified reads of a backup file's table sections (see :mod:`mysqlops.restore.tables`).

A section's compressed bytes are read with ranged reads of at most ``READ_PIECE`` bytes (a
ranged GET on S3), hashed against the manifest's sha256 and written to a private staging file;
in an encrypted file, the whole encryption chunks that hold them are read and each one
authenticated (counter nonces: any chunk decrypts on its own). Nothing reaches the target
before every section of a table is verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from mysqlops import layout
from mysqlops.adapters.storage import Store
from mysqlops.errors import EncryptionError, IntegrityError, RestoreError, StorageError
from mysqlops.manifest import BackupFile, BackupManifest, Section
from mysqlops.model import Location
from mysqlops.streams import crypto
from mysqlops.streams.crypto import Keyring

READ_PIECE = 8 << 20  # ranged reads of at most this many bytes: memory stays flat
PARTS = ("structure", "data", "triggers")


def fetch_section(
    store: Store,
    key: str,
    f: BackupFile,
    section: Section,
    keyring: Keyring | None,
    dest: str,
) -> int:
    """Write the section's compressed bytes to ``dest`` (0600, new), checking its sha256 (and
    each encrypted chunk's authentication). Returns the stored bytes read."""
    digest = hashlib.sha256()
    read = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        if section.length == 0:
            pass
        elif keyring is None:
            end = section.offset + section.length
            if end > f.stored_bytes:
                raise IntegrityError(f"section ends at {end}, past the file's {f.stored_bytes} bytes")
            for start in range(section.offset, end, READ_PIECE):
                piece = store.read_range(key, start, min(start + READ_PIECE, end))
                read += len(piece)
                digest.update(piece)
                out.write(piece)
        else:
            header = store.read_range(key, 0, min(crypto.HEADER_MAX_SIZE, f.stored_bytes))
            read += len(header)
            header_size, chunk_size = crypto.parse_header(header)
            final = crypto.final_chunk_index(header_size, chunk_size, f.stored_bytes)
            span = crypto.chunk_range(
                header_size, chunk_size, f.stored_bytes, section.offset, section.offset + section.length
            )
            per_read = max(1, READ_PIECE // chunk_size)
            remaining, skip = section.length, span.skip
            for first in range(span.first, span.last + 1, per_read):
                last = min(first + per_read - 1, span.last)
                record = chunk_size + crypto.TAG_SIZE
                lo = header_size + first * record
                hi = min(header_size + (last + 1) * record, f.stored_bytes)
                data = store.read_range(key, lo, hi)
                read += len(data)
                plain = crypto.decrypt_chunks(keyring, header, first, data, final)
                piece = plain[skip : skip + remaining]
                skip = 0
                remaining -= len(piece)
                digest.update(piece)
                out.write(piece)
            if remaining:
                raise IntegrityError(f"the encrypted file ends {remaining} bytes before the section does")
    if digest.hexdigest() != section.sha256:
        raise IntegrityError("fails its sha256 check (corrupt copy)")
    return read


def _fetch_part(
    store: Store,
    key: str,
    f: BackupFile,
    part: tuple[str, Section],
    keyring: Keyring | None,
    dest: str,
    table: str,
) -> int:
    """:func:`fetch_section` of one part of ``table``, its errors naming the part and table."""
    try:
        return fetch_section(store, key, f, part[1], keyring, dest)
    except (IntegrityError, EncryptionError) as exc:
        raise IntegrityError(f"{part[0]} section of {table} in {key}: {exc}") from None


def fetch_table(
    copies: Sequence[tuple[Location, BackupManifest]],
    file: BackupFile,
    table: str,
    staging: str,
    keyring: Keyring | None,
    log: Callable[[str], None],
    problems: list[str],
) -> tuple[dict[str, str], str, int]:
    """The sections of ``table`` (in ``file``) from the first location holding good copies of
    all of them: ``({part: staged path}, location name, stored bytes read)``. A location whose
    copy fails is reported in ``problems`` and logged, and the next one is tried."""
    name = f"{file.database}.{table}"
    failures = []
    for location, manifest in copies:
        own = next((f for f in manifest.files if f.path == file.path), None)
        index = next((t for t in own.table_index if t.table == table), None) if own else None
        if own is None or index is None or own.stored_sha256 != file.stored_sha256:
            log(f"location {location.name} holds no indexed copy of {file.path} like the first one: skipped")
            continue
        key = f"{layout.backup_dir(manifest.server, manifest.backup_id)}/{layout.check_data_file_name(own.path)}"
        store = Store(location)
        # every section of the table at once (one ranged read each: the round trips overlap)
        wanted = {part: getattr(index, part) for part in PARTS if getattr(index, part) is not None}
        paths = {part: os.path.join(staging, f"{secrets.token_hex(8)}.{part}") for part in wanted}

        try:
            with ThreadPoolExecutor(max_workers=len(wanted) or 1, thread_name_prefix="section") as pool:
                jobs = [
                    pool.submit(_fetch_part, store, key, own, (part, section), keyring, paths[part], name)
                    for part, section in wanted.items()
                ]
                read = sum(job.result() for job in jobs)
        except (IntegrityError, StorageError, EncryptionError) as exc:
            message = f"location {location.name!r}: {exc}"
            problems.append(message)
            failures.append(message)
            log(f"copy at {location.name} unusable for table {name}: {exc}; trying the next location")
            for path in paths.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            continue
        return paths, location.name, read
    raise RestoreError(
        f"no good copy of table {name} at any location: " + (" | ".join(failures) or "not indexed anywhere")
    )
