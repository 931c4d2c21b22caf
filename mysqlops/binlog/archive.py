"""Binary log archiving and point-in-time replay.

Archive (:func:`archive_binlogs`), for one server and one or more locations:

1. ``FLUSH BINARY LOGS`` so everything written so far is in a *closed* file, then
   ``SHOW BINARY LOGS`` and the active file (``SHOW MASTER STATUS``).
2. Per location, a plan (:func:`plan_location`, pure): which closed files are not archived
   there yet, which files are missing for good (purged on the server before they were
   archived: a *gap*), and whether the server's binlog history still continues the archive
   (same basename, same ``server_id``/``server_uuid``, sequence never going back, the newest
   archived file still on the server has the same size).
3. Each needed file, oldest first, ONE at a time: copied with the real client
   (``mariadb-binlog --read-from-remote-server --raw``, credentials via option file, needs
   REPLICATION SLAVE) into a 0700 staging dir, its size checked against the server's,
   every event header walked (:func:`scan_binlog`: CRC32 of every event, first/last event
   time, GTID range; bounded memory, the file is mmap'ed), compressed, sha256 of raw and
   stored bytes, uploaded write-once with read-back verification to every location that
   needs it, and the :class:`~mysqlops.manifest.BinlogManifest` written LAST (commit marker).
4. Files that were purged before archiving are reported by :class:`BinlogGap` *after*
   everything still available was archived (so no more data is lost), naming the missing
   files and the full backups that can no longer be rolled forward across the gap.

Idempotent and safe against overlapping runs: an existing manifest means "archived"; a
write-once collision on the data object is resolved by reading the stored object back and
adopting it when it decompresses to the same sha256 (never overwritten, never an error);
a manifest collision with the same raw sha256 is "archived by the other run".

Encryption (optional, ``encryption_key``): each file is encrypted after compression
(:mod:`mysqlops.streams.crypto`, AES-256-GCM in chunks) in the 0700 staging directory, before it is
uploaded; its manifest records ``encryption_key_id``, never the key. An existing object that is
adopted keeps whatever it is (its own key id, or plaintext) and its manifest says so.

Replay (:func:`replay_binlogs` = :func:`fetch_binlogs` then :func:`apply_binlogs`): the
archived files from a backup's coordinates onward are ALL fetched first (sha256 of the stored
and the raw bytes checked against the manifest, encrypted copies decrypted and authenticated
with a :class:`~mysqlops.streams.crypto.Keyring`; a corrupt copy falls back to the next location; a
missing key fails before any fetch, naming the key id), then ``mariadb-binlog
--start-position=P [stop] f1 f2 ... | mariadb`` runs against the target through
:class:`~mysqlops.adapters.process.Pipeline`. Plaintext and encrypted files (and files of
rotated keys) may be mixed in one chain.
``--stop-datetime`` is read by the tool in its session time zone; the process adapter gives
every child ``TZ=UTC`` and we pass UTC.

Privileges on the source (MariaDB 10.5+): ``RELOAD`` (FLUSH BINARY LOGS), ``BINLOG MONITOR``
(SHOW BINARY LOGS / MASTER STATUS), ``REPLICATION SLAVE`` (the binlog copy). MySQL 8:
``RELOAD``, ``REPLICATION CLIENT``, ``REPLICATION SLAVE``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from mysqlops import layout
from mysqlops.adapters import clients, process
from mysqlops.adapters.localfs import private_dir  # also the binlog replay's
from mysqlops.adapters.storage import Store, StoredObject
from mysqlops.binlog.format import BinlogSummary, summarize_file
from mysqlops.binlog.plan import (
    ArchivedBinlog,
    ArchiveResult,
    BinlogError,
    BinlogGap,
    BinlogHistoryChanged,
    LocationPlan,
    affected_backups,
    plan_location,
)
from mysqlops.binlog.server import ServerBinlogs, rotate_and_list
from mysqlops.errors import (
    ConfigError,
    EncryptionError,
    IntegrityError,
    ManifestError,
    MysqlopsError,
    ObjectExists,
    PreflightFailed,
    StorageError,
)
from mysqlops.manifest import BackupManifest, BinlogManifest
from mysqlops.model import Location, ServerSpec, binlog_sequence
from mysqlops.runs import RunContext
from mysqlops.streams.checksum import CHUNK, CountingHash, iter_chunks
from mysqlops.streams.compression import Codec
from mysqlops.streams.crypto import HEADER_MAX_SIZE, Decryptor, Encryptor, Keyring, peek_key_id
from mysqlops.streams.crypto import MAGIC as ENC_MAGIC
from mysqlops.tools.binlog import fetch_argv
from mysqlops.tools.client import client_option_file


# =========================================================================== archive
def _staged_compress(
    raw_path: str, out_path: str, codec: Codec, key: bytes | None = None
) -> tuple[CountingHash, CountingHash]:
    """Compress (then, with ``key``, encrypt) ``raw_path`` into a new 0600 ``out_path``;
    sha256 of the raw and of the stored bytes."""
    raw, stored = CountingHash(), CountingHash()
    comp = codec.compressor()
    enc = Encryptor(key) if key is not None else None
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def emit(data: bytes) -> None:
        if enc is not None and data:
            data = enc.update(data)
        if data:
            stored.update(data)
            out.write(data)

    with open(raw_path, "rb") as src, os.fdopen(fd, "wb") as out:
        for chunk in iter_chunks(src, CHUNK):
            raw.update(chunk)
            emit(comp.compress(chunk))
        emit(comp.flush())
        if enc is not None:
            tail = enc.finalize()
            stored.update(tail)
            out.write(tail)
    return raw, stored


def _read_verified(
    store: Store, key: str, codec: Codec, out_path: str | None, keyring: Keyring | None = None
) -> tuple[CountingHash, CountingHash]:
    """Stream a stored object: sha256 of the stored bytes, then (with ``keyring``: decrypted,
    authenticated and) decompressed bytes hashed, and written to a new 0600 ``out_path`` when
    given. A decryption failure (wrong key, tampering, truncation) is an :class:`IntegrityError`."""
    stored, raw = CountingHash(), CountingHash()
    dec = codec.decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    out = None
    if out_path:
        out = os.fdopen(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def take(plain: bytes) -> None:
        data = dec.decompress(plain) if plain else b""
        raw.update(data)
        if out and data:
            out.write(data)

    try:
        with store.open_read(key) as handle:
            for chunk in iter_chunks(handle, CHUNK):
                stored.update(chunk)
                take(decryptor.update(chunk) if decryptor is not None else chunk)
        if decryptor is not None:
            take(decryptor.finalize())  # raises on truncation/tampering
        tail = dec.finish()
        raw.update(tail)
        if out and tail:
            out.write(tail)
    except EncryptionError as exc:
        raise IntegrityError(f"location {store.location.name!r}: {key} cannot be decrypted: {exc}") from None
    except (OSError, ValueError) as exc:
        raise StorageError(f"location {store.location.name!r}: reading {key} failed: {exc}") from None
    finally:
        if out:
            out.close()
    return stored, raw


def stored_key_id(store: Store, key: str) -> str | None:
    """Key id of a stored object encrypted by mysqlops (from its header), None when the object
    is not encrypted. Unauthenticated: it only says which key to try."""
    try:
        with store.open_read(key) as handle:
            head = handle.read(HEADER_MAX_SIZE)
    except OSError as exc:
        raise StorageError(f"location {store.location.name!r}: reading {key} failed: {exc}") from None
    if not head.startswith(ENC_MAGIC):
        return None
    try:
        return peek_key_id(head)
    except EncryptionError as exc:
        raise IntegrityError(f"location {store.location.name!r}: {key}: {exc}") from None


def _adopt_existing(
    store: Store, key: str, codec: Codec, raw_sha: str, started: float, keyring: Keyring | None
) -> tuple[StoredObject, str | None]:
    """``key`` already exists (overlapping run, or a run that died before its manifest): keep
    it when it (decrypts and) decompresses to exactly our bytes; never overwrite it. Returns
    the object and its encryption key id (None: stored in plaintext)."""
    where = f"location {store.location.name!r}: {key} already exists"
    kid = stored_key_id(store, key)
    if kid is not None and (keyring is None or kid not in keyring):
        raise IntegrityError(
            f"{where}, encrypted with key id {kid}, which is not the key of this run "
            f"({keyring.current_id if keyring else 'no encryption key given'}): it cannot be checked "
            "against the binlog just copied. Archive with that key, or inspect the object and delete it "
            "by hand (it has no manifest, so it is not an archive); it is never overwritten"
        )
    stored, raw = _read_verified(store, key, codec, None, keyring if kid else None)
    if raw.hexdigest() != raw_sha:
        raise IntegrityError(
            f"{where} but does not decompress to the "
            "binlog just copied from the server (it has no manifest, so it is not an archive): "
            "inspect it and delete it by hand, then run the archive again. It is never overwritten"
        )
    return StoredObject(key, stored.size, stored.hexdigest(), time.monotonic() - started), kid


def archive_binlogs(
    spec: ServerSpec,
    locations: Sequence[Location],
    codec: Codec,
    ctx: RunContext | None = None,
    now: datetime | None = None,
    *,
    rotate: bool = True,
) -> ArchiveResult:
    """Rotate, then archive every closed binlog not yet archived at each location.

    ``ctx``: the staging directory (a 0700 directory is made under it), the keyring (with
    one, each file is encrypted with its current key, AES-256-GCM in chunks, see
    :mod:`mysqlops.streams.crypto`, after compression, in the staging directory, before it is
    uploaded; its manifest records the key id, never the key; an object left by a killed run is
    adopted only when it decrypts with a key of the keyring), the reporter and the timeout of
    each binlog copy.

    Raises :class:`BinlogGap` (after archiving everything still available) when binlogs
    were purged from the server before they were archived, :class:`BinlogHistoryChanged`
    when the server's binlogs no longer continue the archive.
    """
    started = time.monotonic()
    ctx = ctx if ctx is not None else RunContext()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ConfigError("archive_binlogs needs a timezone-aware 'now'")
    keyring = ctx.keyring
    encryption_key = ctx.encryption_key
    if not locations:
        raise ConfigError("no location given: pass at least one BackupLocation block name")
    names = [loc.name for loc in locations]
    if len(set(names)) != len(names):
        raise ConfigError(f"location names must be distinct, got {names}")
    prefix = layout.binlog_dir(spec.name)
    # list through a throwaway Store: s3fs caches listings per instance, and a cached listing
    # would make the writer's existence checks (write-once) answer from a stale view
    listing = {loc.name: Store(loc).list_keys(prefix) for loc in locations}
    stores = {loc.name: Store(loc) for loc in locations}

    server = rotate_and_list(spec, rotate=rotate)
    sizes = server.sizes
    plans: dict[str, LocationPlan] = {}
    for name, store in stores.items():
        plan = plan_location(
            name,
            [f for f, _ in server.logs],
            server.active,
            layout.archived_binlogs(listing[name], spec.name),
        )
        _check_identity(store, spec.name, plan, server)
        plans[name] = plan

    wanted = sorted({f for p in plans.values() for f in p.to_archive}, key=binlog_sequence)
    closed_on_server = [f for f, _ in server.logs if binlog_sequence(f) < binlog_sequence(server.active)]
    skipped = tuple(f for f in closed_on_server if f not in wanted)
    tools = clients.for_server(server.version)
    if wanted:
        # the binlog client of the server's own flavor (MariaDB's mysqlbinlog cannot read MySQL's)
        problems, _warnings = clients.check(tools, server.version, roles=("binlog",))
        if problems:
            raise PreflightFailed(problems)
    credentials = client_option_file(spec)
    done: list[ArchivedBinlog] = []
    manifests: list[BinlogManifest] = []
    with private_dir(ctx.staging_dir, "mysqlops-binlogs-") as staging:
        for file in wanted:
            raw_path = os.path.join(staging, file)
            process.run(
                fetch_argv(tools.binlog, file, staging),
                credentials=credentials,
                timeout=ctx.timeout,
                name=f"copy binlog {file}",
            )
            if not os.path.isfile(raw_path):
                raise BinlogError(
                    f"{process.program_name(tools.binlog)} finished but wrote no {file}: was it purged meanwhile?"
                )
            got = os.path.getsize(raw_path)
            if got != sizes[file]:
                raise IntegrityError(
                    f"binlog {file} of {spec.name!r}: copied {got} bytes, the server lists {sizes[file]}; "
                    "the copy is incomplete"
                )
            summary = summarize_file(raw_path)
            stored_path = raw_path + codec.extension + ".stored"
            raw, stored = _staged_compress(raw_path, stored_path, codec, encryption_key)
            os.unlink(raw_path)
            for name in names:
                if file not in plans[name].to_archive:
                    continue
                entry, manifest = _publish(
                    stores[name], spec, file, codec, stored_path, raw, stored, summary, server, now, keyring
                )
                done.append(entry)
                manifests.append(manifest)
                ctx.reporter.info(f"archived {file} at {name}" + (" (adopted)" if entry.adopted else ""))
            os.unlink(stored_path)

    result = ArchiveResult(
        server=spec.name,
        active=server.active,
        archived=tuple(done),
        skipped=skipped,
        manifests=tuple(manifests),
        known_gaps={n: p.known_gaps for n, p in plans.items() if p.known_gaps},
        new_gaps={n: p.new_gap for n, p in plans.items() if p.new_gap},
        seconds=time.monotonic() - started,
        rotated=server.rotated,
    )
    if result.new_gaps:
        raise _gap_error(spec.name, plans, stores, server, result)
    return result


def _check_identity(store: Store, server_name: str, plan: LocationPlan, server: ServerBinlogs) -> None:
    """The newest archived manifest must come from this server and match the file on it."""
    last = plan.last_archived
    if last is None:
        return
    manifest = BinlogManifest.from_json(store.read_bytes(layout.binlog_manifest_key(server_name, last)))
    where = f"location {store.location.name!r}"
    if manifest.server_id != server.server_id:
        raise BinlogHistoryChanged(
            f"{where}: the last archived binlog {last} was written by server_id {manifest.server_id}, "
            f"the server now has server_id {server.server_id}: another or a re-initialised server. "
            "Archive it under a new server name, or restore the server_id"
        )
    if manifest.server_uuid and server.server_uuid and manifest.server_uuid != server.server_uuid:
        raise BinlogHistoryChanged(
            f"{where}: the last archived binlog {last} came from server_uuid {manifest.server_uuid}, "
            f"the server now reports {server.server_uuid} (re-initialised?). Archive it under a new server name"
        )
    size = server.sizes.get(last)
    if size is not None and size != manifest.raw_bytes:
        raise BinlogHistoryChanged(
            f"{where}: {last} is {size} bytes on the server but {manifest.raw_bytes} bytes in the "
            "archive: this is not the same binlog history (RESET MASTER or a re-initialised server). "
            "Archive it under a new server name and take a new full backup"
        )


def _publish(
    store: Store,
    spec: ServerSpec,
    file: str,
    codec: Codec,
    stored_path: str,
    raw: CountingHash,
    stored: CountingHash,
    summary: BinlogSummary,
    server: ServerBinlogs,
    now: datetime,
    keyring: Keyring | None = None,
) -> tuple[ArchivedBinlog, BinlogManifest]:
    started = time.monotonic()
    key = layout.binlog_data_key(spec.name, file, codec.extension)
    adopted = False
    kid = keyring.current_id if keyring is not None else None
    try:
        obj = store.put_file(stored_path, key, sha256=stored.hexdigest())
    except ObjectExists:
        obj, kid = _adopt_existing(store, key, codec, raw.hexdigest(), started, keyring)
        adopted = True
    manifest = BinlogManifest(
        server=spec.name,
        location=store.location.name,
        file=file,
        server_id=summary.server_id or server.server_id,
        server_uuid=server.server_uuid,
        raw_bytes=raw.size,
        raw_sha256=raw.hexdigest(),
        stored_path=key.rsplit("/", 1)[1],
        stored_bytes=obj.size,
        stored_sha256=obj.sha256,
        compression=codec.label,
        archived_at=now,
        first_event_at=summary.first_event_at,
        last_event_at=summary.last_event_at,
        gtid_start=summary.gtid_start,
        gtid_end=summary.gtid_end,
        encryption_key_id=kid,
    )
    mkey = layout.binlog_manifest_key(spec.name, file)
    try:
        store.put_bytes(manifest.to_json().encode(), mkey)
    except ObjectExists:
        existing = BinlogManifest.from_json(store.read_bytes(mkey))
        if existing.raw_sha256 != manifest.raw_sha256:
            raise BinlogHistoryChanged(
                f"location {store.location.name!r}: {mkey} already records a different {file} "
                "(other sha256): two servers archive under one server name? Never overwritten"
            ) from None
        manifest, adopted = existing, True
    return ArchivedBinlog(
        file, store.location.name, raw.size, obj.size, time.monotonic() - started, adopted
    ), manifest


def _gap_error(
    server_name: str,
    plans: dict[str, LocationPlan],
    stores: dict[str, Store],
    server: ServerBinlogs,
    result: ArchiveResult,
) -> BinlogGap:
    missing = sorted({f for p in plans.values() for f in p.new_gap}, key=binlog_sequence)
    where = sorted(n for n, p in plans.items() if p.new_gap)
    affected: set[str] = set()
    for name in where:
        with contextlib.suppress(MysqlopsError):
            affected.update(affected_backups(full_backups(stores[name], server_name), missing[-1]))
    oldest = min((f for f, _ in server.logs), key=binlog_sequence, default=server.active)
    last = {n: plans[n].last_archived for n in where}
    lines = [
        f"server {server_name!r}: binlog(s) {', '.join(missing)} were purged from the server before "
        f"they were archived (the server's oldest binlog is {oldest}; the archive at "
        + ", ".join(f"{n!r} ended at {last[n]}" for n in where)
        + ").",
        "Point-in-time recovery across this gap is IMPOSSIBLE.",
    ]
    if affected:
        lines.append(
            f"Full backups that cannot be rolled forward past {missing[0]}: {', '.join(sorted(affected))}."
        )
    lines.append(
        f"Archived everything still available ({len(result.archived)} copies). Take a new full backup "
        "now (PITR works again from it), and archive more often than the server purges binlogs "
        "(expire_logs_days / binlog_expire_logs_seconds)."
    )
    return BinlogGap(
        " ".join(lines),
        server=server_name,
        missing=missing,
        locations=where,
        affected_backups=sorted(affected),
        result=result,
    )


def full_backups(store: Store, server: str) -> list[BackupManifest]:
    """Readable full-backup manifests of ``server`` at one location (a manifest that fails
    validation or names another directory than its own is not one of them)."""
    out = []
    for key in store.list_keys(layout.backups_prefix(server), refused=[]):
        if layout.is_backup_manifest_key(key, server):
            with contextlib.suppress(ManifestError, StorageError):
                m = BackupManifest.from_json(store.read_bytes(key))
                if key == layout.manifest_key(m.server, m.backup_id) and m.server == server:
                    out.append(m)
    return out


def list_archived(store: Store, server: str) -> list[BinlogManifest]:
    """Every archived binlog of ``server`` at one location (by manifest), oldest first.
    An unreadable manifest raises :class:`ManifestError` (never silently skipped)."""
    out = []
    for file in layout.archived_binlogs(store.list_keys(layout.binlog_dir(server)), server):
        key = layout.binlog_manifest_key(server, file)
        try:
            m = BinlogManifest.from_json(store.read_bytes(key))
        except ManifestError as exc:
            raise ManifestError(f"location {store.location.name!r}: {key}: {exc}") from None
        if m.server != server or m.file != file:
            raise ManifestError(
                f"location {store.location.name!r}: {key} names server {m.server!r} and binlog {m.file!r}, not the "
                "file it was found as: the archive there is not trusted"
            )
        if m.location != store.location.name:  # where it was found counts, not what it says
            m = dataclasses.replace(m, location=store.location.name)
        out.append(m)
    return out
