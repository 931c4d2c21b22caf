"""Binlog archiving and point-in-time replay against real sandbox servers, the real
mariadb-binlog / mariadb / mariadb-dump clients, a local location and moto S3."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mysqlops import layout
from mysqlops.adapters import process, sandbox
from mysqlops.adapters.mysql import query, scalar, session
from mysqlops.adapters.storage import Store
from mysqlops.binlog import BinlogGap, BinlogHistoryChanged, archive_binlogs, replay_binlogs
from mysqlops.binlog import plan as binlog_plan
from mysqlops.binlog import replay as binlog_replay
from mysqlops.binlog.archive import list_archived
from mysqlops.manifest import BackupManifest, BinlogManifest
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, Location, RecoveryTarget, ServerSpec
from mysqlops.runs import RunContext
from mysqlops.streams.compression import codec
from mysqlops.tools.client import DumpOptions, client_option_file, dump_argv, mysql_argv

pytestmark = pytest.mark.integration

ZSTD = codec("zstd", threads=1)


def sql(spec: ServerSpec, *statements: str) -> None:
    with session(spec) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def staging(tmp_path: os.PathLike[str]) -> str:
    path = os.path.join(os.fspath(tmp_path), "stage")
    os.makedirs(path, exist_ok=True)
    return path


def now() -> datetime:
    return datetime.now(UTC)


_HEADER = re.compile(r"^#(\d{6})\s+(\d{1,2}:\d\d:\d\d) server id (\d+)\s+end_log_pos \d+.*?\t(.*)$")


def tool_view(path: str) -> dict[str, object]:
    """Times and GTIDs of a binlog as the real mariadb-binlog prints them (cross-check)."""
    out = process.run(["mariadb-binlog", "--no-defaults", "--base64-output=decode-rows", path]).stdout
    times, gtids = [], []
    for line in out.decode("utf-8", "replace").splitlines():
        m = _HEADER.match(line)
        if not m:
            continue
        stamp = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%y%m%d %H:%M:%S").replace(tzinfo=UTC)
        times.append(stamp)
        g = re.match(r"GTID (\d+-\d+-\d+)", m.group(4))
        if g:
            gtids.append(g.group(1))
    return {"first": min(times), "last": max(times), "gtids": gtids}


def test_archive_local_and_s3_then_nothing_twice(
    fresh_server: sandbox.SandboxServer,
    local_location: Location,
    s3_location: Location,
    tmp_path: os.PathLike[str],
) -> None:
    spec = fresh_server.spec()
    sql(
        spec,
        "CREATE DATABASE shop",
        "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(100))",
        "INSERT INTO shop.t VALUES (1, 'a'), (2, 'b')",
        "FLUSH BINARY LOGS",
        "INSERT INTO shop.t SELECT id + 10, REPEAT('x', 90) FROM shop.t",
    )
    stage = staging(tmp_path)
    first = archive_binlogs(spec, [local_location, s3_location], ZSTD, RunContext(staging_dir=stage), now())
    assert os.listdir(stage) == []  # the 0700 staging dir is gone
    assert first.files == ["mysql-bin.000001", "mysql-bin.000002"]
    assert {a.location for a in first.archived} == {"local", "s3"}
    assert first.active == "mysql-bin.000003" and not first.new_gaps

    stores = [Store(local_location), Store(s3_location)]
    listed = [list_archived(s, spec.name) for s in stores]
    assert [m.file for m in listed[0]] == [m.file for m in listed[1]] == first.files
    for manifest in listed[0]:
        server_file = os.path.join(fresh_server.datadir, manifest.file)
        with open(server_file, "rb") as fh:
            assert manifest.raw_sha256 == hashlib.sha256(fh.read()).hexdigest()  # byte-identical copy
        assert manifest.raw_bytes == os.path.getsize(server_file)
        assert manifest.server_id == fresh_server.server_id and manifest.compression == "zstd-3"
        view = tool_view(server_file)  # our header walk agrees with the real tool
        assert manifest.first_event_at == view["first"] and manifest.last_event_at == view["last"]
        gtids = view["gtids"]
        assert isinstance(gtids, list)
        assert (manifest.gtid_start, manifest.gtid_end) == ((gtids[0], gtids[-1]) if gtids else (None, None))
        assert manifest.archived_at.tzinfo is not None
    with session(spec) as conn:
        pos = scalar(conn, "SELECT @@gtid_binlog_pos")
    assert listed[0][-1].gtid_end == pos

    assert first.rotated
    # nothing written since: an idle server is not rotated (no empty binlog per scheduled run)
    with session(spec) as conn:
        logs_before = [r["Log_name"] for r in query(conn, "SHOW BINARY LOGS")]
    idle = archive_binlogs(spec, [local_location, s3_location], ZSTD, RunContext(staging_dir=stage), now())
    assert not idle.rotated and idle.archived == () and idle.active == "mysql-bin.000003"
    with session(spec) as conn:
        assert [r["Log_name"] for r in query(conn, "SHOW BINARY LOGS")] == logs_before

    sql(spec, "INSERT INTO shop.t VALUES (99, 'after the first archive')")
    second = archive_binlogs(spec, [local_location, s3_location], ZSTD, RunContext(staging_dir=stage), now())
    assert second.rotated and second.files == ["mysql-bin.000003"]  # only the file that was active last time
    assert set(second.skipped) == set(first.files)
    third = archive_binlogs(
        spec, [local_location, s3_location], ZSTD, RunContext(staging_dir=stage), now(), rotate=False
    )
    assert third.archived == () and third.files == [] and not third.rotated
    # a new Store: s3fs caches listings per instance
    assert [m.file for m in list_archived(Store(s3_location), spec.name)] == [
        *first.files,
        "mysql-bin.000003",
    ]


def test_overlapping_runs_adopt_identical_objects(
    fresh_server: sandbox.SandboxServer, local_location: Location, tmp_path: os.PathLike[str]
) -> None:
    spec = fresh_server.spec()
    sql(spec, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)", "INSERT INTO d.t VALUES (1)")
    first = archive_binlogs(spec, [local_location], ZSTD, RunContext(staging_dir=staging(tmp_path)), now())
    store = Store(local_location)
    last = first.files[-1]
    # a run that died after uploading the data but before its manifest
    store.delete(layout.binlog_manifest_key(spec.name, last))
    # ... and the next run compresses differently (another level): same binlog, other bytes
    again = archive_binlogs(
        spec,
        [local_location],
        codec("zstd", level=19, threads=1),
        RunContext(staging_dir=staging(tmp_path)),
        now(),
        rotate=False,
    )
    assert [(a.file, a.adopted) for a in again.archived] == [(last, True)]
    manifest = manifest_for(store, spec.name, last)
    assert manifest.stored_sha256 == next(m.stored_sha256 for m in first.manifests if m.file == last)

    # two runs at once: both succeed, nothing stored twice, nothing overwritten
    sql(spec, "INSERT INTO d.t VALUES (2)")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            archive_binlogs(spec, [local_location], ZSTD, RunContext(staging_dir=staging(tmp_path)), now())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    files = [m.file for m in list_archived(store, spec.name)]
    assert files == sorted(set(files)) and binlog_plan.find_gaps(files) == []
    for m in list_archived(store, spec.name):
        store.verify(f"{spec.name}/binlogs/{m.stored_path}", m.stored_sha256, m.stored_bytes)


def manifest_for(store: Store, server: str, file: str) -> BinlogManifest:
    return next(m for m in list_archived(store, server) if m.file == file)


def test_purged_before_archiving_is_a_loud_gap(
    fresh_server: sandbox.SandboxServer, local_location: Location, tmp_path: os.PathLike[str]
) -> None:
    spec = fresh_server.spec()
    sql(spec, "CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)")
    first = archive_binlogs(spec, [local_location], ZSTD, RunContext(staging_dir=staging(tmp_path)), now())
    assert first.active == "mysql-bin.000002"
    # a full backup whose coordinates are in the file that will be lost
    store = Store(local_location)
    backup = BackupManifest(
        backup_id="20260101T000000Z-abcdef",
        server=spec.name,
        location="local",
        kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL,
        flavor="mariadb",
        server_version="10.11",
        databases=("d",),
        files=(),
        started_at=now(),
        finished_at=now(),
        compression="zstd-3",
        coordinates=BinlogCoordinates("mysql-bin.000002", 400),
    )
    store.put_bytes(backup.to_json().encode(), f"{spec.name}/full/{backup.backup_id}/manifest.json")
    for i in range(3):
        sql(spec, f"INSERT INTO d.t VALUES ({i})", "FLUSH BINARY LOGS")
    sql(spec, "PURGE BINARY LOGS TO 'mysql-bin.000004'")  # 2 and 3 were never archived

    with pytest.raises(BinlogGap) as info:
        archive_binlogs(spec, [local_location], ZSTD, RunContext(staging_dir=staging(tmp_path)), now())
    err = info.value
    text = str(err)
    assert err.missing == ("mysql-bin.000002", "mysql-bin.000003")
    assert "mysql-bin.000002, mysql-bin.000003" in text and "IMPOSSIBLE" in text
    assert "20260101T000000Z-abcdef" in text and err.affected_backups == ("20260101T000000Z-abcdef",)
    # everything still available was archived (000005 is active and idle: left open)
    assert err.result is not None and err.result.files == ["mysql-bin.000004"] and not err.result.rotated
    # the next run knows the gap and goes on
    sql(spec, "INSERT INTO d.t VALUES (10)")
    after = archive_binlogs(spec, [local_location], ZSTD, RunContext(staging_dir=staging(tmp_path)), now())
    assert after.known_gaps == {"local": ("mysql-bin.000002", "mysql-bin.000003")}
    assert after.files == ["mysql-bin.000005"]
    # and a replay refuses to cross the gap
    with pytest.raises(BinlogGap, match="cannot cross"):
        binlog_replay.select_replay_files(
            list_archived(store, spec.name),
            BinlogCoordinates("mysql-bin.000001", 4),
            until=RecoveryTarget(position=BinlogCoordinates("mysql-bin.000005", 4)),
        )
    # RESET MASTER (or a re-initialised server): its binlogs no longer continue the archive
    sql(spec, "RESET MASTER")
    with pytest.raises(BinlogHistoryChanged, match="went back"):
        archive_binlogs(spec, [local_location], ZSTD, RunContext(staging_dir=staging(tmp_path)), now())


# --------------------------------------------------------------------------- PITR
@pytest.fixture
def targets(sandbox_root: str, request: pytest.FixtureRequest) -> Iterator[list[sandbox.SandboxServer]]:
    """Three more fresh servers to restore onto (one per stop condition)."""
    base = "p" + str(abs(hash(request.node.nodeid)) % 10**6)
    started: list[sandbox.SandboxServer] = []
    try:
        for i in range(3):
            started.append(sandbox.start_server(sandbox_root, f"{base}-{i}", server_id=900 + i))
        yield started
    finally:
        sandbox.stop_servers(started)


def _rows(spec: ServerSpec) -> list[int] | None:
    with session(spec) as conn:
        if not scalar(
            conn,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='t'",
        ):
            return None
        return [int(r["id"]) for r in query(conn, "SELECT id FROM shop.t ORDER BY id")]


def test_point_in_time_recovery(
    fresh_server: sandbox.SandboxServer,
    targets: list[sandbox.SandboxServer],
    local_location: Location,
    s3_location: Location,
    tmp_path: os.PathLike[str],
) -> None:
    source = fresh_server.spec()
    locations = [local_location, s3_location]
    sql(
        source,
        "CREATE DATABASE shop",
        "CREATE TABLE shop.t (id INT PRIMARY KEY, note VARCHAR(20))",
        "INSERT INTO shop.t VALUES (1, 'T1'), (2, 'T1')",  # T1
    )
    # the full backup: a consistent dump that records its coordinates
    dump = process.run(
        dump_argv("mariadb-dump", "shop", DumpOptions(position_options=("--master-data=2", "--gtid"))),
        credentials=client_option_file(source),
    ).stdout
    m = re.search(rb"MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)", dump)
    assert m, dump[:2000]
    start = BinlogCoordinates(m.group(1).decode(), int(m.group(2)))
    time.sleep(1.1)
    sql(source, "INSERT INTO shop.t VALUES (3, 'T2')", "INSERT INTO shop.t VALUES (4, 'T2')")  # T2
    with session(source) as conn:
        gtid_after_t2 = str(scalar(conn, "SELECT @@gtid_binlog_pos"))
    archive_binlogs(source, locations, ZSTD, RunContext(staging_dir=staging(tmp_path)), now())
    time.sleep(1.1)
    cut = now()  # the target time: after T2, more than a second before T3
    time.sleep(1.1)
    sql(source, "DROP TABLE shop.t", "CREATE TABLE shop.after_drop (id INT PRIMARY KEY)")  # T3: the accident
    with session(source) as conn:
        drop_file = str(query(conn, "SHOW MASTER STATUS")[0]["File"])
        events = query(conn, f"SHOW BINLOG EVENTS IN '{drop_file}'")
    idx = next(i for i, e in enumerate(events) if "DROP TABLE" in str(e["Info"]))
    drop_at = (drop_file, int(events[idx - 1]["Pos"]))  # the GTID event that opens the DROP
    assert events[idx - 1]["Event_type"] == "Gtid"
    archive_binlogs(source, locations, ZSTD, RunContext(staging_dir=staging(tmp_path)), now())

    # corrupt the local copy of the drop's binlog: replay must fall back to S3 for it
    local, s3 = Store(local_location), Store(s3_location)
    corrupt = next(x for x in list_archived(local, source.name) if x.file == drop_file)
    path = local.path(f"{source.name}/binlogs/{corrupt.stored_path}")
    os.chmod(path, 0o600)
    with open(path, "r+b") as fh:
        fh.seek(20)
        fh.write(b"\0garbage\0")

    cases = [
        {"until": RecoveryTarget(position=BinlogCoordinates(*drop_at))},
        {"until": RecoveryTarget(time=cut)},
        {"until": RecoveryTarget(gtid=gtid_after_t2)},
    ]
    for target, stop in zip(targets, cases, strict=True):
        spec = target.spec()
        process.run(mysql_argv("mariadb"), credentials=client_option_file(spec), input=dump)
        assert _rows(spec) == [1, 2]
        stage = staging(tmp_path)
        result = replay_binlogs(spec, [local, s3], source.name, start, staging_dir=stage, **stop)  # type: ignore[arg-type]
        assert os.listdir(stage) == []
        assert _rows(spec) == [1, 2, 3, 4], stop  # T1 + T2, the table exists: T3 not applied
        with session(spec) as conn:
            assert (
                scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME='after_drop'")
                == 0
            )
        assert result.files[0] == start.file and result.raw_bytes > 0
        assert result.gtid_strict_mode_relaxed
        with session(spec) as conn:
            assert scalar(conn, "SELECT @@GLOBAL.gtid_strict_mode") == 1  # restored
        if stop["until"].position is not None:
            assert result.files[-1] == drop_file
            assert result.sources[drop_file] == "s3"
            assert [c.split(":")[:2] for c in result.skipped_copies] == [["local", f" {drop_file}"]]
            assert result.stop == f"position {drop_file}:{drop_at[1]}"

    # replaying to the end of the archive reproduces the accident (proves the stop mattered)
    spec = targets[0].spec()
    sql(spec, "DROP DATABASE shop")
    process.run(mysql_argv("mariadb"), credentials=client_option_file(spec), input=dump)
    replay_binlogs(spec, [s3], source.name, start, staging_dir=staging(tmp_path))
    assert _rows(spec) is None
