"""Restore and backup flows that fail must say why without leaking row data, and fail before
touching anything when a parameter is wrong.

The failing load is a real one: a backup whose dump holds a row twice (a copy forged with a
matching manifest, as a damaged or hand-edited copy would be), loaded by the real client into
a real server, run as the ``restore`` flow in the Prefect harness.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Any

import pytest
from pydantic import SecretStr

from mysqlops import catalog, layout
from mysqlops import restore as rs
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.errors import ProcessError
from mysqlops.manifest import BackupManifest
from mysqlops.model import Location
from mysqlops.runs import Reporter, RunContext
from mysqlops.streams.checksum import CountingHash
from mysqlops.streams.compression import codec, codec_from_label
from tests.jobs import job

pytestmark = [pytest.mark.flows, pytest.mark.integration]

CANARY = "canary-" + os.urandom(6).hex()
# every value of every row: none of them may appear in an exception or a log
ROWS = [
    (7000001, "rowval-alpha-" + os.urandom(4).hex(), 918273601),
    (7000002, CANARY, 918273602),
    (7000003, "rowval-gamma-" + os.urandom(4).hex(), 918273603),
]
OTHER_ROWS = [(8000001, "rowval-other-" + os.urandom(4).hex())]
ROW_VALUES = [str(v) for row in ROWS + OTHER_ROWS for v in row]


def _forge_duplicate_row(src: Location, dst: Location, m: BackupManifest) -> BackupManifest:
    """A copy of ``m`` at ``dst`` whose dump holds the rows of ``t`` twice (the load fails on them),
    with a manifest whose sizes and sha256s match the forged file."""
    directory = layout.backup_dir(m.server, m.backup_id)
    f = next(f for f in m.files if f.database == "vault")
    text = (
        codec_from_label(m.compression)
        .decompressor()
        .decompress(Store(src).read_bytes(f"{directory}/{f.path}"))
    )
    row = f"({ROWS[1][0]},'{ROWS[1][1]}',{ROWS[1][2]})".encode()
    assert text.count(row) == 1, "the dump does not hold the canary row as expected"
    # the table's INSERT statement twice: the second fails on a duplicate key (a big table's
    # dump has many INSERT statements; the first into an empty table is a bulk load that
    # reports duplicates only at COMMIT, without the value)
    start = text.index(b"INSERT INTO `t` VALUES")
    end = text.index(b";\n", start) + 2
    assert row in text[start:end]
    text = text[:end] + text[start:end] + text[end:]
    comp = codec(m.compression.split("-")[0], threads=0).compressor()
    stored = comp.compress(text) + comp.flush()
    raw_hash, stored_hash = CountingHash(), CountingHash()
    raw_hash.update(text)
    stored_hash.update(stored)
    Store(dst).put_bytes(stored, f"{directory}/{f.path}")
    forged_file = dataclasses.replace(
        f, raw_bytes=raw_hash.size, raw_sha256=raw_hash.hexdigest(),
        stored_bytes=stored_hash.size, stored_sha256=stored_hash.hexdigest(),
        table_index=(),  # the forged file is one frame: its table sections are gone
    )  # fmt: skip
    forged = dataclasses.replace(
        m, location=dst.name, files=tuple(forged_file if x is f else x for x in m.files if x.database == "vault"),
        databases=("vault",),
    )  # fmt: skip
    Store(dst).put_bytes(forged.to_json().encode(), f"{directory}/{layout.MANIFEST_NAME}")
    return forged


def _leaks(text: str) -> list[str]:
    return [v for v in ROW_VALUES if v in text]


@pytest.fixture(scope="module")
def forged(sandbox_root: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mysqlops import backup as bk

    source = sandbox.start_server(sandbox_root, "leaksrc", server_id=721)
    target = sandbox.start_server(sandbox_root, "leaktgt", server_id=722)
    base = tmp_path_factory.mktemp("leak")
    good = Location("good", f"file://{base}/good")
    bad = Location("bad", f"file://{base}/bad")
    try:
        with db.session(source.spec()) as conn:
            db.execute(conn, "CREATE DATABASE vault")
            db.execute(conn, "CREATE TABLE vault.t (id INT PRIMARY KEY, v VARCHAR(100), n INT)")
            db.execute(conn, "CREATE TABLE vault.a_first (id INT PRIMARY KEY, v VARCHAR(100))")
            for row in ROWS:
                db.execute(conn, "INSERT INTO vault.t VALUES (%s, %s, %s)", list(row))
            for row2 in OTHER_ROWS:
                db.execute(conn, "INSERT INTO vault.a_first VALUES (%s, %s)", list(row2))
        result = bk.run_backup(*job(source.spec(), [good], codec("zstd"), databases=["vault"]))
        assert result.ok
        manifest = _forge_duplicate_row(good, bad, result.manifest)
        yield source, target, bad, manifest
    finally:
        sandbox.stop_server(source)
        sandbox.stop_server(target)


class _Everything(logging.Handler):
    """Every record of the loggers it is attached to, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_failed_load_logs_no_row_data(forged: Any, tmp_path: Any) -> None:
    """A row makes the load fail: the exception, the Python logs, the Prefect logs of the flow
    run and the restore certificate name the table, the line and the error code, and hold
    neither the canary nor any other value of the table."""
    from prefect.client.orchestration import get_client

    from blocks import BackupLocation, MySQLServer
    from flows.restore import restore

    source, target, bad, manifest = forged
    python_logs = _Everything()
    watched = [
        logging.getLogger(n) for n in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "mysqlops")
    ]
    for logger in watched:  # prefect's loggers do not propagate to the root logger
        logger.addHandler(python_logs)
    copies = catalog.find_backup(catalog.scan([bad]), None, manifest.backup_id)

    # the core: the exception names the table and the error, and holds no value
    with pytest.raises(ProcessError) as info:
        rs.restore_backup(
            copies,
            target.spec(),
            RunContext(reporter=Reporter.from_log(logging.getLogger("mysqlops").warning)),
        )
    message = str(info.value)
    assert _leaks(message) == [] and _leaks(info.value.stderr_tail) == []
    assert "ERROR 1062 (23000) at line" in message and "(INSERT INTO: data of table `t`)" in message
    assert "Duplicate entry '<value>' for key 'PRIMARY'" in message
    with db.session(target.spec()) as conn:
        assert "vault" not in db.user_databases(conn)  # rolled back

    # the restore test: its failed check and the certificate stored at the location
    cert = rs.restore_test_copy(bad, manifest, sandbox_dir=str(tmp_path))
    assert not cert.passed
    failed = next(c for c in cert.checks if c.name == "load into the scratch server")
    assert "1062" in failed.detail and "`t`" in failed.detail and _leaks(failed.detail) == []
    stored = [Store(bad).read_bytes(k) for k in Store(bad).list_keys() if "restore-test-" in k]
    assert stored and all(_leaks(s.decode()) == [] for s in stored)

    # the flow: Failed, and nothing the Prefect API holds for the run mentions a value
    MySQLServer(port=target.port, user="root", password=SecretStr(target.root_password),
                server_name="leaktgt").save("leak-target", overwrite=True)  # fmt: skip
    BackupLocation(url=bad.url).save("leak-bad", overwrite=True)
    state = restore(
        target="leak-target", locations=["leak-bad"], backup_id=manifest.backup_id, return_state=True
    )
    assert state.is_failed()
    flow_message = str(state.result(raise_on_failure=False))
    assert "1062" in flow_message and "data of table `t`" in flow_message and _leaks(flow_message) == []
    flow_run_id = str(state.state_details.flow_run_id)

    async def run_logs() -> list[str]:
        async with get_client() as client:
            found: list[str] = []
            offset = 0
            while True:
                page = (await client._client.post(
                    "/logs/filter",
                    json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200, "offset": offset},
                )).json()  # fmt: skip
                found += [entry["message"] for entry in page]
                offset += 200
                if len(page) < 200:
                    return found

    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the log worker sends in batches: make it send now
    logs = asyncio.run(run_logs())
    assert any("1062" in line and "`t`" in line for line in logs), logs
    assert [line for line in logs if _leaks(line)] == []
    for logger in watched:
        logger.removeHandler(python_logs)
    text = "\n".join(python_logs.lines)
    assert "Traceback" in text and "1062" in text and "vault.sql.zst" in text, text[:2000]
    assert _leaks(text) == []
    # positive control: the same search finds the values in the forged dump itself
    directory = layout.backup_dir(manifest.server, manifest.backup_id)
    dump = (
        codec_from_label(manifest.compression)
        .decompressor()
        .decompress(Store(bad).read_bytes(f"{directory}/{manifest.files[0].path}"))
    )
    assert all(v.encode() in dump for v in ROW_VALUES)


