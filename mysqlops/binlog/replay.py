"""Fetching and replaying archived binlogs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mysqlops import layout, redact
from mysqlops.adapters import clients, process
from mysqlops.adapters import mysql as db
from mysqlops.adapters.storage import Store
from mysqlops.binlog.archive import _read_verified, list_archived, private_dir
from mysqlops.binlog.plan import BinlogGap
from mysqlops.errors import (
    ConfigError,
    IntegrityError,
    ManifestError,
    RestoreError,
    StorageError,
)
from mysqlops.gtid import parse_mariadb_gtids
from mysqlops.manifest import BinlogManifest
from mysqlops.model import (
    BinlogCoordinates,
    Flavor,
    RecoveryTarget,
    ServerSpec,
    ServerVersion,
    binlog_sequence,
)
from mysqlops.sql.binlog import BinlogSql
from mysqlops.streams.compression import codec_from_label
from mysqlops.streams.keys import Keyring
from mysqlops.tools.binlog import replay_argv
from mysqlops.tools.client import client_option_file, mysql_argv


# =========================================================================== replay
@dataclass(frozen=True)
class ReplayResult:
    server: str
    target: str
    files: tuple[str, ...]
    sources: dict[str, str]  # file -> location it was read from
    raw_bytes: int
    stored_bytes: int
    start: BinlogCoordinates
    stop: str  # human readable: "position mysql-bin.000004:1234", "datetime ...", "end of archive"
    fetch_seconds: float
    apply_seconds: float
    skipped_copies: tuple[str, ...] = ()  # "location: file: why" for corrupt/unreadable copies
    gtid_strict_mode_relaxed: bool = False  # MariaDB target's gtid_strict_mode was off meanwhile
    key_ids: tuple[str, ...] = ()  # encryption key ids of the copies replayed (empty: plaintext)

    @property
    def seconds(self) -> float:
        return self.fetch_seconds + self.apply_seconds


def select_replay_files(
    manifests: Sequence[BinlogManifest],
    start: BinlogCoordinates,
    *,
    until: RecoveryTarget | None = None,
) -> list[BinlogManifest]:
    """The contiguous run of archived files from ``start.file`` to the one holding the target
    (pure). Raises :class:`BinlogGap` for a hole, :class:`RestoreError` when the archive does
    not reach the target (``until`` None: to the end of the archive)."""
    until_position = until.stop_position if until else None
    until_datetime = until.time if until else None
    until_gtid = until.gtid if until else None
    by_seq = {
        m.sequence: m
        for m in manifests
        if layout.binlog_basename(m.file) == layout.binlog_basename(start.file)
    }
    if start.sequence not in by_seq:
        raise RestoreError(
            f"binlog {start.file} (the start of the replay) is not archived: nothing can be "
            "replayed from these coordinates; archive binlogs before purging them"
        )
    if until_position is not None:
        stop_seq = binlog_sequence(until_position[0])
        if stop_seq < start.sequence or (stop_seq == start.sequence and until_position[1] < start.position):
            raise ConfigError(
                f"until_position {until_position} is before the start {start.file}:{start.position}"
            )
    first = by_seq[start.sequence]
    if until_datetime is not None and first.first_event_at and until_datetime < first.first_event_at:
        raise ConfigError(
            f"until {until_datetime.isoformat()} is before {start.file} was even started "
            f"({first.first_event_at.isoformat()}): pick an older backup to start from"
        )
    targets = parse_mariadb_gtids(until_gtid) if until_gtid else {}
    chosen: list[BinlogManifest] = []
    seq = start.sequence
    last_seq = max(by_seq)
    while True:
        m = by_seq.get(seq)
        if m is None:
            if seq <= last_seq:
                following = min(s for s in by_seq if s > seq)
                missing = [layout.binlog_sibling(start.file, s) for s in range(seq, following)]
                raise BinlogGap(
                    f"binlog(s) {', '.join(missing)} are not archived: point-in-time recovery cannot "
                    f"cross them (it can reach the end of {chosen[-1].file} at most)",
                    server=chosen[-1].server,
                    missing=missing,
                )
            break
        chosen.append(m)
        if until_position is not None and seq == binlog_sequence(until_position[0]):
            return chosen
        if until_datetime is not None and m.last_event_at and m.last_event_at >= until_datetime:
            return chosen
        if targets and _gtids_reached(m.gtid_end, targets):
            return chosen
        seq += 1
    last = chosen[-1]
    if until_position is not None:
        raise RestoreError(f"binlog {until_position[0]} is not archived (the archive ends at {last.file})")
    if until_datetime is not None:
        raise RestoreError(
            f"the archive ends at {last.file} (last event {last.last_event_at}), before the requested "
            f"{until_datetime.isoformat()}: run archive_binlogs first (it rotates, so the archive then "
            "reaches the present)"
        )
    if targets:
        raise RestoreError(f"GTID {until_gtid} is not in the archived binlogs (they end at {last.gtid_end})")
    return chosen


def _gtids_reached(gtid_end: str | None, targets: dict[int, tuple[int, int]]) -> bool:
    if not gtid_end:
        return False
    try:
        ends = parse_mariadb_gtids(gtid_end)
    except ConfigError:
        return False
    return all(d in ends and ends[d][1] >= seq for d, (_sid, seq) in targets.items())


@dataclass
class FetchedBinlogs:
    """Archived binlogs fetched, verified (sha256 of the stored and the raw bytes, encrypted
    ones decrypted and authenticated) and decompressed into a private staging directory:
    ready to apply. Made by :func:`fetch_binlogs`; its files vanish when that context exits."""

    server: str
    start: BinlogCoordinates
    manifests: tuple[BinlogManifest, ...]
    paths: tuple[str, ...]
    sources: dict[str, str]  # file -> location it was read from
    raw_bytes: int
    stored_bytes: int
    fetch_seconds: float
    skipped: tuple[str, ...]
    until: RecoveryTarget | None = None
    key_ids: tuple[str, ...] = ()  # encryption key ids of the copies used (empty: all plaintext)


def check_replay_keys(
    copies_by_file: dict[str, list[tuple[Store, BinlogManifest]]],
    files: Sequence[str],
    keyring: Keyring | None,
) -> None:
    """Fail before fetching (and so before anything is applied) when an encrypted binlog has
    no copy whose key is in ``keyring``. The message names the key id(s) needed."""
    missing: dict[str, list[str]] = {}
    for file in files:
        copies = copies_by_file[file]
        if any(
            m.encryption_key_id is None or (keyring is not None and m.encryption_key_id in keyring)
            for _s, m in copies
        ):
            continue
        for _s, m in copies:
            assert m.encryption_key_id is not None
            missing.setdefault(m.encryption_key_id, [])
            if file not in missing[m.encryption_key_id]:
                missing[m.encryption_key_id].append(file)
    if missing:
        needed = "; ".join(f"key id {kid} for {', '.join(fs)}" for kid, fs in missing.items())
        raise RestoreError(
            f"archived binlogs are encrypted with keys that were not given ({needed}); the given keys "
            f"are {', '.join(keyring.ids) if keyring else 'none'}: pass the encryption key Secret block(s) "
            "that were current when they were archived (encryption_keys=[current, older...])"
        )


@contextlib.contextmanager
def fetch_binlogs(
    stores: Sequence[Store],
    server_name: str,
    start: BinlogCoordinates,
    until: RecoveryTarget | None = None,
    staging_dir: str | None = None,
    *,
    keyring: Keyring | None = None,
) -> Iterator[FetchedBinlogs]:
    """Select the archived files of ``server_name`` from ``start`` up to at most one stop
    condition (``until``), and fetch every one of them verified into a 0700 staging directory (removed on
    exit). Touches no server: every problem (a gap, an archive that ends too early, a missing
    encryption key, no intact copy) is raised here, before anything is applied.

    ``stores`` are tried in order for every file; a copy whose stored or raw sha256 differs
    from its manifest, or that fails decryption, is skipped for the next location. Encrypted
    copies are decrypted with ``keyring`` (the manifest names the key id); plaintext and
    encrypted files may be mixed in one chain."""
    if not stores:
        raise ConfigError("replay_binlogs needs at least one location to read binlogs from")
    catalog: dict[str, list[tuple[Store, BinlogManifest]]] = {}
    unreadable: list[str] = []
    for store in stores:
        try:
            for m in list_archived(store, server_name):
                catalog.setdefault(m.file, []).append((store, m))
        except (ManifestError, StorageError) as exc:
            unreadable.append(f"{store.location.name}: {exc}")
    if not catalog:
        raise RestoreError(
            f"no archived binlogs of {server_name!r} at {', '.join(s.location.name for s in stores)}"
            + (f" ({'; '.join(unreadable)})" if unreadable else "")
        )
    chosen = select_replay_files(
        [copies[0][1] for copies in catalog.values()],
        start,
        until=until,
    )
    check_replay_keys(catalog, [m.file for m in chosen], keyring)
    skipped: list[str] = list(unreadable)
    sources: dict[str, str] = {}
    kids: list[str] = []
    stored_total = raw_total = 0
    fetch_started = time.monotonic()
    with private_dir(staging_dir, "mysqlops-replay-") as staging:
        paths = []
        for m in chosen:
            path = os.path.join(staging, layout.check_binlog_file_name(m.file))
            used, manifest = _fetch_verified(catalog[m.file], path, skipped, keyring)
            sources[m.file] = used.location.name
            raw_total += os.path.getsize(path)
            stored_total += manifest.stored_bytes
            if manifest.encryption_key_id and manifest.encryption_key_id not in kids:
                kids.append(manifest.encryption_key_id)
            paths.append(path)
        yield FetchedBinlogs(
            server=server_name,
            start=start,
            manifests=tuple(chosen),
            paths=tuple(paths),
            sources=sources,
            raw_bytes=raw_total,
            stored_bytes=stored_total,
            fetch_seconds=time.monotonic() - fetch_started,
            skipped=tuple(skipped),
            until=until,
            key_ids=tuple(kids),
        )


def apply_binlogs(
    target_spec: ServerSpec,
    fetched: FetchedBinlogs,
    *,
    log_on_target: bool = False,
    timeout: float | None = None,
    database: str | None = None,
    table: str | None = None,
) -> ReplayResult:
    """``mariadb-binlog --start-position=P [stop] f1 f2 ... | mariadb`` on files already
    fetched and verified by :func:`fetch_binlogs` (call it inside that context).
    ``database``: only that database's events (``--database``; see
    :func:`~mysqlops.tools.binlog.replay_argv`), e.g. into a scratch server holding only it;
    ``table`` (MariaDB): only that table's row events too."""
    with db.session(target_spec) as conn:
        version = db.server_version(conn)
    if fetched.until is not None and fetched.until.gtid and version.flavor is not Flavor.MARIADB:
        raise ConfigError(
            "until_gtid is supported for MariaDB; on MySQL use until_position or until (a time)"
        )
    if table is not None and version.flavor is not Flavor.MARIADB:
        raise ConfigError("a binlog replay filtered by table needs MariaDB's mariadb-binlog (--table)")
    tools = clients.for_server(version)
    problems, _warnings = clients.check(tools, version, roles=("binlog", "client"))
    if problems:
        raise RestoreError("; ".join(problems))
    apply_started = time.monotonic()
    binlog_cmd = replay_argv(
        tools.binlog,
        fetched.paths,
        fetched.start,
        until=fetched.until,
        log_on_target=log_on_target,
        database=database,
        table=table,
    )
    client_cmd = mysql_argv(tools.mysql, extra=["--binary-mode", "--skip-reconnect"])
    with (
        _gtid_strict_mode_off(target_spec, version, log_on_target) as relaxed,
        process.Pipeline(
            [binlog_cmd, client_cmd],
            credentials=[None, client_option_file(target_spec)],
            stdout=process.DEVNULL,
            timeout=timeout,
            name=f"replay binlogs of {fetched.server} onto {target_spec.name}",
            stderr_filter=redact.client_stderr,  # a failed row event quotes the row
        ) as pipe,
    ):
        pipe.wait()
    apply_seconds = time.monotonic() - apply_started
    if fetched.until is not None:
        stop = fetched.until.describe()
    else:
        stop = f"end of archive ({fetched.manifests[-1].file})"
    return ReplayResult(
        server=fetched.server,
        target=target_spec.name,
        files=tuple(m.file for m in fetched.manifests),
        sources=dict(fetched.sources),
        raw_bytes=fetched.raw_bytes,
        stored_bytes=fetched.stored_bytes,
        start=fetched.start,
        stop=stop,
        fetch_seconds=fetched.fetch_seconds,
        apply_seconds=apply_seconds,
        skipped_copies=fetched.skipped,
        gtid_strict_mode_relaxed=relaxed,
        key_ids=fetched.key_ids,
    )


