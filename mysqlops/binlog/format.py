"""Binary log event scanning (pure)."""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mysqlops.errors import (
    IntegrityError,
)

# =========================================================================== event scan (pure)
_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event_length, next_pos, flags
HEADER_LEN = _HEADER.size  # 19
MAGIC = b"\xfebin"
STOP_EVENT = 3
ROTATE_EVENT = 4
FORMAT_DESCRIPTION_EVENT = 15
MYSQL_GTID_EVENT = 33
MARIADB_GTID_EVENT = 162
MARIADB_GTID_LIST_EVENT = 163
MARIADB_START_ENCRYPTION_EVENT = 164
_CHECKSUM_CRC32 = 1


@dataclass(frozen=True)
class BinlogSummary:
    """What a walk over every event header of one binlog file found."""

    size: int
    events: int
    server_id: int  # of the Format_description event: the server that wrote the file
    server_version: str
    checksum: str  # "crc32" (every event verified) or "none"
    first_event_at: datetime | None
    last_event_at: datetime | None
    gtid_start: str | None  # first GTID per domain (MariaDB) / per source uuid (MySQL)
    gtid_end: str | None  # last GTID per domain / per source uuid
    gtid_list: str | None  # MariaDB: binlog state when the file was opened
    closed_by: str | None  # "rotate" | "stop" | None (file ends without either: crash, or active)
    encrypted: bool = False  # MariaDB encrypted events: headers after START_ENCRYPTION not walked


class _GtidRange:
    """First and last GTID per domain (MariaDB) or per source uuid (MySQL)."""

    def __init__(self) -> None:
        self.first: dict[Any, str] = {}
        self.last: dict[Any, str] = {}

    def add(self, key: Any, text: str) -> None:
        self.first.setdefault(key, text)
        self.last[key] = text

    def render(self, which: dict[Any, str]) -> str | None:
        return ",".join(which[k] for k in sorted(which)) or None


def scan_binlog(data: bytes | bytearray | memoryview | mmap.mmap, *, name: str = "binlog") -> BinlogSummary:
    """Walk every event of a binlog file held in ``data`` (bytes or an mmap).

    Checks the magic, that every event fits, and the CRC32 of every event (when the
    Format_description event says the file has checksums). Raises :class:`IntegrityError` for
    a truncated or corrupt file. Reads only the bodies of the Format_description, GTID and
    GTID-list events; everything else is CRC-checked in place (no copies).
    """
    view = memoryview(data)
    try:
        return _scan(view, name)
    finally:
        view.release()


def _scan(view: memoryview, name: str) -> BinlogSummary:
    size = len(view)
    if size < len(MAGIC) or bytes(view[:4]) != MAGIC:
        raise IntegrityError(f"{name} is not a binary log (bad magic number)")
    pos = len(MAGIC)
    events = 0
    first_ts: int | None = None
    last_ts: int | None = None
    checksum = False
    checksum_name = "none"
    fde_server_id = 0
    server_version = ""
    gtids = _GtidRange()
    gtid_list: str | None = None
    closed_by: str | None = None
    encrypted = False
    while pos < size:
        if size - pos < HEADER_LEN:
            raise IntegrityError(f"{name} is truncated: {size - pos} stray bytes at offset {pos}")
        ts, etype, server_id, length, _next_pos, _flags = _HEADER.unpack_from(view, pos)
        if length < HEADER_LEN or pos + length > size:
            raise IntegrityError(
                f"{name} is truncated or corrupt: event at offset {pos} claims {length} bytes, "
                f"{size - pos} remain"
            )
        end = pos + length
        body_end = end - 4 if checksum else end
        if etype == FORMAT_DESCRIPTION_EVENT:
            body = view[pos + HEADER_LEN : end]
            # binlog_version(2) server_version(50) created(4) header_len(1) post-headers... alg(1) crc(4)
            server_version = bytes(body[2:52]).split(b"\0", 1)[0].decode("ascii", "replace")
            checksum = length >= HEADER_LEN + 57 + 5 and body[-5] == _CHECKSUM_CRC32
            checksum_name = "crc32" if checksum else "none"
            fde_server_id = server_id
        elif checksum:
            stored = int.from_bytes(view[end - 4 : end], "little")
            if zlib.crc32(view[pos : end - 4]) != stored:
                raise IntegrityError(f"{name} is corrupt: CRC32 mismatch in the event at offset {pos}")
        if etype == MARIADB_GTID_EVENT and body_end - pos >= HEADER_LEN + 12:
            seq, domain = struct.unpack_from("<QI", view, pos + HEADER_LEN)
            gtids.add(domain, f"{domain}-{server_id}-{seq}")
        elif etype == MYSQL_GTID_EVENT and body_end - pos >= HEADER_LEN + 25:
            sid = bytes(view[pos + HEADER_LEN + 1 : pos + HEADER_LEN + 17]).hex()
            gno = struct.unpack_from("<q", view, pos + HEADER_LEN + 17)[0]
            uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
            gtids.add(uuid, f"{uuid}:{gno}")
        elif etype == MARIADB_GTID_LIST_EVENT and gtid_list is None:
            gtid_list = _gtid_list(view[pos + HEADER_LEN : body_end])
        elif etype == MARIADB_START_ENCRYPTION_EVENT:
            encrypted = True
        if ts:
            first_ts = ts if first_ts is None else min(first_ts, ts)
            last_ts = ts if last_ts is None else max(last_ts, ts)
        closed_by = "rotate" if etype == ROTATE_EVENT else "stop" if etype == STOP_EVENT else None
        events += 1
        pos = end
        if encrypted:
            break  # later events are encrypted on disk; a remote --raw copy is never encrypted
    return BinlogSummary(
        size=size,
        events=events,
        server_id=fde_server_id,
        server_version=server_version,
        checksum=checksum_name,
        first_event_at=_utc(first_ts),
        last_event_at=_utc(last_ts),
        gtid_start=gtids.render(gtids.first),
        gtid_end=gtids.render(gtids.last),
        gtid_list=gtid_list,
        closed_by=closed_by,
        encrypted=encrypted,
    )


def _gtid_list(body: memoryview) -> str:
    if len(body) < 4:
        return ""
    count = struct.unpack_from("<I", body, 0)[0] & 0x0FFFFFFF
    items = []
    for i in range(count):
        off = 4 + 16 * i
        if off + 16 > len(body):
            break
        domain, server_id, seq = struct.unpack_from("<IIQ", body, off)
        items.append(f"{domain}-{server_id}-{seq}")
    return ",".join(items)


def _utc(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def summarize_file(path: str) -> BinlogSummary:
    """:func:`scan_binlog` of a local file, mmap'ed: memory stays flat whatever its size."""
    name = os.path.basename(path)
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise IntegrityError(f"{name} is empty: not a binary log")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return scan_binlog(mapped, name=name)
