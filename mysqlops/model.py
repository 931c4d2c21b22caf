"""Frozen value objects shared by the core, the blocks and the flows.

Nothing here does I/O. Secrets are fields with ``repr=False`` so they never show up in a
log line or an exception that formats the object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mysqlops.errors import ConfigError
from mysqlops.gtid import parse_mariadb_gtids
from mysqlops.jsondoc import INT, json_as


class Flavor(StrEnum):
    MARIADB = "mariadb"
    MYSQL = "mysql"


_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class ServerVersion:
    """A server's flavor and version, e.g. MariaDB 10.11.19 or MySQL 8.4.3."""

    flavor: Flavor
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, version: str, version_comment: str = "") -> ServerVersion:
        """Parse ``SELECT VERSION()`` (+ ``@@version_comment``) or a ``--version`` line."""
        text = version.strip()
        m = _VERSION_RE.search(text) or re.search(r"(\d+)\.(\d+)\.(\d+)", text)
        if not m:
            raise ConfigError(f"cannot parse a server version from {text!r}")
        blob = f"{text} {version_comment}".lower()
        flavor = Flavor.MARIADB if "mariadb" in blob else Flavor.MYSQL
        return cls(flavor, int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @property
    def series(self) -> str:
        """Major series such as ``10.11`` or ``8.0``: what a restore target must match."""
        return f"{self.major}.{self.minor}"

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        name = "MariaDB" if self.flavor is Flavor.MARIADB else "MySQL"
        return f"{name} {self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class TLSOptions:
    """Client TLS settings. ``ca`` enables verification of the server certificate."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify_cert: bool = True
    verify_identity: bool = False


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_safe_name(kind: str, value: str) -> str:
    """Names that become path segments (servers, locations) must be plain."""
    if not _SAFE_NAME.match(value or "") or ".." in value:
        raise ConfigError(
            f"{kind} name {value!r} is not allowed: use 1-64 characters of letters, digits, "
            "'_', '.', '-' (starting with a letter or digit, no '..')"
        )
    return value


@dataclass(frozen=True)
class ServerSpec:
    """How to reach one MySQL/MariaDB server. ``password`` never appears in repr."""

    name: str
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str | None = field(default=None, repr=False)
    socket: str | None = None
    tls: TLSOptions | None = None
    description: str = ""

    def __post_init__(self) -> None:
        check_safe_name("server", self.name)
        if not (0 < int(self.port) < 65536):
            raise ConfigError(f"server {self.name!r}: port {self.port} is not in 1..65535")
        if not self.user:
            raise ConfigError(f"server {self.name!r}: user must not be empty")

    @property
    def endpoint(self) -> str:
        """Where the server is, for messages: ``host:port`` or the socket path."""
        return self.socket if self.socket else f"{self.host}:{self.port}"

    def with_credentials(self, user: str, password: str | None) -> ServerSpec:
        return replace(self, user=user, password=password)


@dataclass(frozen=True)
class Location:
    """A place backups are stored: any fsspec URL (``file:///...``, ``s3://bucket/prefix``).

    ``storage_options`` go to fsspec unchanged (keys, endpoint_url, ...); never shown in repr.
    ``offsite`` and ``kind`` feed the 3-2-1 report.
    """

    name: str
    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    offsite: bool = False

    def __post_init__(self) -> None:
        check_safe_name("location", self.name)
        if not self.url or ("://" not in self.url and not self.url.startswith("/")):
            raise ConfigError(
                f"location {self.name!r}: url {self.url!r} is not a URL; use e.g. "
                "file:///var/backups/mysql or s3://bucket/prefix"
            )
        if self.url != self.url.strip() or any(ord(c) < 32 for c in self.url):
            raise ConfigError(
                f"location {self.name!r}: url {self.url!r} has surrounding spaces or control characters"
            )
        rest = self.url.split("://", 1)[1] if "://" in self.url else self.url
        if self.protocol in ("file", "local") and not rest.startswith("/"):
            # file://backups/x is the RELATIVE path backups/x: it lands under the current directory of
            # whichever process runs the flow (a worker's, a notebook's), not where the operator meant
            raise ConfigError(
                f"location {self.name!r}: url {self.url!r} is a relative path (it would resolve against the "
                "current directory of the process running the flow); give an absolute one: "
                "file:///var/backups/mysql (three slashes) or /var/backups/mysql"
            )
        if self.protocol in ("s3", "s3a", "gs", "gcs", "az", "abfs") and not rest.split("/", 1)[0]:
            raise ConfigError(
                f"location {self.name!r}: url {self.url!r} names no bucket; use {self.protocol}://bucket/prefix"
            )

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0] if "://" in self.url else "file"

    @property
    def kind(self) -> str:
        """Kind of storage for 3-2-1: ``local`` for files, else the protocol (s3, gcs, ...)."""
        return "local" if self.protocol in ("file", "local") else self.protocol


@dataclass(frozen=True)
class ObjectCounts:
    """Schema objects in a database (or a whole backup)."""

    tables: int = 0
    views: int = 0
    routines: int = 0
    triggers: int = 0
    events: int = 0

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def differences(self, other: ObjectCounts) -> list[str]:
        """Human readable ``kind: expected N, found M`` for each count that differs."""
        return [
            f"{f.name}: expected {getattr(self, f.name)}, found {getattr(other, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


@dataclass(frozen=True)
class BinlogCoordinates:
    """A consistent point: binlog file + position, and the GTID set executed there."""

    file: str
    position: int = field(metadata=json_as(INT))
    gtid: str | None = None

    @property
    def sequence(self) -> int:
        """Numeric suffix of the file name (``mysql-bin.000042`` -> 42)."""
        return binlog_sequence(self.file)


def binlog_sequence(file_name: str) -> int:
    try:
        return int(file_name.rsplit(".", 1)[1])
    except (IndexError, ValueError) as exc:
        raise ConfigError(f"binlog file name {file_name!r} has no numeric suffix") from exc


class BackupKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    BINLOG = "binlog"


class BackupMethod(StrEnum):
    LOGICAL = "logical"
    PHYSICAL = "physical"
    BINLOG = "binlog"


class BackupStatus(StrEnum):
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class BackupRecord:
    """One backup (or one archived binlog) as seen at one location: the catalog's row.

    Built from a manifest found at a location. Retention plans and reports work on these.
    ``created_at`` is the end of the backup, timezone-aware UTC, from the manifest.
    ``binlog_sequence``: for a full/incremental backup, the sequence of the binlog file of its
    recorded coordinates (PITR starts there); for a binlog archive, its own sequence.
    ``parent_id``: the backup an incremental is based on.
    ``verified``: the copy is *proven* restorable (a restore certificate that passed covers
    it; see ``manifest.copy_verdicts``). ``verdict`` says why or why not (passed,
    proven-by-copy, failed, untested; empty when unknown).
    """

    backup_id: str
    server: str
    location: str
    kind: BackupKind
    method: BackupMethod
    created_at: datetime
    status: BackupStatus = BackupStatus.COMPLETE
    verified: bool = True
    stored_bytes: int = 0
    raw_bytes: int = 0
    parent_id: str | None = None
    keep_forever: bool = False
    binlog_sequence: int | None = None
    pinned: bool = False  # a pin marker (pins.py) says keep it forever
    duration_seconds: float | None = None
    tags: tuple[str, ...] = ()
    verdict: str = ""

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ConfigError(f"backup {self.backup_id}: created_at must be timezone-aware UTC")


@dataclass(frozen=True)
class RecoveryTarget:
    """Where a point-in-time recovery stops: exactly one of a time, a binlog position or a
    GTID set. Parsed once at the edge (:meth:`parse`, from the flow's ``until`` parameters)
    and passed unchanged to the base-backup choice, the binlog selection and the replay argv.

    - ``time``: timezone-aware; events stamped in the target's second are not applied
      (``mysqlbinlog --stop-datetime`` has one-second resolution).
    - ``position``: ``BinlogCoordinates`` of the first event NOT applied (file + position).
    - ``gtid``: a MariaDB GTID list (``0-1-42``): replay stops after it.
    """

    time: datetime | None = None
    position: BinlogCoordinates | None = None
    gtid: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("time", "position", "gtid") if getattr(self, n) not in (None, "")]
        if len(given) != 1:
            raise ConfigError(
                "a recovery target is exactly one of until (a time), until_position or until_gtid; "
                f"got {', '.join(given) or 'none'}"
            )
        if self.time is not None and self.time.tzinfo is None:
            raise ConfigError(
                f"until {self.time.isoformat()} has no time zone: add Z (UTC) or an offset, "
                "e.g. 2026-11-23T10:15:00Z"
            )
        if self.position is not None:
            binlog_sequence(self.position.file)  # a file name without a numeric suffix is refused

    @classmethod
    def parse(
        cls,
        until: str | datetime | None = None,
        until_position: str | None = None,
        until_gtid: str | None = None,
    ) -> RecoveryTarget | None:
        """The target named by a flow's parameters, or None when none is given (a plain restore).

        ``until``: an ISO 8601 date-time with a zone (``2026-11-23T10:15:00Z``);
        ``until_position``: ``mysql-bin.000004:1234``; ``until_gtid``: ``0-1-42``."""
        if not until and not until_position and not until_gtid:
            return None
        when: datetime | None = None
        if isinstance(until, datetime):
            when = until
        elif until:
            try:
                when = datetime.fromisoformat(until.strip().replace("Z", "+00:00"))
            except ValueError as exc:
                raise ConfigError(
                    f"until {until!r} is not an ISO date-time such as 2026-11-23T10:15:00Z"
                ) from exc
            if when.tzinfo is None:
                raise ConfigError(f"until {until!r} has no time zone: add Z (UTC) or an offset")
        position: BinlogCoordinates | None = None
        if until_position:
            file, sep, pos = until_position.strip().rpartition(":")
            if not sep or not file or not pos.isdigit():
                raise ConfigError(f"until_position {until_position!r} must look like mysql-bin.000004:1234")
            position = BinlogCoordinates(file, int(pos))
        if until_gtid:
            parse_mariadb_gtids(until_gtid)
        return cls(time=when, position=position, gtid=until_gtid or None)

    @property
    def stop_position(self) -> tuple[str, int] | None:
        """``(file, position)`` of a position target, else None."""
        return (self.position.file, self.position.position) if self.position else None

    def describe(self) -> str:
        """``datetime 2026-...``, ``position mysql-bin.000004:1234`` or ``gtid 0-1-42``."""
        if self.position is not None:
            return f"position {self.position.file}:{self.position.position}"
        if self.time is not None:
            return f"datetime {self.time.astimezone(UTC).isoformat()}"
        return f"gtid {self.gtid}"
