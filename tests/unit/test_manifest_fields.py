"""Manifest fields are declared once and written/read by one routine (mysqlops.jsondoc).

The golden files in data/manifests were written by the code before the fields were declared
once (commit e72a721): what they hold must parse and re-serialise to the same bytes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mysqlops.errors import ManifestError
from mysqlops.jsondoc import INT, Document, json_as
from mysqlops.manifest import BackupManifest, BinlogManifest, RestoreCertificate

GOLDEN = Path(__file__).parent / "data" / "manifests"
KINDS: dict[str, type] = {
    "backup": BackupManifest,
    "binlog": BinlogManifest,
    "certificate": RestoreCertificate,
}


def _kind(name: str) -> type:
    return KINDS[name.removeprefix("old-").split("-")[0].split(".")[0]]


CURRENT = sorted(p.name for p in GOLDEN.glob("*.json") if not p.name.startswith("old-"))
OLD = sorted(p.name for p in GOLDEN.glob("old-*.json") if "reserialised" not in p.name)


@pytest.mark.parametrize("name", CURRENT)
def test_golden_manifest_reserialises_to_the_same_bytes(name: str) -> None:
    text = (GOLDEN / name).read_text()
    parsed = _kind(name).from_json(text)
    assert parsed.to_json() == text
    assert _kind(name).from_json(parsed.to_json()) == parsed


@pytest.mark.parametrize("name", OLD)
def test_old_manifest_still_parses(name: str) -> None:
    parsed = _kind(name).from_json((GOLDEN / name).read_text())
    assert parsed.to_json() == (GOLDEN / name.replace(".json", ".reserialised.json")).read_text()


def test_missing_required_field_is_refused_naming_it() -> None:
    doc = json.loads((GOLDEN / "backup-full.json").read_text())
    del doc["started_at"]
    with pytest.raises(ManifestError, match=r"backup manifest is malformed.*started_at"):
        BackupManifest.from_json(json.dumps(doc))
    doc = json.loads((GOLDEN / "binlog-full.json").read_text())
    doc["server_id"] = "one"
    with pytest.raises(ManifestError, match="binlog manifest is malformed"):
        BinlogManifest.from_json(json.dumps(doc))


def test_nested_strict_parts_refuse_unknown_keys_and_null_status_is_not_complete() -> None:
    doc = json.loads((GOLDEN / "certificate-full.json").read_text())
    doc["checks"][0]["surprise"] = 1
    with pytest.raises(ManifestError, match="restore certificate is malformed"):
        RestoreCertificate.from_json(json.dumps(doc))
    doc = json.loads((GOLDEN / "backup-full.json").read_text())
    doc["status"] = None
    with pytest.raises(ManifestError):
        BackupManifest.from_json(json.dumps(doc))
    del doc["status"]
    assert BackupManifest.from_json(json.dumps(doc)).status.value == "complete"


def test_wrong_schema_is_refused() -> None:
    text = (GOLDEN / "binlog-full.json").read_text()
    with pytest.raises(ManifestError, match="unsupported manifest schema"):
        BackupManifest.from_json(text)


def test_a_field_declared_once_drives_both_directions() -> None:
    @dataclasses.dataclass(frozen=True)
    class Doc:
        name: str
        size: int = dataclasses.field(metadata=json_as(INT))
        note: str = "none"

    codec = Document(Doc, "test/1", "test document")
    assert json.loads(codec.dumps(Doc("a", 3))) == {
        "name": "a",
        "size": 3,
        "note": "none",
        "schema": "test/1",
    }
    assert codec.loads('{"schema": "test/1", "name": "a", "size": "7"}') == Doc("a", 7, "none")
    with pytest.raises(ManifestError, match=r"test document is malformed.*size"):
        codec.loads('{"schema": "test/1", "name": "a"}')
