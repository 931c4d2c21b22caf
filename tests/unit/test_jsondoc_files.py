"""Files mysqlops writes for itself go through mysqlops.jsondoc (fields declared once, one
codec), and what an older version wrote is still understood: the owner marker of a killed run
(the reaper must still reap it), a sandbox's state file, a cached build's build.json, a pin."""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mysqlops.adapters import reaper, sandbox
from mysqlops.adapters.builds import tree
from mysqlops.adapters.builds.names import BUILD_DOC, BuildRecord
from mysqlops.adapters.sandbox_setup import STATE_DOC, SandboxServer
from mysqlops.model import Flavor
from mysqlops.pins import PinMarker
from tests.unit.test_reaper import _dead_owner


def test_owner_marker_of_an_older_version_is_still_reaped(tmp_path: pathlib.Path) -> None:
    gone = _dead_owner()
    old = tmp_path / "mysqlops-staging-old"
    old.mkdir(mode=0o700)
    (old / reaper.MARKER).write_text(  # exactly what mysqlops wrote before markers had a schema
        json.dumps(
            {
                "pid": gone.pid,
                "start": gone.start,
                "boot_id": gone.boot_id,
                "host": gone.host,
                "pidns": gone.pidns,
                "purpose": "mysqlops-staging",
                "session": "",
                "created": "2026-11-20T10:00:00+00:00",
            }
        )
    )
    new = tmp_path / "mysqlops-staging-new"
    new.mkdir(mode=0o700)
    reaper.mark(str(new), "mysqlops-staging")
    assert json.loads((new / reaper.MARKER).read_text())["schema"] == reaper.MARKER_SCHEMA
    marked = reaper.read_marker(str(old))
    assert marked is not None and marked.owner == gone and marked.purpose == "mysqlops-staging"
    future = tmp_path / "mysqlops-staging-future"
    future.mkdir(mode=0o700)
    (future / reaper.MARKER).write_text(json.dumps({"schema": "mysqlops.owner/9", "pid": gone.pid}))
    assert reaper.read_marker(str(future)) is None  # not understood: never judged, never removed
    report = reaper.reap([str(tmp_path)], defaults=False, prefect=False)
    assert [r.path for r in report.removed] == [str(old)]
    assert new.is_dir() and future.is_dir()


def test_sandbox_state_of_an_older_version_is_still_read(tmp_path: pathlib.Path) -> None:
    for name, extra in (("v1", {}), ("v2", {"build": "mariadb-10.11", "client": ["/usr/bin/mariadb"]})):
        directory = tmp_path / name
        directory.mkdir()
        doc = {"name": name, "directory": str(directory), "port": 3307, "server_id": 5, "pid": 1}
        doc |= {"flavor": "mariadb", "version": "10.11.6", "tuned": False, "running": True, **extra}
        (directory / sandbox.STATE_FILE).write_text(json.dumps(doc, indent=2))
        (directory / "client.cnf").write_text('[client]\nuser=root\npassword="s3cr\\"et"\n')
    v1, v2 = sandbox.load_servers(tmp_path)
    assert (v1.build, v1.client, v1.flavor) == ("", (), Flavor.MARIADB)
    assert (v2.build, v2.client, v2.root_password) == ("mariadb-10.11", ("/usr/bin/mariadb",), 's3cr"et')
    written = json.loads(STATE_DOC.dumps(v2))
    assert written["schema"] == "mysqlops.sandbox/1" and "root_password" not in written
    assert written["running"] is False  # pid 1 is not this sandbox's server
    assert STATE_DOC.loads(STATE_DOC.dumps(v2), root_password="x") == replace(v2, root_password="x")
    assert isinstance(v2, SandboxServer)


def test_build_json_of_an_older_version_is_still_read(tmp_path: pathlib.Path) -> None:
    version_dir = tmp_path / "mysql-9.7" / "9.7.4-2"
    version_dir.mkdir(parents=True)
    old: dict[str, Any] = {  # the build.json of the cache before it had a schema (format 1)
        "format": 1,
        "build": "mysql-9.7",
        "flavor": "mysql",
        "series": "9.7",
        "version": "9.7.4",
        "package": "mysql-server-core",
        "package_version": "9.7.4-2",
        "suite": "sid",
        "mirror": "http://deb.debian.org/debian",
        "architecture": "amd64",
        "fetched_at": "2026-11-20T10:00:00+00:00",
        "packages": [{"package": "mysql-server-core", "version": "9.7.4-2", "size": 10, "sha256": "ab"}],
        "download_bytes": 10,
        "unpacked_bytes": 100,
        "download_seconds": 1.5,
        "fetch_seconds": 9.0,
    }
    (version_dir / "build.json").write_text(json.dumps(old, indent=2))
    (rows,) = tree.cached_builds(str(tmp_path))
    assert {k: rows[k] for k in old} == old and rows["path"] == str(version_dir)
    record: BuildRecord = BUILD_DOC.loads(BUILD_DOC.dumps(BUILD_DOC.loads(json.dumps(old))))
    assert record.packages == tuple(old["packages"]) and record.fetch_seconds == 9.0
    (version_dir / "build.json").write_text(json.dumps({**old, "format": 2}))
    assert tree.cached_builds(str(tmp_path)) == []  # a format this code does not know: not a build


def test_pin_marker_is_written_byte_for_byte_as_before() -> None:
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    marker = PinMarker("db1", "20261123T101500Z-3fa2c1", True, at, "ops", "legal hold")
    before: dict[str, Any] = {
        "schema": "mysqlops.pin/1",
        "server": "db1",
        "backup_id": "20261123T101500Z-3fa2c1",
    }
    before |= {"pinned": True, "at": "2026-11-23T10:00:00Z", "by": "ops", "reason": "legal hold"}
    assert marker.to_json() == json.dumps(before, indent=2, sort_keys=True)
    again = PinMarker.from_json(marker.to_json(), "key", "local")
    assert again == replace(marker, key="key", location="local")
    assert os.sep not in again.server
