"""Helpers shared by the flows: block loading, JSON-safe artifacts, logging."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.core import Block

from blocks import BackupLocation, MySQLServer
from mysqlops.crypto import Keyring
from mysqlops.errors import ConfigError
from mysqlops.model import Location, ServerSpec

B = TypeVar("B", bound=Block)


def load_block(cls: type[B], name: str, ui_name: str, example: str) -> B:
    """Load a block by name, or fail with an error that says how to create it."""
    try:
        return cast(B, cls.load(name))
    except ValueError as exc:
        raise ConfigError(
            f"no {cls.__name__} block named {name!r}: create it in the Prefect UI "
            f"(Blocks > {ui_name}) or with {example}.save({name!r})"
        ) from exc


def load_server(block_name: str) -> ServerSpec:
    """Load a ``MySQLServer`` block by name; a clear error when it does not exist."""
    block = load_block(MySQLServer, block_name, "MySQL Server", "MySQLServer(...)")
    return block.to_spec(block.server_name or block_name)


def load_location(block_name: str) -> Location:
    block = load_block(BackupLocation, block_name, "Backup Location", "BackupLocation(url=...)")
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

    texts = [
        str(load_block(Secret, name, "Secret", "Secret(value='<base64 32-byte key>')").get())
        for name in secret_blocks
    ]
    return Keyring.from_text(texts[0], texts[1:])
