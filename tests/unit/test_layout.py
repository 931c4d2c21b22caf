"""One key layout: every object key is built and parsed in mysqlops/layout.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mysqlops import layout
from mysqlops.errors import ConfigError, UnsafePath

BID = "20261123T101500Z-3fa2c1"
ROOT = Path(__file__).resolve().parents[2]


def test_backup_keys() -> None:
    assert layout.manifest_key("db1", BID) == f"db1/full/{BID}/manifest.json"
    assert layout.data_key("db1", BID, "shop.sql.zst") == f"db1/full/{BID}/shop.sql.zst"
    tested = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    key = layout.certificate_key("db1", BID, tested, "s3-main")
    assert key == f"db1/full/{BID}/restore-test-20261123T110000Z-s3-main.json"
    assert layout.is_certificate_key(key) and not layout.is_certificate_key(layout.manifest_key("db1", BID))
    assert layout.backup_dir_of(key) == f"db1/full/{BID}"
    assert layout.split_backup_dir(layout.backup_dir("db1", BID)) == ("db1", BID)
    assert layout.is_backup_manifest_key(layout.manifest_key("db1", BID), "db1")
    assert not layout.is_backup_manifest_key(layout.manifest_key("db1", BID), "db2")
    with pytest.raises(UnsafePath):
        layout.data_key("db1", BID, "../escape")
    with pytest.raises(UnsafePath):
        layout.member_key(layout.backup_dir("db1", BID), "a/b")
    with pytest.raises(ConfigError):
        layout.manifest_key("db1", "not-an-id")


def test_binlog_keys() -> None:
    assert layout.binlog_data_key("db1", "mysql-bin.000042", ".zst") == "db1/binlogs/mysql-bin.000042.zst"
    assert layout.binlog_manifest_key("db1", "mysql-bin.000042") == "db1/binlogs/mysql-bin.000042.json"
    assert layout.binlog_stored_key("db1", "mysql-bin.000042.zst") == "db1/binlogs/mysql-bin.000042.zst"
    keys = [
        "db1/binlogs/mysql-bin.000010.json",
        "db1/binlogs/mysql-bin.000009.json",
        "db1/binlogs/mysql-bin.000009.zst",
        "db1/binlogs/.tmp-ab-mysql-bin.000011.json",
        "db2/binlogs/mysql-bin.000001.json",
    ]
    assert layout.archived_binlogs(keys, "db1") == ["mysql-bin.000009", "mysql-bin.000010"]
    assert layout.binlog_basename("mysql-bin.000042") == "mysql-bin"
    assert layout.binlog_sibling("mysql-bin.000042", 7) == "mysql-bin.000007"
    with pytest.raises(ConfigError):
        layout.binlog_manifest_key("db1", "../x.000001")


@pytest.mark.parametrize(
    ("key", "place"),
    [
        (f"db1/full/{BID}/manifest.json", ("backup", f"db1/full/{BID}")),
        (f"db1/full/{BID}/restore-test-x.json", ("backup", f"db1/full/{BID}")),
        ("db1/binlogs/mysql-bin.000042.json", ("binlog", "db1/mysql-bin.000042")),
        ("db1/binlogs/mysql-bin.000042.zst.enc", ("binlog", "db1/mysql-bin.000042.zst")),
        ("db1/binlogs/mysql-bin.000042.zst", ("binlog", "db1/mysql-bin.000042")),
        (f"db1/full/{BID}/.tmp-abc-shop.sql.zst", ("temporary", None)),
        (".tmp-abc-probe", ("temporary", None)),
        ("db1/full/not-an-id/manifest.json", ("other", None)),
        ("README", ("other", None)),
        ("db1/elsewhere/x", ("other", None)),
    ],
)
def test_place_of_a_listed_key(key: str, place: tuple[str, str | None]) -> None:
    assert layout.place_of(key) == place


def test_temporary_names_are_temporary() -> None:
    name = layout.temporary_name("shop.sql.zst")
    assert name.endswith("-shop.sql.zst") and layout.place_of(name) == ("temporary", None)


def test_no_key_is_built_outside_layout() -> None:
    """The layout's constants and key segments (``full/``, ``binlogs/``, ``manifest.json``,
    a ``restore-test-`` or ``.tmp-`` prefix with a key after it) appear in no other module of the
    core, blocks, flows or deployments (local temporary files and status words are not keys)."""
    pattern = re.compile(
        r"BACKUPS_DIR|BINLOGS_DIR|CERTIFICATE_PREFIX|TMP_PREFIX|BINLOG_MANIFEST_SUFFIX"
        r"|[\"'/]full/|/binlogs/|\"manifest\.json\"|\"restore-test-\"|\"\.tmp-\"|\"\.tmp-\{secrets"
    )
    offenders = []
    for folder in ("mysqlops", "blocks", "flows", "deployments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "mysqlops" / "layout.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if pattern.search(code):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "keys built outside mysqlops/layout.py:\n" + "\n".join(offenders)
