"""Security proven on real servers: least-privilege accounts, encryption at rest, canaries."""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mysqlops import backup as backup
from mysqlops import backup as bk
from mysqlops import binlog as binlog
from mysqlops import catalog, layout
from mysqlops import restore as rs
from mysqlops.adapters import mysql as db
from mysqlops.adapters import sandbox
from mysqlops.adapters.storage import Store
from mysqlops.binlog import archive as binlog_archive
from mysqlops.errors import EncryptionError, RestoreError
from mysqlops.model import Location
from mysqlops.restore import logical as restore_logical
from mysqlops.runs import RunContext
from mysqlops.streams import crypto
from mysqlops.streams.compression import codec
from mysqlops.streams.crypto import Keyring
from mysqlops.users import Account, create_users
from tests.jobs import job

pytestmark = pytest.mark.integration
CANARY = "canary-row-7f3e9a1c-plaintext"


@pytest.fixture(scope="module")
def secured(sandbox_root: str) -> Any:
    server = sandbox.start_server(sandbox_root, "sec", server_id=801)
    password = "Pw-" + os.urandom(9).hex() + "-canary"
    with db.session(server.spec()) as conn:
        db.execute(conn, "CREATE DATABASE vault")
        db.execute(conn, "CREATE TABLE vault.secrets (id INT PRIMARY KEY, v VARCHAR(100))")
        db.execute(conn, "INSERT INTO vault.secrets VALUES (1, %s)", [CANARY])
    with db.session(server.spec(), "vault") as conn:  # unqualified: restorable under another name
        db.execute(conn, "CREATE TRIGGER t BEFORE INSERT ON secrets FOR EACH ROW SET NEW.v = NEW.v")
    shown = create_users(
        server.spec(),
        [Account("backup", "mysqlops_backup"), Account("monitor", "mysqlops_monitor")],
        {"backup": password, "monitor": password},
        dry_run=False,
    )
    assert all(password not in s for s in shown) and any("'********'" in s for s in shown)
    yield server, server.spec(user="mysqlops_backup", password=password), password
    sandbox.stop_server(server)


def test_dry_run_changes_nothing_and_masks(secured: Any) -> None:
    server, _, _ = secured
    shown = create_users(
        server.spec(), [Account("restore", "mysqlops_restore")], {"restore": "s3cret-x"}, dry_run=True
    )
    assert any("GRANT" in s for s in shown) and not any("s3cret-x" in s for s in shown)
    with db.session(server.spec()) as conn:
        assert db.scalar(conn, "SELECT COUNT(*) FROM mysql.user WHERE user='mysqlops_restore'") == 0


def test_backup_runs_as_least_privilege_user_and_secrets_stay_hidden(secured: Any, tmp_path: Any) -> None:
    server, backup_spec, password = secured
    location = Location("local", f"file://{tmp_path}/b")
    key = crypto.generate_key()
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # every process on the machine, while the backup runs
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) == os.getpid():
                    continue
                for part in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{part}", "rb") as fh:
                            if password.encode() in fh.read():
                                seen.append(f"{pid}/{part}")
                    except OSError:
                        pass
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = bk.run_backup(
            *job(backup_spec, [location], codec("none"), databases=["vault"], encryption_key=key)
        )
        # the binlog archive (as the least-privilege user) and a physical backup (root: mariabackup
        # reads the datadir), both uncompressed and encrypted with the same key
        archived = binlog.archive_binlogs(
            backup_spec,
            [location],
            codec("none"),
            RunContext(staging_dir=str(tmp_path / "st"), keyring=Keyring(key)),
            datetime.now(UTC),
        )
        phys = backup.run_physical_backup(
            *job(
                server.spec(), [location], codec("none"), encryption_key=key, staging_dir=str(tmp_path / "st")
            )
        )
    finally:
        stop.set()
        watcher.join(5)
    assert result.ok and seen == []
    m = result.manifest
    assert m.encryption_key_id == crypto.key_id(key)
    assert archived.manifests and {b.encryption_key_id for b in archived.manifests} == {m.encryption_key_id}
    assert phys.ok and phys.manifest.encryption_key_id == m.encryption_key_id
    store = Store(location)
    keys = store.list_keys()
    binlog_data = [k for k in keys if "/binlogs/" in k and not k.endswith(".json")]
    physical_data = [k for k in keys if k.endswith(f"/{phys.manifest.files[0].path}")]
    assert binlog_data and physical_data
    ring = crypto.Keyring(key)
    revealed = b""
    for k in keys:
        data = store.read_bytes(k)
        assert CANARY.encode() not in data, k  # uncompressed, yet unreadable: encrypted
        assert password.encode() not in data and crypto.format_key(key).encode() not in data, k
        assert key.hex().encode() not in data and key not in data, k
        if k in binlog_data or k in physical_data:
            assert data.startswith(crypto.MAGIC), k
            revealed += crypto.decrypt_bytes(ring, data)
    # positive control: the very same search finds the canary once decrypted (binlog row event
    # and InnoDB page), so the assertions above could fail
    assert revealed.count(CANARY.encode()) >= 2
    # the restore test decrypts transparently with the key; without it: a clear refusal
    ring = crypto.Keyring(key)
    cert = rs.restore_test_copy(location, m, RunContext(keyring=ring), sandbox_dir=str(tmp_path / "sb"))
    assert cert.passed, [c for c in cert.checks if not c.passed]
    cert = rs.restore_test_copy(location, m, sandbox_dir=str(tmp_path / "sb"), write_certificate=False)
    assert not cert.passed and "encryption key available" in [c.name for c in cert.checks if not c.passed]
    with pytest.raises(RestoreError, match=m.encryption_key_id or "x"):
        rs.restore_backup(
            catalog.find_backup(catalog.scan([location]), None, m.backup_id),
            server.spec(),
            RunContext(keyring=crypto.Keyring(crypto.generate_key())),
        )


