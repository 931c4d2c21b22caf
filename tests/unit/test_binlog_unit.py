"""Pure parts of mysqlops.binlog: key names, continuity planning, the event-header walk,
replay file selection and the replay argv."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mysqlops import layout
from mysqlops.binlog import BinlogGap, BinlogHistoryChanged
from mysqlops.binlog import plan as binlog_plan
from mysqlops.binlog.format import scan_binlog
from mysqlops.binlog.plan import find_gaps, plan_location
from mysqlops.binlog.replay import select_replay_files
from mysqlops.errors import ConfigError, IntegrityError, RestoreError
from mysqlops.gtid import parse_mariadb_gtids
from mysqlops.manifest import BackupManifest, BinlogManifest
from mysqlops.model import BackupKind, BackupMethod, BinlogCoordinates, RecoveryTarget
from mysqlops.tools import binlog as tools_binlog
from mysqlops.tools.binlog import replay_argv

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def names(*seqs: int) -> list[str]:
    return [f"mysql-bin.{s:06d}" for s in seqs]


# --------------------------------------------------------------------------- keys
def test_keys() -> None:
    assert layout.binlog_data_key("db1", "mysql-bin.000042", ".zst") == "db1/binlogs/mysql-bin.000042.zst"
    assert layout.binlog_data_key("db1", "mysql-bin.000042", "") == "db1/binlogs/mysql-bin.000042"
    assert layout.binlog_manifest_key("db1", "mysql-bin.000042") == "db1/binlogs/mysql-bin.000042.json"
    for bad in ("../x.000001", "a/b.000001", ".hidden.000001", "nosuffix"):
        with pytest.raises(ConfigError):
            layout.binlog_manifest_key("db1", bad)
    with pytest.raises(ConfigError):
        layout.binlog_data_key("../db", "mysql-bin.000001", ".zst")


def test_archived_files_only_counts_manifests() -> None:
    keys = [
        "db1/binlogs/mysql-bin.000010.json",
        "db1/binlogs/mysql-bin.000010.zst",
        "db1/binlogs/mysql-bin.000011.zst",  # data without a manifest: not archived
        "db1/binlogs/mysql-bin.000009.json",
        "db1/binlogs/.tmp-abc-mysql-bin.000012.json",
        "db1/binlogs/sub/mysql-bin.000013.json",
        "db1/full/20260101T000000Z-abcdef/manifest.json",
        "db10/binlogs/mysql-bin.000001.json",
    ]
    assert layout.archived_binlogs(keys, "db1") == names(9, 10)


# --------------------------------------------------------------------------- planning
def test_first_run_archives_every_closed_file() -> None:
    plan = plan_location("l", names(3, 4, 5), "mysql-bin.000005", [])
    assert plan.to_archive == tuple(names(3, 4))
    assert plan.new_gap == () and plan.known_gaps == () and plan.last_archived is None


def test_continues_after_last_archived() -> None:
    plan = plan_location("l", names(4, 5, 6, 7), "mysql-bin.000007", names(1, 2, 3, 4, 5))
    assert plan.to_archive == tuple(names(6))
    assert plan.new_gap == ()
    assert plan.last_archived == "mysql-bin.000005"


def test_nothing_to_do() -> None:
    plan = plan_location("l", names(5, 6), "mysql-bin.000006", names(4, 5))
    assert plan.to_archive == () and plan.new_gap == ()


def test_purged_before_archiving_is_a_new_gap() -> None:
    plan = plan_location("l", names(8, 9, 10), "mysql-bin.000010", names(1, 2, 3, 4, 5))
    assert plan.new_gap == tuple(names(6, 7))
    assert plan.to_archive == tuple(names(8, 9))  # still archived: no more data is lost


def test_old_hole_is_known_and_present_hole_is_filled() -> None:
    # archive has 1,2,5,6 (3 lost long ago), 4 is still on the server
    plan = plan_location("l", names(4, 5, 6, 7), "mysql-bin.000007", names(1, 2, 5, 6))
    assert plan.to_archive == tuple(names(4))
    assert plan.known_gaps == tuple(names(3))
    assert plan.new_gap == ()


def test_sequence_going_back_is_a_history_change() -> None:
    with pytest.raises(BinlogHistoryChanged, match="went back"):
        plan_location("l", names(1, 2), "mysql-bin.000002", names(1, 2, 3, 4))


def test_renamed_basename_is_a_history_change() -> None:
    with pytest.raises(BinlogHistoryChanged, match="renamed"):
        plan_location("l", ["binlog.000007"], "binlog.000007", names(1, 2))


def test_find_gaps_and_sibling() -> None:
    assert find_gaps(names(3, 4, 7, 9)) == names(5, 6, 8)
    assert find_gaps([]) == []
    assert layout.binlog_sibling("mysql-bin.000042", 7) == "mysql-bin.000007"


def _backup(backup_id: str, file: str | None) -> BackupManifest:
    return BackupManifest(
        backup_id=backup_id,
        server="db1",
        location="l",
        kind=BackupKind.FULL,
        method=BackupMethod.LOGICAL,
        flavor="mariadb",
        server_version="10.11.19",
        databases=("shop",),
        files=(),
        started_at=T0,
        finished_at=T0,
        compression="zstd-3",
        coordinates=BinlogCoordinates(file, 100) if file else None,
    )


def test_affected_backups_are_those_before_the_gap_end() -> None:
    backups = [
        _backup("20260101T000000Z-aaaaaa", "mysql-bin.000002"),
        _backup("20260102T000000Z-bbbbbb", "mysql-bin.000007"),  # inside the gap
        _backup("20260103T000000Z-cccccc", "mysql-bin.000009"),  # after: fine
        _backup("20260104T000000Z-dddddd", None),
    ]
    assert binlog_plan.affected_backups(backups, "mysql-bin.000007") == [
        "20260101T000000Z-aaaaaa",
        "20260102T000000Z-bbbbbb",
    ]


# --------------------------------------------------------------------------- event walk
def _event(ts: int, etype: int, server_id: int, body: bytes, pos: int, crc: bool = True) -> bytes:
    length = 19 + len(body) + (4 if crc else 0)
    head = struct.pack("<IBIIIH", ts, etype, server_id, length, pos + length, 0)
    raw = head + body
    return raw + (struct.pack("<I", zlib.crc32(raw)) if crc else b"")


def _fde(ts: int, server_id: int, crc: bool) -> bytes:
    body = struct.pack("<H", 4) + b"10.11.19-MariaDB-log".ljust(50, b"\0") + struct.pack("<I", ts) + b"\x13"
    body += bytes(164)  # post-header lengths
    body += bytes([1 if crc else 0])
    length = 19 + len(body) + 4
    head = struct.pack("<IBIIIH", ts, 15, server_id, length, 4 + length, 0)
    return head + body + struct.pack("<I", zlib.crc32(head + body))


def synth_binlog(crc: bool = True) -> bytes:
    """FDE, GTID list, two domains of GTIDs, a MySQL GTID, a query, a rotate."""
    out = bytearray(b"\xfebin")
    t = int(T0.timestamp())
    out += _fde(t, 7, crc)
    parts = [
        (t, 163, 7, struct.pack("<I", 1) + struct.pack("<IIQ", 0, 7, 41)),
        (t + 1, 162, 7, struct.pack("<QIB", 42, 0, 0) + bytes(6)),
        (t + 1, 2, 7, b"BEGIN-ish query body"),
        (t + 2, 162, 9, struct.pack("<QIB", 5, 1, 0) + bytes(6)),
        (t + 5, 162, 7, struct.pack("<QIB", 43, 0, 0) + bytes(6)),
        (t + 3, 2, 7, b"an event stamped earlier than the one before"),
        (t + 6, 4, 7, struct.pack("<Q", 4) + b"mysql-bin.000002"),
    ]
    for ts, etype, sid, body in parts:
        out += _event(ts, etype, sid, body, len(out), crc)
    return bytes(out)


def test_scan_reads_times_gtids_and_checks_crc() -> None:
    data = synth_binlog()
    s = scan_binlog(data, name="mysql-bin.000001")
    assert s.events == 8 and s.size == len(data)
    assert s.checksum == "crc32" and s.server_id == 7 and s.server_version == "10.11.19-MariaDB-log"
    assert s.first_event_at == T0 and s.last_event_at == T0 + timedelta(seconds=6)
    assert s.gtid_start == "0-7-42,1-9-5"
    assert s.gtid_end == "0-7-43,1-9-5"
    assert s.gtid_list == "0-7-41"
    assert s.closed_by == "rotate"


def test_scan_without_checksums() -> None:
    s = scan_binlog(synth_binlog(crc=False))
    assert s.checksum == "none" and s.gtid_end == "0-7-43,1-9-5"


def test_scan_mysql_gtid() -> None:
    out = bytearray(b"\xfebin")
    t = int(T0.timestamp())
    out += _fde(t, 3, True)
    sid = bytes.fromhex("3e11fa47 71ca 11e1 9e33 c80aa9429562".replace(" ", ""))
    for gno in (1, 2, 3):
        out += _event(t + gno, 33, 3, b"\x01" + sid + struct.pack("<q", gno) + bytes(20), len(out))
    s = scan_binlog(bytes(out))
    assert s.gtid_start == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1"
    assert s.gtid_end == "3e11fa47-71ca-11e1-9e33-c80aa9429562:3"
    assert s.closed_by is None  # no rotate/stop at the end: the file was not closed cleanly


def test_scan_detects_corruption_truncation_and_garbage() -> None:
    data = bytearray(synth_binlog())
    data[400] ^= 0xFF
    with pytest.raises(IntegrityError, match="CRC32"):
        scan_binlog(bytes(data))
    with pytest.raises(IntegrityError, match="truncated"):
        scan_binlog(synth_binlog()[:-10])
    with pytest.raises(IntegrityError, match="magic"):
        scan_binlog(b"-- not a binlog")


# --------------------------------------------------------------------------- replay selection
def _m(seq: int, first: int, last: int, gtid_end: str | None = None) -> BinlogManifest:
    return BinlogManifest(
        server="db1",
        location="l",
        file=f"mysql-bin.{seq:06d}",
        server_id=1,
        server_uuid=None,
        raw_bytes=100,
        raw_sha256="0" * 64,
        stored_path=f"mysql-bin.{seq:06d}.zst",
        stored_bytes=50,
        stored_sha256="1" * 64,
        compression="zstd-3",
        archived_at=T0,
        first_event_at=T0 + timedelta(minutes=first),
        last_event_at=T0 + timedelta(minutes=last),
        gtid_start=None,
        gtid_end=gtid_end,
    )


ARCHIVE = [_m(3, 0, 10, "0-1-30"), _m(4, 10, 20, "0-1-40"), _m(5, 20, 30, "0-1-50"), _m(6, 30, 40, "0-1-60")]
START = BinlogCoordinates("mysql-bin.000004", 1234, "0-1-35")


def _files(ms: list[BinlogManifest]) -> list[int]:
    return [m.sequence for m in ms]


def test_select_until_datetime_position_gtid_and_end() -> None:
    assert _files(
        select_replay_files(ARCHIVE, START, until=RecoveryTarget(time=T0 + timedelta(minutes=25)))
    ) == [4, 5]
    assert _files(
        select_replay_files(ARCHIVE, START, until=RecoveryTarget(time=T0 + timedelta(minutes=15)))
    ) == [4]
    assert _files(
        select_replay_files(
            ARCHIVE, START, until=RecoveryTarget(position=BinlogCoordinates("mysql-bin.000006", 99))
        )
    ) == [4, 5, 6]
    assert _files(select_replay_files(ARCHIVE, START, until=RecoveryTarget(gtid="0-1-45"))) == [4, 5]
    assert _files(select_replay_files(ARCHIVE, START)) == [4, 5, 6]


def test_select_refuses_unreachable_targets() -> None:
    with pytest.raises(RestoreError, match="run archive_binlogs first"):
        select_replay_files(ARCHIVE, START, until=RecoveryTarget(time=T0 + timedelta(hours=2)))
    with pytest.raises(RestoreError, match="not archived"):
        select_replay_files(
            ARCHIVE, START, until=RecoveryTarget(position=BinlogCoordinates("mysql-bin.000009", 4))
        )
    with pytest.raises(RestoreError, match="not in the archived"):
        select_replay_files(ARCHIVE, START, until=RecoveryTarget(gtid="0-1-99"))
    with pytest.raises(RestoreError, match="start of the replay"):
        select_replay_files(ARCHIVE, BinlogCoordinates("mysql-bin.000002", 4))
    with pytest.raises(ConfigError, match="older backup"):
        select_replay_files(ARCHIVE, START, until=RecoveryTarget(time=T0 + timedelta(minutes=5)))
    with pytest.raises(ConfigError, match="before the start"):
        select_replay_files(
            ARCHIVE, START, until=RecoveryTarget(position=BinlogCoordinates("mysql-bin.000004", 100))
        )


def test_select_refuses_to_cross_a_gap() -> None:
    holey = [m for m in ARCHIVE if m.sequence != 5]
    with pytest.raises(BinlogGap) as info:
        select_replay_files(
            holey, START, until=RecoveryTarget(position=BinlogCoordinates("mysql-bin.000006", 99))
        )
    assert info.value.missing == ("mysql-bin.000005",)
    assert "cannot cross" in str(info.value)
    # up to the gap is fine
    assert _files(
        select_replay_files(holey, START, until=RecoveryTarget(time=T0 + timedelta(minutes=15)))
    ) == [4]


def test_gtid_parsing() -> None:
    assert parse_mariadb_gtids("0-1-5, 2-3-9") == {0: (1, 5), 2: (3, 9)}
    for bad in ("0-1", "a-b-c", "0-1-2,0-1-3", "3e11fa47-71ca-11e1-9e33-c80aa9429562:5"):
        with pytest.raises(ConfigError):
            parse_mariadb_gtids(bad)


def test_replay_argv_is_data_and_utc() -> None:
    cest = timezone(timedelta(hours=2))
    argv = replay_argv(
        "mariadb-binlog",
        ["/s/mysql-bin.000004", "/s/mysql-bin.000005"],
        START,
        until=RecoveryTarget(time=datetime(2026, 3, 1, 14, 30, 5, 900000, tzinfo=cest)),
    )
    assert argv == (
        "mariadb-binlog",
        "--no-defaults",
        "--disable-log-bin",
        "--start-position=1234",
        "--stop-datetime=2026-03-01 12:30:05",
        "/s/mysql-bin.000004",
        "/s/mysql-bin.000005",
    )
    argv = replay_argv(
        "mariadb-binlog",
        ["f"],
        BinlogCoordinates("f.000001", 4),
        until=RecoveryTarget(gtid="0-1-45"),
        log_on_target=True,
    )
    assert argv == ("mariadb-binlog", "--no-defaults", "--stop-position=0-1-45", "f")
    argv = replay_argv(
        "mariadb-binlog",
        ["f"],
        START,
        until=RecoveryTarget(position=BinlogCoordinates("mysql-bin.000004", 5000)),
    )
    assert "--stop-position=5000" in argv
    with pytest.raises(ConfigError):
        replay_argv("mariadb-binlog", ["f"], START, until=RecoveryTarget(time=datetime(2026, 1, 1)))  # noqa: DTZ001
    with pytest.raises(ConfigError):
        replay_argv("mariadb-binlog", ["f"], START, until=RecoveryTarget(gtid="bogus"))


def test_fetch_argv_has_no_secret() -> None:
    argv = tools_binlog.fetch_argv("mariadb-binlog", "mysql-bin.000004", "/tmp/stage/")
    assert argv == (
        "mariadb-binlog",
        "--read-from-remote-server",
        "--raw",
        "--result-file=/tmp/stage/",
        "mysql-bin.000004",
    )


def test_binlog_manifest_key_id_is_optional_and_round_trips() -> None:
    m = _m(7, 100, 200)
    old_json = json.loads(m.to_json())
    del old_json["encryption_key_id"]  # written before encryption existed
    assert BinlogManifest.from_json(json.dumps(old_json)).encryption_key_id is None
    enc = dataclasses.replace(m, encryption_key_id="0123456789abcdef")
    assert BinlogManifest.from_json(enc.to_json()) == enc


def test_replay_key_check_names_the_missing_key_ids() -> None:
    from mysqlops.binlog.replay import check_replay_keys
    from mysqlops.streams import crypto

    k1, k2 = crypto.generate_key(), crypto.generate_key()
    a, b = crypto.key_id(k1), crypto.key_id(k2)
    plain, enc1, enc2 = (
        _m(1, 1, 2),
        dataclasses.replace(_m(2, 3, 4), encryption_key_id=a),
        dataclasses.replace(_m(3, 5, 6), encryption_key_id=b),
    )
    store: Any = object()
    copies = {m.file: [(store, m)] for m in (plain, enc1, enc2)}
    files = list(copies)
    check_replay_keys(copies, files, crypto.Keyring(k2, old=[k1]))  # rotation: both keys, fine
    check_replay_keys(copies, [plain.file], None)  # plaintext needs no key
    with pytest.raises(RestoreError) as info:
        check_replay_keys(copies, files, crypto.Keyring(k2))
    assert f"key id {a} for {enc1.file}" in str(info.value) and f"key id {b}" not in str(info.value)
    with pytest.raises(RestoreError, match=f"key id {a}.*key id {b}.*none"):
        check_replay_keys(copies, files, None)
    # one location's copy encrypted with a missing key, another plaintext: the plaintext one will do
    copies[enc1.file].append((store, dataclasses.replace(enc1, encryption_key_id=None)))
    check_replay_keys(copies, [enc1.file], None)


def test_recovery_target_is_parsed_once_at_the_edge() -> None:
    at = RecoveryTarget.parse(until="2026-11-23T10:15:00Z")
    assert at is not None and at.time == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    assert at.describe() == "datetime 2026-11-23T10:15:00+00:00"
    pos = RecoveryTarget.parse(until_position="mysql-bin.000004:1234")
    assert pos is not None and pos.position == BinlogCoordinates("mysql-bin.000004", 1234)
    assert (
        pos.stop_position == ("mysql-bin.000004", 1234) and pos.describe() == "position mysql-bin.000004:1234"
    )
    gtid = RecoveryTarget.parse(until_gtid="0-1-45")
    assert gtid is not None and gtid.gtid == "0-1-45" and gtid.describe() == "gtid 0-1-45"
    assert RecoveryTarget.parse() is None  # a plain restore
    # the same object reaches the binlog selection and the replay argv unchanged
    assert _files(select_replay_files(ARCHIVE, START, until=pos)) == [4]
    assert "--stop-position=1234" in replay_argv("mariadb-binlog", ["f"], START, until=pos)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"until": "yesterday"}, "not an ISO date-time"),
        ({"until": "2026-11-23T10:15:00"}, "no time zone"),
        ({"until_position": "mysql-bin.000004"}, "must look like mysql-bin.000004:1234"),
        ({"until_position": "mysql-bin:12"}, "no numeric suffix"),
        ({"until_gtid": "3e11fa47-71ca-11e1-9e33-c80aa9429562:5"}, "is not a MariaDB GTID"),
        ({"until": "2026-11-23T10:15:00Z", "until_gtid": "0-1-45"}, "exactly one of"),
    ],
)
def test_recovery_target_refuses_bad_input_by_name(given: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        RecoveryTarget.parse(**given)


def test_restore_request_refuses_what_a_point_in_time_recovery_cannot_do() -> None:
    from mysqlops.model import Location, ServerSpec
    from mysqlops.restore import RestoreRequest

    until = RecoveryTarget.parse(until_gtid="0-1-45")
    base = {"target": ServerSpec("t1"), "locations": (Location("local", "file:///var/b"),)}
    with pytest.raises(ConfigError, match="needs server="):
        RestoreRequest(**base, until=until, backup_id="20260101T000000Z-abcd").check()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="drop rename"):
        RestoreRequest(**base, server="db1", until=until, rename={"a": "b"}).check()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="restore of 'latest' needs server"):
        RestoreRequest(**base).check()  # type: ignore[arg-type]
    RestoreRequest(**base, server="db1", until=until).check()  # type: ignore[arg-type]