def test_backup_flow_refuses_bad_parameters_before_connecting(tmp_path: Any) -> None:
    """Every parameter error ends the flow Failed naming the parameter, while the server block
    points at a listener that must see no connection; the same flow with good parameters does
    connect to it (positive control)."""
    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup
    from tests.unit.test_backup_params import Listener

    listener = Listener()
    try:
        MySQLServer(port=listener.port, user="u", password=SecretStr("p"), server_name="lst").save(
            "param-server", overwrite=True
        )
        BackupLocation(url=f"file://{tmp_path}/b").save("param-good", overwrite=True)
        BackupLocation(url="file://relative/backups").save("param-relative", overwrite=True)
        cases = [
            ({"compression": "lz4"}, "unknown compression 'lz4'"),
            ({"level": 99}, "zstd level 99 is out of range 1..22"),
            ({"compression": "gzip", "level": 12}, "gzip level 12 is out of range 1..9"),
            ({"parallel": 0}, "parallel must be a whole number from 1 to 64, got 0"),
            ({"staging_dir": "relative/staging"}, "staging_dir 'relative/staging' is not an absolute path"),
            ({"locations": ["param-relative"]}, "url 'file://relative/backups' is a relative path"),
            ({"include": [""]}, "include must hold non-empty strings"),
            ({"from_replica": True, "method": "physical"}, "from_replica=True is for logical backups"),
        ]
        for kwargs, expected in cases:
            params: dict[str, Any] = {"server": "param-server", "locations": ["param-good"], **kwargs}
            state = backup(**params, return_state=True)
            message = str(state.result(raise_on_failure=False))
            assert state.is_failed() and expected in message, (kwargs, message)
            assert "cannot connect" not in message
        assert listener.connections == 0
        assert not (tmp_path / "b").exists() and not os.path.exists("relative")
        state = backup(server="param-server", locations=["param-good"], return_state=True)
        assert state.is_failed() and "cannot connect" in str(state.result(raise_on_failure=False))
        assert listener.connections >= 1
    finally:
        listener.close()


