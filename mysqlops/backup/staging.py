"""Staging files: compressed, encrypted, hashed sinks of the dump stream."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import IO

from mysqlops.manifest import BackupFile, Section, TableSections, TableStat
from mysqlops.model import (
    BinlogCoordinates,
    ObjectCounts,
)
from mysqlops.streams.checksum import CountingHash
from mysqlops.streams.compression import Codec, Compressor
from mysqlops.streams.crypto import Encryptor
from mysqlops.streams.follow import Growth

READ_CHUNK = 1 << 20


# --------------------------------------------------------------------------- staging sinks
@dataclass
class StagedFile:
    database: str
    path: str
    raw: CountingHash = field(default_factory=CountingHash)
    stored: CountingHash = field(default_factory=CountingHash)
    content_sha256: str | None = None
    counts: ObjectCounts = field(default_factory=ObjectCounts)
    coordinates: BinlogCoordinates | None = None
    seconds: float = 0.0
    sections: list[tuple[str, str | None, Section]] = field(default_factory=list)  # (kind, table, where)

    def table_index(self) -> tuple[TableSections, ...]:
        """The recorded table sections grouped per table, in dump order."""
        tables: dict[str, dict[str, Section]] = {}
        for kind, table, section in self.sections:
            if table is not None and kind in ("structure", "data", "triggers"):
                tables.setdefault(table, {})[kind] = section
        return tuple(
            TableSections(t, parts.get("structure"), parts.get("data"), parts.get("triggers"))
            for t, parts in tables.items()
            if "structure" in parts  # a table restores from its structure: never data alone
        )

    def to_server_file(self, name: str, backup_seconds: float) -> BackupFile:
        """The manifest entry of a whole-server stream (physical or clone): no database, no tables."""
        return BackupFile(
            path=name,
            database=None,
            raw_bytes=self.raw.size,
            raw_sha256=self.raw.hexdigest(),
            stored_bytes=self.stored.size,
            stored_sha256=self.stored.hexdigest(),
            durations={"backup": backup_seconds},
        )

    def to_backup_file(self, name: str, tables: tuple[TableStat, ...], lossy: tuple[str, ...]) -> BackupFile:
        return BackupFile(
            path=name,
            database=self.database,
            raw_bytes=self.raw.size,
            raw_sha256=self.raw.hexdigest(),
            stored_bytes=self.stored.size,
            stored_sha256=self.stored.hexdigest(),
            counts=self.counts,
            tables=tables,
            durations={"dump": round(self.seconds, 3)},
            content_sha256=self.content_sha256,
            coordinates=self.coordinates,
            lossy_columns=lossy,
            table_index=self.table_index(),
        )


class _Sink:
    """One database's staging file: raw sha256, compression, stored sha256, file write.

    A section of the stream is one compression frame: :meth:`end_frame` closes it, the next
    :meth:`write` opens a new one (concatenated frames decode as one stream).
    :meth:`begin_section` also records where the section's compressed bytes start and hashes
    them, for the manifest's table index (:class:`mysqlops.manifest.TableSections`).
    """

    def __init__(self, staged: StagedFile, codec: Codec, key: bytes | None = None) -> None:
        self.staged = staged
        self.codec = codec
        self.growth = Growth()  # uploads follow the file until close() finishes it
        fd = os.open(staged.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle: IO[bytes] = os.fdopen(fd, "wb", buffering=READ_CHUNK)
        self.compressor: Compressor | None = None
        self._in_frame = False
        self.encryptor = Encryptor(key) if key is not None else None
        self.codec_bytes = 0  # compressed bytes so far (before encryption)
        self._open: tuple[str, str | None, int, int, hashlib._Hash] | None = None

    def begin_section(self, kind: str, table: str | None) -> None:
        """End the frame in progress and start a new section (its own frame)."""
        self.end_frame()
        self._close_section()
        self._open = (kind, table, self.codec_bytes, self.staged.raw.size, hashlib.sha256())

    def _close_section(self) -> None:
        if self._open is None:
            return
        kind, table, offset, raw_offset, digest = self._open
        self._open = None
        section = Section(
            offset=offset,
            length=self.codec_bytes - offset,
            raw_offset=raw_offset,
            raw_bytes=self.staged.raw.size - raw_offset,
            sha256=digest.hexdigest(),
        )
        self.staged.sections.append((kind, table, section))

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self.compressor is None:
            self.compressor = self.codec.compressor()
        self._in_frame = True
        self.staged.raw.update(data)
        self._out(self.compressor.compress(data))

    def end_frame(self) -> None:
        """End the frame in progress (the compressor is kept: its flush starts a new frame)."""
        if self.compressor is not None and self._in_frame:
            self._out(self.compressor.flush())
            self._in_frame = False

    def _out(self, data: bytes | memoryview) -> None:
        if data:
            self.codec_bytes += len(data)
            if self._open is not None:
                self._open[4].update(data)
        if data and self.encryptor is not None:
            data = self.encryptor.update(data)
        if data:
            self.handle.write(data)
            self.staged.stored.update(data)

    def close(self) -> None:
        self.end_frame()
        self._close_section()
        if self.encryptor is not None:
            tail = self.encryptor.finalize()
            self.encryptor = None
            if tail:
                self.handle.write(tail)
                self.staged.stored.update(tail)
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.growth.finish(self.staged.stored.size)


def drain_into(out: IO[bytes], sink: _Sink) -> None:
    """Write everything a child's stdout gives, to its end, into ``sink``, each chunk (up to
    READ_CHUNK bytes) as soon as it is there."""
    while True:
        chunk = out.read1(READ_CHUNK) if hasattr(out, "read1") else out.read(READ_CHUNK)
        if not chunk:
            break
        sink.write(chunk)