def replay_binlogs(
    target_spec: ServerSpec,
    stores: Sequence[Store],
    server_name: str,
    start: BinlogCoordinates,
    until: RecoveryTarget | None = None,
    staging_dir: str | None = None,
    *,
    log_on_target: bool = False,
    timeout: float | None = None,
    keyring: Keyring | None = None,
) -> ReplayResult:
    """Apply archived binlogs of ``server_name`` to ``target_spec`` from ``start`` (a backup's
    coordinates) up to ``until`` (None: the end of the archive).

    Every file is fetched and verified first (:func:`fetch_binlogs`: sha256 checks, fallback
    to the next location, decryption with ``keyring``), so nothing is applied unless all of
    them are intact and readable. A position target stops before the event at that offset
    (``--stop-position``); a time target before the first event of that UTC second; a GTID
    target (MariaDB) after that GTID, inclusive.
    """
    with fetch_binlogs(
        stores,
        server_name,
        start,
        until,
        staging_dir,
        keyring=keyring,
    ) as fetched:
        return apply_binlogs(target_spec, fetched, log_on_target=log_on_target, timeout=timeout)


@contextlib.contextmanager
def _gtid_strict_mode_off(spec: ServerSpec, version: ServerVersion, log_on_target: bool) -> Iterator[bool]:
    """MariaDB checks ``SET gtid_seq_no`` (which mariadb-binlog output carries for every
    transaction) against the target's own GTID state under gtid_strict_mode even when the
    session does not binlog. With ``log_on_target=False`` the replayed GTIDs are never logged,
    so strict mode is switched off for the replay and restored afterwards, always."""
    if version.flavor is not Flavor.MARIADB or log_on_target:
        yield False
        return
    with db.session(spec) as conn:
        strict = bool(int(db.scalar(conn, BinlogSql.GTID_STRICT_MODE) or 0))
        if strict:
            db.execute(conn, BinlogSql.set_gtid_strict_mode(False))
    try:
        yield strict
    finally:
        if strict:
            with db.session(spec) as conn:
                db.execute(conn, BinlogSql.set_gtid_strict_mode(True))


