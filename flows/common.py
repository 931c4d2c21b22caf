"""Helpers shared by the flows: block loading, JSON-safe artifacts, logging."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from blocks import BackupLocation, MySQLServer
from mysqlops.crypto import Keyring
from mysqlops.errors import ConfigError
from mysqlops.model import Location, ServerSpec


def load_server(block_name: str) -> ServerSpec:
    """Load a ``MySQLServer`` block by name; a clear error when it does not exist."""
    try:
        block = cast(MySQLServer, MySQLServer.load(block_name))
    except ValueError as exc:
        raise ConfigError(
            f"no MySQLServer block named {block_name!r}: create it in the Prefect UI "
            f"(Blocks > MySQL Server) or with MySQLServer(...).save({block_name!r})"
        ) from exc
    return block.to_spec(block.server_name or block_name)


def load_location(block_name: str) -> Location:
    try:
        block = cast(BackupLocation, BackupLocation.load(block_name))
    except ValueError as exc:
        raise ConfigError(
            f"no BackupLocation block named {block_name!r}: create it in the Prefect UI "
            f"(Blocks > Backup Location) or with BackupLocation(url=...).save({block_name!r})"
        ) from exc
    return block.to_location(block.location_name or block_name)


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow ``[a-z0-9-]`` only."""
    key = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return key[:100] or "mysqlops"


def json_safe(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in json.loads(json.dumps(list(rows), default=str))]


def table_artifact(key: str, rows: Sequence[Mapping[str, Any]], description: str) -> None:
    create_table_artifact(key=artifact_key(key), table=json_safe(rows), description=description)


def markdown_artifact(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)


def load_keyring(secret_blocks: list[str] | None) -> Keyring | None:
    """Encryption keys from Prefect Secret blocks: the first is current, the rest are older
    keys still needed to read older backups. None when no block is named."""
    if not secret_blocks:
        return None
    from prefect.blocks.system import Secret

    texts = []
    for name in secret_blocks:
        try:
            secret = cast(Secret[Any], Secret.load(name))
        except ValueError as exc:
            raise ConfigError(
                f"no Secret block named {name!r} (it should hold a base64 encryption key)"
            ) from exc
        texts.append(str(secret.get()))
    return Keyring.from_text(texts[0], texts[1:])
