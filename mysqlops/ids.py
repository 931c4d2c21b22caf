"""Sortable UTC backup ids and the object-key layout at a location.

Layout (relative to the location URL)::

    <server>/full/<backup_id>/<db-file>.sql.zst   data files
    <server>/full/<backup_id>/manifest.json       commit marker, written last
    <server>/full/<backup_id>/restore-test-*.json restore certificates
    <server>/binlogs/<binlog file>.zst            archived binlogs
    <server>/binlogs/<binlog file>.json           binlog manifest, written last
    .tmp-*                                        anything starting with .tmp- is in flight

Database names can hold any character; they are percent-encoded into file names so that a
name like ``../x`` or ``a/b`` can never escape the backup's directory.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from mysqlops.errors import ConfigError
from mysqlops.model import check_safe_name

MANIFEST_NAME = "manifest.json"
TMP_PREFIX = ".tmp-"
BACKUPS_DIR = "full"
BINLOGS_DIR = "binlogs"
_ID_RE = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{6})$")


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


def data_file_name(database: str, extension: str) -> str:
    """``<encoded db>.sql<extension>`` e.g. ``shop.sql.zst``."""
    return f"{encode_name(database)}.sql{extension}"


def binlog_dir(server: str) -> str:
    check_safe_name("server", server)
    return f"{server}/{BINLOGS_DIR}"
