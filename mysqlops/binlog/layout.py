"""Where binlog archives live at a location."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from mysqlops import layout
from mysqlops.errors import (
    ConfigError,
    UnsafePath,
)
from mysqlops.model import binlog_sequence

MANIFEST_SUFFIX = ".json"


# =========================================================================== key layout
def data_key(server: str, file: str, extension: str) -> str:
    """``<server>/binlogs/<file><ext>`` e.g. ``db1/binlogs/mysql-bin.000042.zst``."""
    _check_file_name(file)
    return f"{layout.binlog_dir(server)}/{file}{extension}"


def manifest_key(server: str, file: str) -> str:
    """``<server>/binlogs/<file>.json``: the commit marker, written last."""
    _check_file_name(file)
    return f"{layout.binlog_dir(server)}/{file}{MANIFEST_SUFFIX}"


def archived_files(keys: Sequence[str], server: str) -> list[str]:
    """Binlog file names that have a manifest among ``keys`` (a listing of the location)."""
    prefix = layout.binlog_dir(server) + "/"
    names = []
    for key in keys:
        if not key.startswith(prefix) or not key.endswith(MANIFEST_SUFFIX):
            continue
        name = key[len(prefix) : -len(MANIFEST_SUFFIX)]
        if "/" in name or name.startswith(layout.TMP_PREFIX):
            continue
        with contextlib.suppress(ConfigError):
            binlog_sequence(name)
            names.append(name)
    return sorted(names, key=binlog_sequence)


def _check_file_name(file: str) -> None:
    try:
        layout.check_binlog_file_name(file)
    except UnsafePath as exc:
        raise ConfigError(str(exc)) from None


def basename_of(file: str) -> str:
    return file.rsplit(".", 1)[0]


def sibling(file: str, sequence: int) -> str:
    """The file name with another sequence, keeping the width (``mysql-bin.000007``)."""
    base, suffix = file.rsplit(".", 1)
    return f"{base}.{sequence:0{len(suffix)}d}"
