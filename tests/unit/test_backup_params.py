"""Bad backup input is refused early and clearly: before anything connects to the server.

The server spec points at a real TCP listener that records every connection: a parameter
error must leave it untouched (a positive control shows the same spec with good parameters
does reach it)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mysqlops import backup as core
from mysqlops.backup import preflight as backup_preflight
from mysqlops.errors import ConfigError, MysqlopsError
from mysqlops.manifest import BackupManifest
from mysqlops.model import Location, ServerSpec
from mysqlops.streams.compression import codec
from tests.jobs import job


class Listener:
    """A TCP port that accepts, records and closes every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.mark.parametrize(
    "location",
    [
        "file://relative/backups",
        "file://backups",
        "file://./b",
        "file://~/b",
        "local://b",
        "file://localhost/b",
    ],
)
def test_relative_file_location_is_refused(location: str) -> None:
    with pytest.raises(
        ConfigError, match=r"is a relative path .* file:///var/backups/mysql \(three slashes\)"
    ):
        Location("disk", location)


def test_absolute_and_remote_locations_are_accepted_and_bucketless_ones_refused() -> None:
    for url in ("file:///var/backups/mysql", "/var/backups/mysql", "s3://bucket/prefix", "s3://bucket"):
        assert Location("ok", url).url == url
    with pytest.raises(ConfigError, match="names no bucket"):
        Location("s3", "s3:///prefix")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"parallel": 0}, "parallel must be a whole number from 1 to 64, got 0"),
        ({"parallel": 65}, "parallel must be a whole number from 1 to 64, got 65"),
        ({"parallel": True}, "parallel must be a whole number"),
        ({"staging_dir": "relative/staging"}, "staging_dir 'relative/staging' is not an absolute path"),
        ({"include": "shop*"}, "include must be a list of names, got the string 'shop*': write ['shop*']"),
        ({"exclude": [""]}, "exclude must hold non-empty strings"),
        ({"databases": "shop"}, "databases must be a list of names"),
        ({"tags": ["nightly", ""]}, "tags must hold non-empty strings"),
        ({"progress_interval": -1}, "progress_interval must be a number of seconds >= 0"),
    ],
)
def test_parameters_are_refused_before_any_connection(
    listener: Listener, tmp_path: Any, kwargs: dict[str, Any], expected: str
) -> None:
    spec = ServerSpec("db1", port=listener.port, password="x")
    location = Location("local", f"file://{tmp_path}/b")
    with pytest.raises(ConfigError) as info:
        core.run_backup(*job(spec, [location], codec("zstd"), **kwargs))
    assert expected in str(info.value)
    if not {"parallel", "tags", "progress_interval"} & set(kwargs):  # pre-flight's own parameters too
        with pytest.raises(ConfigError) as info:
            backup_preflight.preflight(spec, [location], **kwargs)
        assert expected in str(info.value)
    assert listener.connections == 0
    assert not (tmp_path / "b").exists()


def test_codec_parameters_fail_without_a_server() -> None:
    with pytest.raises(ConfigError, match="unknown compression 'lz4'"):
        codec("lz4")
    with pytest.raises(ConfigError, match=r"zstd level 99 is out of range 1\.\.22"):
        codec("zstd", 99)
    with pytest.raises(ConfigError, match=r"gzip level 0 is out of range 1\.\.9"):
        codec("gzip", 0)


def test_positive_control_good_parameters_do_connect(listener: Listener, tmp_path: Any) -> None:
    spec = ServerSpec("db1", port=listener.port, password="x")
    with pytest.raises(MysqlopsError, match="cannot connect"):
        core.run_backup(*job(spec, [Location("local", f"file://{tmp_path}/b")], codec("zstd"), parallel=2))
    assert listener.connections >= 1