def test_backup_flow_warns_about_non_transactional_tables(sandbox_root: str, tmp_path: Any) -> None:
    """The warning is in the flow's log and in its summary artifact, and the stored manifest
    names the tables."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    from blocks import BackupLocation, MySQLServer
    from flows.backup import backup

    server = sandbox.start_server(sandbox_root, "ntsrc", server_id=723)
    try:
        with db.session(server.spec()) as conn:
            db.execute(conn, "CREATE DATABASE app")
            db.execute(conn, "CREATE TABLE app.sessions (id INT PRIMARY KEY) ENGINE=MEMORY")
            db.execute(conn, "CREATE TABLE app.orders (id INT PRIMARY KEY) ENGINE=InnoDB")
        MySQLServer(port=server.port, user="root", password=SecretStr(server.root_password),
                    server_name="ntsrc").save("nt-server", overwrite=True)  # fmt: skip
        BackupLocation(url=f"file://{tmp_path}/b").save("nt-local", overwrite=True)
        state = backup(server="nt-server", locations=["nt-local"], return_state=True)
        assert state.is_completed(), state
        summary = state.result()
        assert any("app.sessions (MEMORY)" in w for w in summary["warnings"])
        flow_run_id = str(state.state_details.flow_run_id)
        APILogHandler().flush()

        async def fetch() -> tuple[list[str], list[str]]:
            async with get_client() as client:
                logs = (await client._client.post(
                    "/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
                )).json()  # fmt: skip
                artifacts = (await client._client.post(
                    "/artifacts/filter", json={"artifacts": {"key": {"any_": ["backup-ntsrc-summary"]}}}
                )).json()  # fmt: skip
                return [e["message"] for e in logs], [str(a.get("data")) for a in artifacts]

        logs, artifacts = asyncio.run(fetch())
        assert any("non-transactional" in line and "app.sessions (MEMORY)" in line for line in logs), logs
        assert artifacts and all("app.sessions (MEMORY)" in a for a in artifacts)
        (found,) = catalog.scan([Location("nt", f"file://{tmp_path}/b")])[0].backups
        assert found.non_transactional_tables == {"app": {"sessions": "MEMORY"}}
    finally:
        sandbox.stop_server(server)
