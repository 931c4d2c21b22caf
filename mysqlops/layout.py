"""Sortable UTC backup ids and the object-key layout at a location: every key is built and
parsed here (nowhere else), and every key read from a location is checked here.

Layout (relative to the location URL)::

    <server>/full/<backup_id>/<db-file>.sql.zst   data files
    <server>/full/<backup_id>/manifest.json       commit marker, written last
    <server>/full/<backup_id>/restore-test-<UTC>-<location>.json    restore certificates
    <server>/full/<backup_id>/pin-<UTC>-<hex>.json pin/unpin markers (write-once; the newest decides)
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

import contextlib
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from mysqlops.errors import ConfigError, UnsafePath
from mysqlops.model import binlog_sequence, check_safe_name

MANIFEST_NAME = "manifest.json"
TMP_PREFIX = ".tmp-"
BACKUPS_DIR = "full"
BINLOGS_DIR = "binlogs"
CERTIFICATE_PREFIX = "restore-test-"
BINLOG_MANIFEST_SUFFIX = ".json"
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
    return data_key(server, backup_id, f"{PIN_PREFIX}{stamp}-{secrets.token_hex(3)}.json")


def is_pin_marker(name: str) -> bool:
    """A pin marker's file name (its base name in a backup directory)."""
    return bool(_PIN_RE.match(name))


def data_file_name(database: str, extension: str) -> str:
    """``<encoded db>.sql<extension>`` e.g. ``shop.sql.zst``."""
    return f"{encode_name(database)}.sql{extension}"


def binlog_dir(server: str) -> str:
    check_safe_name("server", server)
    return f"{server}/{BINLOGS_DIR}"


def temporary_name(name: str) -> str:
    """``.tmp-<random>-<name>``: an object in flight, renamed to ``name`` when complete;
    listings show it as temporary (:func:`place_of`) and cleanup removes it."""
    return f"{TMP_PREFIX}{secrets.token_hex(6)}-{name}"


# --------------------------------------------------------------------------- backup keys


def manifest_key(server: str, backup_id: str) -> str:
    """``<server>/full/<id>/manifest.json``: a backup's commit marker, written last."""
    return f"{backup_dir(server, backup_id)}/{MANIFEST_NAME}"


def data_key(server: str, backup_id: str, name: str) -> str:
    """``<server>/full/<id>/<name>``: a stored file of a backup (a checked single name)."""
    return member_key(backup_dir(server, backup_id), name)


def member_key(directory: str, name: str) -> str:
    """``<directory>/<name>`` for a directory built here and a checked single name."""
    return f"{directory}/{check_file_name(name, 'backup file name')}"


def certificate_key(server: str, backup_id: str, tested_at: datetime, location: str) -> str:
    """``<server>/full/<id>/restore-test-<UTC time>-<location>.json``: a restore certificate."""
    return data_key(server, backup_id, f"{CERTIFICATE_PREFIX}{tested_at:%Y%m%dT%H%M%SZ}-{location}.json")


def is_certificate_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(CERTIFICATE_PREFIX)


def backup_dir_of(key: str) -> str | None:
    """``<server>/full/<id>`` when ``key`` lies in (or is) a backup directory."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[1] == BACKUPS_DIR and is_backup_id(parts[2]):
        return "/".join(parts[:3])
    return None


def split_backup_dir(directory: str) -> tuple[str, str]:
    """``(server, backup_id)`` of ``<server>/full/<id>``."""
    server, _, backup_id = directory.split("/")
    return server, backup_id


def is_backup_manifest_key(key: str, server: str) -> bool:
    """``key`` is ``<server>/full/<something>/manifest.json`` (the manifest still names its id)."""
    return (
        key.startswith(f"{server}/{BACKUPS_DIR}/")
        and key.endswith("/" + MANIFEST_NAME)
        and key.count("/") == 3
    )


def backups_prefix(server: str) -> str:
    """``<server>/full``: where a server's backups are listed."""
    return f"{check_server_name(server)}/{BACKUPS_DIR}"


# --------------------------------------------------------------------------- binlog keys


def binlog_data_key(server: str, file: str, extension: str) -> str:
    """``<server>/binlogs/<file><ext>`` e.g. ``db1/binlogs/mysql-bin.000042.zst``."""
    _binlog_name(file)
    return f"{binlog_dir(server)}/{file}{extension}"


def binlog_manifest_key(server: str, file: str) -> str:
    """``<server>/binlogs/<file>.json``: a binlog's commit marker, written last."""
    _binlog_name(file)
    return f"{binlog_dir(server)}/{file}{BINLOG_MANIFEST_SUFFIX}"


def binlog_stored_key(server: str, stored_path: str) -> str:
    """The key of a stored binlog copy named by its manifest (a checked single name)."""
    return f"{binlog_dir(server)}/{check_file_name(stored_path, 'stored binlog name')}"


def is_binlog_manifest_key(key: str) -> bool:
    return key.endswith(BINLOG_MANIFEST_SUFFIX) and f"/{BINLOGS_DIR}/" in key


def archived_binlogs(keys: Sequence[str], server: str) -> list[str]:
    """Binlog file names that have a manifest among ``keys`` (a listing of the location)."""
    prefix = binlog_dir(server) + "/"
    names = []
    for key in keys:
        if not key.startswith(prefix) or not key.endswith(BINLOG_MANIFEST_SUFFIX):
            continue
        name = key[len(prefix) : -len(BINLOG_MANIFEST_SUFFIX)]
        if "/" in name or name.startswith(TMP_PREFIX):
            continue
        with contextlib.suppress(ConfigError):
            binlog_sequence(name)
            names.append(name)
    return sorted(names, key=binlog_sequence)


def _binlog_name(file: str) -> None:
    try:
        check_binlog_file_name(file)
    except UnsafePath as exc:
        raise ConfigError(str(exc)) from None


def binlog_basename(file: str) -> str:
    """``mysql-bin`` of ``mysql-bin.000042``."""
    return file.rsplit(".", 1)[0]


def binlog_sibling(file: str, sequence: int) -> str:
    """The file name with another sequence, keeping the width (``mysql-bin.000007``)."""
    base, suffix = file.rsplit(".", 1)
    return f"{base}.{sequence:0{len(suffix)}d}"


# --------------------------------------------------------------------------- parsing a listing


def place_of(key: str) -> tuple[str, str | None]:
    """Where a listed key belongs, by its name alone:

    * ``("temporary", None)``: an in-flight object (``.tmp-*``);
    * ``("backup", "<server>/full/<id>")``: in a backup directory;
    * ``("binlog", "<server>/<file>")``: a binlog archive member (data or manifest);
    * ``("other", None)``: nothing mysqlops writes (an orphan).
    """
    if key.rsplit("/", 1)[-1].startswith(TMP_PREFIX):
        return "temporary", None
    parts = key.split("/")
    if len(parts) < 3:
        return "other", None
    server, area, rest = parts[0], parts[1], "/".join(parts[2:])
    if area == BACKUPS_DIR and "/" in rest and is_backup_id(rest.split("/", 1)[0]):
        return "backup", f"{server}/{area}/{rest.split('/', 1)[0]}"
    if area == BINLOGS_DIR and "/" not in rest:
        if rest.endswith(BINLOG_MANIFEST_SUFFIX):
            stem = rest[: -len(BINLOG_MANIFEST_SUFFIX)]
        elif rest.count(".") > 1:
            stem = rest.rsplit(".", 1)[0]
        else:
            stem = rest
        return "binlog", f"{server}/{stem}"
    return "other", None