def test_key_rotation_and_tampering(secured: Any, tmp_path: Any, sandbox_root: str) -> None:
    _, backup_spec, _ = secured
    location = Location("local", f"file://{tmp_path}/b")
    old, new = crypto.generate_key(), crypto.generate_key()
    first = bk.run_backup(
        *job(backup_spec, [location], codec("zstd"), databases=["vault"], encryption_key=old)
    ).manifest
    second = bk.run_backup(
        *job(backup_spec, [location], codec("zstd"), databases=["vault"], encryption_key=new)
    ).manifest
    assert first.encryption_key_id != second.encryption_key_id
    ring = crypto.Keyring(new, old=[old])
    target = sandbox.start_server(sandbox_root, "secrot", server_id=802)
    try:
        for m, name in ((first, "v1"), (second, "v2")):
            copies = catalog.find_backup(catalog.scan([location]), None, m.backup_id)
            rs.restore_backup(copies, target.spec(), RunContext(keyring=ring), rename={"vault": name})
        with db.session(target.spec()) as conn:
            assert db.scalar(conn, "SELECT v FROM v1.secrets") == CANARY
            assert db.scalar(conn, "SELECT v FROM v2.secrets") == CANARY
        # a truncated ciphertext (with a matching manifest entry) is detected by decryption itself:
        # the file is one chunk, whose tag is cut, so not one byte of it reaches the client
        key = f"{layout.backup_dir(second.server, second.backup_id)}/{second.files[0].path}"
        staged = tmp_path / "c.bin"
        staged.write_bytes(Store(location).read_bytes(key)[:-40])
        assert staged.stat().st_size < crypto.DEFAULT_CHUNK_SIZE
        with pytest.raises(EncryptionError, match=r"^authentication failed at final chunk 0 .*truncated"):
            restore_logical.load_file(
                str(staged), second.compression, target.spec(), "mariadb", {"vault": "v3"}, keyring=ring
            )
        with db.session(target.spec()) as conn:
            assert (
                db.scalar(conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='v3'")
                == 0
            )
            assert sorted(db.user_databases(conn)) == ["v1", "v2"]
    finally:
        sandbox.stop_server(target)


def test_monitor_user_can_check_but_not_read_or_write(secured: Any) -> None:
    server, _, password = secured
    monitor = server.spec(user="mysqlops_monitor", password=password)
    with db.session(monitor) as conn:
        assert db.scalar(conn, "SELECT 1") == 1
        with pytest.raises(Exception, match="denied"):
            db.execute(conn, "INSERT INTO vault.secrets VALUES (2, 'x')")


def test_binlog_archiving_and_health_checks_run_as_least_privilege_users(
    sandbox_root: str, tmp_path: Any
) -> None:
    from datetime import UTC, datetime

    from mysqlops import replication

    primary = sandbox.start_server(sandbox_root, "lpp", server_id=821)
    replica = sandbox.start_server(sandbox_root, "lpr", server_id=822)
    try:
        replication.wire_sandbox_replication(primary, [replica])
        password = "Lp-" + os.urandom(8).hex()
        create_users(
            primary.spec(), [Account("backup", "mysqlops_backup")], {"backup": password}, dry_run=False
        )
        create_users(
            replica.spec(), [Account("monitor", "mysqlops_monitor")], {"monitor": password}, dry_run=False
        )
        with db.session(primary.spec()) as conn:
            db.execute(conn, "CREATE DATABASE lp")
            db.execute(conn, "CREATE TABLE lp.t (id INT PRIMARY KEY)")
            db.execute(conn, "INSERT INTO lp.t VALUES (1), (2)")
        location = Location("local", f"file://{tmp_path}/b")
        archived = binlog.archive_binlogs(
            primary.spec(user="mysqlops_backup", password=password),
            [location],
            codec("zstd"),
            RunContext(staging_dir=str(tmp_path)),
            datetime.now(UTC),
        )
        assert archived is not None
        assert binlog_archive.list_archived(Store(location), primary.name)
        replication.catch_up(primary.spec(), replica.spec(), timeout=30)
        health = replication.check_health([replica.spec(user="mysqlops_monitor", password=password)])
        assert replication.health_failures(health) == []
        with db.session(replica.spec(user="mysqlops_monitor", password=password)) as conn:
            grants = " ".join(str(next(iter(r.values()))) for r in db.query(conn, "SHOW GRANTS"))
        for privilege in ("ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "SUPER"):
            assert privilege not in grants, grants
    finally:
        sandbox.stop_server(replica)
        sandbox.stop_server(primary)


def _offenders(root: str) -> tuple[list[str], int]:
    """Paths under (and including) ``root`` that are not 0700 directories / 0600 files."""
    bad, seen = [], 0
    for here, dirs, files in os.walk(root):
        bad += [f"symlink {os.path.join(here, d)}" for d in dirs if os.path.islink(os.path.join(here, d))]
        for path, want in [(here, 0o700)] + [(os.path.join(here, f), 0o600) for f in files]:
            seen += 1
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) != want:
                bad.append(f"{oct(stat.S_IMODE(st.st_mode))} (want {oct(want)}) {path}")
    return bad, seen


def test_everything_written_locally_is_private(secured: Any, tmp_path: Any) -> None:
    """Every file the core creates in a local backup location, the staging directory and the
    report output is 0600, every directory 0700, under the usual umask 022 (none of the
    directories exists beforehand: the code creates them)."""
    from mysqlops.report import Catalog, LocationInfo, build_report, write_outputs

    server, backup_spec, _ = secured
    base = tmp_path / "modes"
    location = Location("local", f"file://{base}/backups")
    reports = Location("reports", f"file://{base}/reports")
    staging = str(base / "staging")
    key = crypto.generate_key()
    previous = os.umask(0o022)
    try:
        binlog.archive_binlogs(
            backup_spec,
            [location],
            codec("zstd"),
            RunContext(staging_dir=staging, keyring=Keyring(key)),
            datetime.now(UTC),
        )
        assert bk.run_backup(
            *job(
                backup_spec,
                [location],
                codec("zstd"),
                databases=["vault"],
                staging_dir=staging,
                encryption_key=key,
            )
        ).ok
        assert backup.run_physical_backup(
            *job(server.spec(), [location], codec("zstd"), staging_dir=staging)
        ).ok
        scan = catalog.scan_location(location)
        assert not scan.errors and len(scan.backups) == 2 and scan.binlogs
        report = build_report(
            Catalog(
                backups=scan.backups,
                binlogs=scan.binlogs,
                certificates=scan.certificates,
                locations=[LocationInfo(location.name, location.kind, location.offsite)],
            ),
            datetime.now(UTC) + timedelta(seconds=1),
        )
        out = Store(reports)
        written = write_outputs(report, out.fs, out.path("reports/latest"))
        assert any(p.endswith("report.html") for p in written)
    finally:
        os.umask(previous)
    problems, checked = [], 0
    for root in (f"{base}/backups", staging, f"{base}/reports"):
        bad, seen = _offenders(root)
        problems += bad
        checked += seen
    print(f"checked {checked} paths; not private:", *problems, sep="\n  ")
    assert checked > 10 and problems == []
