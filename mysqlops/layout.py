"""Sortable UTC backup ids and the object-key layout at a location.

Layout (relative to the location URL)::

    <server>/full/<backup_id>/<db-file>.sql.zst   data files
    <server>/full/<backup_id>/manifest.json       commit marker, written last
    <server>/full/<backup_id>/restore-test-*.json restore certificates
    <server>/full/<backup_id>/pin-*.json          pin/unpin markers (write-once; the newest decides)
    <server>/binlogs/<binlog file>.zst            archived binlogs
    <server>/binlogs/<binlog file>.json           binlog manifest, written last
    .tmp-*                                        anything starting with .tmp- is in flight

Database names can hold any character; they are percent-encoded into file names so that a
name like ``../x`` or ``a/b`` can never escape the backup's directory.

Nothing read from a location is trusted: every key listed there and every file, server,
backup id or binlog name a manifest gives goes through :func:`check_key` (one function for
every reader: restore, restore tests, binlog replay, retention, cleanup, report, catalog and
the storage adapter) before it is used to build a path or a key.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from mysqlops.errors import ConfigError, UnsafePath
from mysqlops.model import check_safe_name

MANIFEST_NAME = "manifest.json"
TMP_PREFIX = ".tmp-"
BACKUPS_DIR = "full"
BINLOGS_DIR = "binlogs"
CERTIFICATE_PREFIX = "restore-test-"
PIN_PREFIX = "pin-"
_PIN_RE = re.compile(r"^pin-(\d{8}T\d{6}\d{6}Z)-([0-9a-f]{6})\.json$")
_ID_RE = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{6})$")
MAX_SEGMENT_BYTES = 255  # NAME_MAX of every common file system
MAX_KEY_BYTES = 1024  # S3's limit for a whole key
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(value: object) -> str:
    """A hostile name as it may appear in a message: repr'd (control characters escaped), cut."""
    text = repr(value)
    return text if len(text) <= 120 else text[:100] + "…" + text[-10:]


def check_key(key: str, what: str = "key") -> str:
    """The one validation of a key or path read from (or meant for) a location.

    A key is relative to a location (or to a backup's directory) and must stay under it: not
    empty, not absolute, no ``..``, ``.`` or empty segment (``a//b``, ``a/``), no NUL or other
    control character, no backslash, at most 255 bytes per segment and 1024 bytes in all.
    Returns ``key``; raises :class:`UnsafePath` naming what is wrong.
    """
    if not isinstance(key, str):
        raise UnsafePath(f"{what} {_shown(key)} is not a string")
    problem = ""
    if not key:
        problem = "is empty"
    elif key.startswith("/"):
        problem = "is absolute"
    elif "\\" in key:
        problem = "contains a backslash"
    elif _CONTROL.search(key):
        problem = "contains a NUL or control character"
    elif len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        problem = f"is longer than {MAX_KEY_BYTES} bytes"
    else:
        for segment in key.split("/"):
            if segment in ("", ".", ".."):
                problem = f"has a {segment!r} segment" if segment else "has an empty segment"
                break
            if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
                problem = f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
                break
    if problem:
        raise UnsafePath(
            f"{what} {_shown(key)} {problem}: it would escape the location prefix or is not a name "
            "mysqlops writes; refused (nothing is read, written or deleted under it)"
        )
    return key


def check_file_name(name: str, what: str = "file name") -> str:
    """One path segment under a backup or binlog directory (:func:`check_key`, no ``/``)."""
    check_key(name, what)
    if "/" in name:
        raise UnsafePath(
            f"{what} {_shown(name)} has a '/': files of a backup are single names in its directory"
        )
    return name


def check_data_file_name(name: str) -> str:
    """A data file of a backup: a single name that is not the manifest, a certificate or a
    temporary object (a manifest naming those would make restore read or retention delete them)."""
    check_file_name(name, "backup file name")
    if name == MANIFEST_NAME or name.startswith((CERTIFICATE_PREFIX, PIN_PREFIX, TMP_PREFIX)):
        raise UnsafePath(
            f"backup file name {_shown(name)} is reserved for the manifest, certificates, pin markers or "
            "temporary objects"
        )
    return name


def check_backup_id(backup_id: str, what: str = "backup id") -> str:
    if not isinstance(backup_id, str) or not _ID_RE.match(backup_id):
        raise UnsafePath(
            f"{what} {_shown(backup_id)} is not a backup id (expected e.g. 20261123T101500Z-3fa2c1)"
        )
    return backup_id


def check_server_name(server: str) -> str:
    """A server name read from a location: the same rule as for configured servers (no '/')."""
    try:
        return check_safe_name("server", server)
    except (ConfigError, TypeError):
        raise UnsafePath(
            f"server name {_shown(server)} is not allowed (1-64 letters, digits, '_', '.', '-'; no '/' or '..')"
        ) from None


_BINLOG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.\d{1,10}$")


def check_binlog_file_name(file: str, what: str = "binlog file name") -> str:
    """``mysql-bin.000042``: a single plain name with a numeric suffix."""
    check_file_name(file, what)
    if not _BINLOG_RE.match(file) or ".." in file:
        raise UnsafePath(f"{what} {_shown(file)} is not a binlog file name (e.g. mysql-bin.000042)")
    return file


def new_backup_id(now: datetime | None = None) -> str:
    """``20261123T101500Z-3fa2c1``: sorts by time, unique across concurrent runs."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ConfigError("new_backup_id needs a timezone-aware datetime")
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def parse_backup_id(backup_id: str) -> datetime:
    """The UTC start time encoded in a backup id."""
    m = _ID_RE.match(backup_id)
    if not m:
        raise ConfigError(f"{backup_id!r} is not a backup id (expected e.g. 20261123T101500Z-3fa2c1)")
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def is_backup_id(name: str) -> bool:
    return bool(_ID_RE.match(name))


def encode_name(name: str) -> str:
    """A database/table name as a single safe path segment (reversible)."""
    if name == "":
        raise ConfigError("an empty database name cannot be stored")
    encoded = quote(name, safe="")
    encoded = encoded.replace(".", "%2E") if encoded.startswith(".") else encoded
    return encoded


def decode_name(segment: str) -> str:
    return unquote(segment)


def backup_dir(server: str, backup_id: str) -> str:
    check_safe_name("server", server)
    parse_backup_id(backup_id)
    return f"{server}/{BACKUPS_DIR}/{backup_id}"


def pin_marker_key(server: str, backup_id: str, at: datetime) -> str:
    """``<server>/full/<id>/pin-<UTC time to the microsecond>-<random>.json``: a new object per
    pin or unpin (never overwritten); names sort by time, the newest marker decides."""
    if at.tzinfo is None:
        raise ConfigError("pin_marker_key needs a timezone-aware datetime")
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{backup_dir(server, backup_id)}/{PIN_PREFIX}{stamp}-{secrets.token_hex(3)}.json"


def is_pin_marker(name: str) -> bool:
    """A pin marker's file name (its base name in a backup directory)."""
    return bool(_PIN_RE.match(name))


def data_file_name(database: str, extension: str) -> str:
    """``<encoded db>.sql<extension>`` e.g. ``shop.sql.zst``."""
    return f"{encode_name(database)}.sql{extension}"


def binlog_dir(server: str) -> str:
    check_safe_name("server", server)
    return f"{server}/{BINLOGS_DIR}"