def _fetch_verified(
    copies: Sequence[tuple[Store, BinlogManifest]],
    path: str,
    skipped: list[str],
    keyring: Keyring | None = None,
) -> tuple[Store, BinlogManifest]:
    """Decompress (decrypting encrypted copies) the first copy whose stored and raw sha256
    match its manifest to ``path``. Returns the store used and that copy's manifest."""
    for store, m in copies:
        key = layout.binlog_stored_key(m.server, m.stored_path)
        try:
            if m.encryption_key_id and (keyring is None or m.encryption_key_id not in keyring):
                raise IntegrityError(f"encrypted with key id {m.encryption_key_id}, which was not given")
            stored, raw = _read_verified(
                store, key, codec_from_label(m.compression), path, keyring if m.encryption_key_id else None
            )
            problem = ""
            if stored.hexdigest() != m.stored_sha256 or stored.size != m.stored_bytes:
                problem = "stored copy fails its sha256 check"
            elif raw.hexdigest() != m.raw_sha256 or raw.size != m.raw_bytes:
                problem = "decompressed binlog fails its sha256 check"
        except (IntegrityError, StorageError, ConfigError) as exc:
            problem = str(exc)
        if not problem:
            return store, m
        skipped.append(f"{store.location.name}: {m.file}: {problem}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    raise IntegrityError(
        f"no intact copy of binlog {copies[0][1].file}: " + "; ".join(skipped[-len(copies) :])
    )