def test_include_pattern_matching_nothing_and_empty_selections_are_problems() -> None:
    available = ["shop", "shop_archive", "crm"]
    chosen, problems = backup_preflight.select_databases(available, None, ["shop*", "hr_*"], [])
    assert chosen == ["shop", "shop_archive"]
    assert problems == [
        "include pattern 'hr_*' matches no database (databases on the server: shop, shop_archive, crm); "
        "fix the pattern (case-sensitive glob: * ? [..]) or remove it"
    ]
    chosen, problems = backup_preflight.select_databases(available, None, [], ["*"])
    assert chosen == [] and problems == [
        "nothing to back up: the selection (databases=[], include=[], exclude=['*']) leaves no database of: "
        "shop, shop_archive, crm"
    ]
    assert backup_preflight.select_databases([], None, [], []) == (
        [],
        [],
    )  # an empty server: pre-flight warns
    assert backup_preflight.select_databases([], None, ["shop*"], [])[1][0].startswith(
        "include pattern 'shop*' matches no"
    )
    assert backup_preflight.select_databases(available, ["crm"], [], []) == (["crm"], [])


def test_manifests_without_non_transactional_tables_still_read() -> None:
    """The field is new: manifests written before it read as 'none recorded'."""
    from datetime import UTC, datetime

    from mysqlops.model import BackupKind, BackupMethod

    now = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    m = BackupManifest("20261123T101500Z-aaaaaa", "db1", "local", BackupKind.FULL, BackupMethod.LOGICAL,
                       "mariadb", "10.11.19", ("shop",), (), now, now, "zstd-3",
                       non_transactional_tables={"shop": {"legacy": "MyISAM"}})  # fmt: skip
    doc = json.loads(m.to_json())
    assert doc["non_transactional_tables"] == {"shop": {"legacy": "MyISAM"}}
    assert BackupManifest.from_json(m.to_json()) == m
    del doc["non_transactional_tables"]
    old = BackupManifest.from_json(json.dumps(doc))
    assert old.non_transactional_tables == {} and old.backup_id == m.backup_id


@pytest.mark.parametrize(
    ("options", "context", "expected"),
    [
        ({"method": "snapshot"}, {}, "method must be 'logical' or 'physical', got 'snapshot'"),
        ({"incremental": True}, {}, "incremental=True needs method='physical'"),
        ({"method": "physical", "from_replica": True}, {}, "from_replica=True is for logical backups"),
        ({"compression": "lz4"}, {}, "unknown compression 'lz4'"),
        ({"compression": codec("gzip"), "level": 9}, {}, "level=9 was given with a ready codec (gzip-6)"),
        ({"datadir_hint": "/srv/mysql"}, {}, "datadir_hint is for method='physical'"),
        ({"program": "/usr/bin/xtrabackup"}, {}, "program is for method='physical'"),
        ({"include": "shop*"}, {}, "include must be a list of names, got the string 'shop*'"),
        ({"parallel": 0}, {}, "parallel must be a whole number from 1 to 64, got 0"),
        ({}, {"staging_dir": "relative/staging"}, "staging_dir 'relative/staging' is not an absolute path"),
        ({}, {"progress_interval": -1}, "progress_interval must be a number of seconds >= 0"),
    ],
)
def test_backup_entry_point_refuses_bad_requests_before_any_connection(
    listener: Listener, tmp_path: Any, options: dict[str, Any], context: dict[str, Any], expected: str
) -> None:
    """``backup.run`` judges the whole request (what the flow used to check itself) first."""
    from mysqlops.runs import RunContext

    spec = ServerSpec("db1", port=listener.port, password="x")
    request = core.request_from(spec, [Location("local", f"file://{tmp_path}/b")], **options)
    with pytest.raises(ConfigError) as info:
        core.run(request, RunContext(**context))
    assert expected in str(info.value)
    assert listener.connections == 0
    assert not (tmp_path / "b").exists()


def test_backup_entry_point_positive_control_connects(listener: Listener, tmp_path: Any) -> None:
    from mysqlops.runs import RunContext

    spec = ServerSpec("db1", port=listener.port, password="x")
    request = core.request_from(spec, [Location("local", f"file://{tmp_path}/b")], databases=["shop"])
    with pytest.raises(MysqlopsError, match="cannot connect"):
        core.run(request, RunContext())
    assert listener.connections >= 1


def test_a_request_takes_a_ready_codec_as_given() -> None:
    """Tests and benchmarks pass a Codec (a thread count, a codec failing on purpose): used as is."""
    ready = codec("zstd", 5, threads=1)
    request = core.BackupRequest(ServerSpec("db1", password="x"), (), compression=ready)
    assert request.codec is ready
    assert (
        core.BackupRequest(ServerSpec("db1", password="x"), (), compression="gzip", level=2).codec.label
        == "gzip-2"
    )
