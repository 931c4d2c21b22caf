"""Pinned backups and the backup inventory, through the flows: real backups of a sandbox server
on a local location and a moto S3 endpoint, real restore certificates and binlog archives."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import catalog, layout
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.streams import crypto

pytestmark = [pytest.mark.flows, pytest.mark.integration]

LOCS = ["pi-local", "pi-s3"]


@pytest.fixture(scope="module")
def env(sandbox_root: str, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import boto3
    from prefect.blocks.system import Secret

    from blocks import BackupLocation, MySQLServer

    server = sandbox.start_server(sandbox_root, "fpin", server_id=731)
    with db.session(server.spec()) as conn:
        db.execute(conn, "CREATE DATABASE app")
        db.execute(conn, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")
        db.execute(conn, "INSERT INTO app.t (v) VALUES ('a'), ('b')")
    boto3.client(
        "s3", endpoint_url=moto_server, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket="pin-bucket")
    MySQLServer(
        port=server.port, user="root", password=SecretStr(server.root_password), server_name="fpin"
    ).save("pi-server", overwrite=True)
    BackupLocation(url=f"file://{tmp_path_factory.mktemp('pi')}/b").save("pi-local", overwrite=True)
    BackupLocation(
        url="s3://pin-bucket/m",
        key=SecretStr("testing"),
        secret=SecretStr("testing"),
        endpoint_url=moto_server,
        offsite=True,
    ).save("pi-s3", overwrite=True)
    key = crypto.generate_key()
    Secret(value=crypto.format_key(key)).save("pi-key", overwrite=True)
    yield server, crypto.key_id(key)
    sandbox.stop_server(server)


def _locations() -> list[Any]:
    from flows.common import load_location

    return [load_location(n) for n in LOCS]


def _present(server: str, backup_id: str) -> dict[str, bool]:
    return {loc.name: Store(loc).exists(layout.manifest_key(server, backup_id)) for loc in _locations()}


def test_pinned_backup_survives_retention(env: Any) -> None:
    from flows.backup import backup
    from flows.pins import pin_backup, unpin_backup
    from flows.restore import restore_test
    from flows.retention import apply_retention
    from mysqlops.retention.plan import KEPT_PINNED

    server, _ = env
    first = backup(server="pi-server", locations=LOCS, progress_interval=0)["backup_id"]
    second = backup(server="pi-server", locations=LOCS, progress_interval=0)["backup_id"]
    assert [t["passed"] for t in restore_test(locations=LOCS, servers=["fpin"])] == [True, True]
    written = pin_backup(server="fpin", backup_id=first, locations=LOCS, reason="legal hold TICKET-1")
    assert {r["location"] for r in written} == set(LOCS)

    plan = apply_retention(locations=LOCS, policy={"keep_last": 1}, apply=True)
    assert plan["pi-local"]["delete"] == 0 and plan["pi-s3"]["delete"] == 0
    assert _present("fpin", first) == {"pi-local": True, "pi-s3": True}
    # the plan rows say why: "kept: pinned"
    from mysqlops.pins import pinned_backups
    from mysqlops.retention import RetentionPolicy, plan_for_scan

    scans = catalog.scan(_locations())
    assert set(pinned_backups(scans)) == {("fpin", first)}
    rows = plan_for_scan(
        scans[0], RetentionPolicy.from_mapping({"keep_last": 1}), datetime.now(UTC)
    ).to_rows()
    by_id = {r["backup_id"]: r for r in rows if r["server"] == "fpin"}
    assert by_id[first]["decision"] == "keep" and by_id[first]["reasons"] == KEPT_PINNED
    assert "pinned" in by_id[first]["flags"]

    # unpinned (a later marker, the pin's marker stays): retention deletes it now
    unpin_backup(server="fpin", backup_id=first, locations=LOCS, reason="hold lifted")
    markers = [k for k in Store(_locations()[0]).list_keys(layout.backup_dir("fpin", first)) if "/pin-" in k]
    assert len(markers) == 2
    plan = apply_retention(locations=LOCS, policy={"keep_last": 1}, apply=True)
    assert plan["pi-local"]["delete"] == 1 and plan["pi-s3"]["delete"] == 1
    assert _present("fpin", first) == {"pi-local": False, "pi-s3": False}
    assert _present("fpin", second) == {"pi-local": True, "pi-s3": True}


def test_backup_inventory(env: Any) -> None:
    from prefect.client.orchestration import get_client

    from flows.backup import backup
    from flows.binlogs import archive_binlogs
    from flows.inventory import backup_inventory
    from flows.pins import pin_backup
    from flows.restore import restore_test

    server, kid = env
    old = backup(server="pi-server", locations=LOCS, encryption_key="pi-key", progress_interval=0)
    with db.session(server.spec()) as conn:
        db.execute(conn, "INSERT INTO app.t (v) VALUES ('c')")
    archive_binlogs(server="pi-server", locations=LOCS, encryption_key="pi-key")
    new = backup(server="pi-server", locations=LOCS, encryption_key="pi-key", progress_interval=0)
    time.sleep(1.2)  # binlog event times have 1 s resolution: the next event is after the backup
    with db.session(server.spec()) as conn:
        db.execute(conn, "INSERT INTO app.t (v) VALUES ('d')")
    archive_binlogs(server="pi-server", locations=LOCS, encryption_key="pi-key")
    restore_test(locations=LOCS, servers=["fpin"], encryption_keys=["pi-key"])
    pin_backup(server="fpin", backup_id=old["backup_id"], locations=LOCS, reason="audit")

    result = backup_inventory(locations=LOCS)
    assert not result["errors"]
    rows = {(r["backup_id"], r["location"]): r for r in result["backups"] if r["server"] == "fpin"}
    for loc in LOCS:
        o, n = rows[(old["backup_id"], loc)], rows[(new["backup_id"], loc)]
        assert o["encryption_key_id"] == kid and n["encryption_key_id"] == kid
        assert o["pinned"].startswith("pinned: audit") and n["pinned"] == "no"
        assert n["restore_test"] == "passed" and n["restore_tested_at"] != "-"
        assert o["restore_test"] == "untested" and o["restore_tested_at"] == "-"
        assert n["size"].endswith(("B", "KiB", "MiB")) and n["stored_bytes"] > 0
    binlogs = [r for r in result["binlogs"] if r["server"] == "fpin"]
    assert {r["location"] for r in binlogs} == set(LOCS) and all(r["files"] >= 1 for r in binlogs)
    assert all(r["encryption_key_id"] == kid for r in binlogs)
    window = next(w for w in result["windows"] if w["server"] == "fpin")
    # the window starts at the oldest backup a restore test proved (old is untested: not a start)
    proven = [
        r
        for r in result["backups"]
        if r["server"] == "fpin" and r["restore_test"] in ("passed", "proven-by-copy")
    ]
    start = min(proven, key=lambda r: r["finished_at"])
    assert window["oldest_point"] == f"{start['finished_at']} (backup {start['backup_id']})"
    assert start["backup_id"] != old["backup_id"]
    newest_binlog = max(r["last_event_at"] for r in binlogs)
    assert window["newest_point"] == f"{newest_binlog} (binlogs)"
    assert window["newest_point"] > rows[(new["backup_id"], "pi-local")]["finished_at"]

    async def artifacts() -> dict[str, str]:
        keys = ["backup-inventory", "inventory-fpin"]
        async with get_client() as client:
            response = await client._client.post(
                "/artifacts/filter", json={"artifacts": {"key": {"any_": keys}}, "sort": "CREATED_DESC"}
            )
            found: dict[str, str] = {}
            for a in response.json():
                found.setdefault(a["key"], a["data"])
            return found

    found = asyncio.run(artifacts())
    assert set(found) == {"backup-inventory", "inventory-fpin"}
    fleet = found["backup-inventory"]
    [fleet_row] = [line for line in fleet.splitlines() if line.startswith("| fpin |")]
    assert f"| {window['window']} |" in fleet_row and f"| {newest_binlog} |" in fleet_row
    detail = found["inventory-fpin"]
    assert "**Recovery window:**" in detail and newest_binlog in detail
    for r in (rows[(b["backup_id"], loc)] for b in (old, new) for loc in LOCS):
        line = next(
            line for line in detail.splitlines() if r["backup_id"] in line and f"| {r['location']} |" in line
        )
        assert (
            r["size"] in line
            and kid in line
            and ("| pinned: audit" in line) == (r["backup_id"] == old["backup_id"])
        )


def test_pin_command_line(env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m mysqlops pin/unpin`` writes the same markers without Prefect."""
    from mysqlops.__main__ import main
    from mysqlops.pins import pinned_backups

    local = _locations()[0]
    newest = max(m.backup_id for m in catalog.scan_location(local).backups if m.server == "fpin")
    assert main(["pin", "fpin", newest, "--location", local.url, "--reason", "cli"]) == 0
    assert f"pinned fpin/{newest} at {local.url}" in capsys.readouterr().out
    assert ("fpin", newest) in pinned_backups([catalog.scan_location(local)])
    assert main(["unpin", "fpin", newest, "--location", local.url]) == 0
    assert ("fpin", newest) not in pinned_backups([catalog.scan_location(local)])
    assert main(["pin", "fpin", "20200101T000000Z-000000", "--location", local.url]) == 2
    assert "not found at locations" in capsys.readouterr().err
