"""Point-in-time recovery: the newest full backup before the target, then archived binlogs
replayed from that backup's recorded coordinates up to the target (streamed, verified)."""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mysqlops import catalog
from mysqlops.adapters import reaper
from mysqlops.adapters.localfs import private_dir
from mysqlops.adapters.storage import Store
from mysqlops.binlog.replay import FetchedBinlogs, ReplayResult, apply_binlogs, fetch_binlogs
from mysqlops.errors import ConfigError, MysqlopsError, RestoreError
from mysqlops.manifest import BackupManifest, Check
from mysqlops.model import BackupMethod, BinlogCoordinates, Location, RecoveryTarget, ServerSpec
from mysqlops.restore.fetch import check_key
from mysqlops.restore.logical import RestoreResult, restore_backup
from mysqlops.restore.verify import SCRATCH_PARENT
from mysqlops.runs import RunContext


def fetch_window(
    locations: Sequence[Location],
    server: str,
    start: BinlogCoordinates,
    until: RecoveryTarget,
    ctx: RunContext,
) -> contextlib.AbstractContextManager[FetchedBinlogs]:
    """The archived binlogs of ``server`` from ``start`` to ``until``, fetched and verified
    (:func:`~mysqlops.binlog.replay.fetch_binlogs`) with the staging directory and keys of ``ctx``."""
    return fetch_binlogs(
        [Store(loc) for loc in locations],
        server,
        start,
        until,
        staging_dir=ctx.staging_dir,
        keyring=ctx.keyring,
    )


@dataclass
class PitrResult:
    restore: RestoreResult
    replay: ReplayResult
    base: BackupManifest


def _logical_fulls(scans: Sequence[catalog.LocationScan], server: str) -> list[BackupManifest]:
    """Every copy of a complete logical backup of ``server`` that records its binlog coordinates."""
    return [
        m
        for s in scans
        for m in s.backups
        if m.server == server
        and m.method is BackupMethod.LOGICAL
        and m.status.value == "complete"
        and m.coordinates
    ]


def choose_base(
    scans: Sequence[catalog.LocationScan],
    server: str,
    until: RecoveryTarget,
    backup_id: str = "latest",
) -> list[tuple[Location, BackupManifest]]:
    """Copies of the newest complete logical backup with coordinates taken before the target."""
    if backup_id != "latest":
        return catalog.find_backup(scans, server, backup_id)
    candidates = _logical_fulls(scans, server)
    if until.time is not None:
        # the dump's snapshot is taken when it starts: the backup must have started before the target
        when = until.time
        candidates = [m for m in candidates if m.started_at < when]
    if until.position is not None:
        target = until.position
        candidates = [
            m
            for m in candidates
            if m.coordinates
            and (m.coordinates.sequence, m.coordinates.position) <= (target.sequence, target.position)
        ]
    if not candidates:
        raise RestoreError(
            f"no complete logical backup of {server!r} with binlog coordinates before the recovery target: "
            "point-in-time recovery needs a full backup taken before it"
        )
    newest = max(candidates, key=lambda m: (m.finished_at, m.backup_id))
    return catalog.find_backup(scans, server, newest.backup_id)


def point_in_time_restore(
    locations: Sequence[Location],
    server: str,
    target: ServerSpec,
    until: RecoveryTarget,
    *,
    backup_id: str = "latest",
    databases: Sequence[str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    ctx: RunContext | None = None,
    tables: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
) -> PitrResult:
    """Restore the newest full backup of ``server`` taken before ``until``, then replay the
    archived binlogs from its coordinates up to ``until`` (see the module docstring).
    ``ctx``: staging directory, keyring (the base backup's and the binlogs' keys), reporter.
    ``tables`` (and ``rename``): only those tables, as they were at ``until``
    (:mod:`mysqlops.restore.table_pitr`: rebuilt on a scratch server, then moved)."""
    ctx = ctx or RunContext()
    if tables:
        from mysqlops.restore.table_pitr import table_point_in_time_restore  # it builds on this module

        if databases:
            raise ConfigError("pass either databases=... or tables=..., not both")
        return table_point_in_time_restore(
            locations,
            server,
            target,
            until,
            tables,
            backup_id=backup_id,
            rename=rename,
            overwrite=overwrite,
            allow_source_target=allow_source_target,
            ctx=ctx,
        )
    if rename:
        raise ConfigError("point-in-time recovery restores whole backups under their own names: drop rename")
    say, keyring = ctx.reporter.info, ctx.keyring
    if not isinstance(until, RecoveryTarget):
        raise ConfigError("point-in-time recovery needs a RecoveryTarget (RecoveryTarget.parse(until=...))")
    if databases:
        raise ConfigError(
            "point-in-time recovery restores whole backups: binlog events of the other databases would "
            "have nowhere to go; restore into a scratch server and copy the databases you need"
        )
    scans = catalog.scan(locations)
    copies = choose_base(scans, server, until, backup_id)
    base = copies[0][1]
    if base.coordinates is None:
        raise RestoreError(
            f"backup {base.backup_id} records no binlog coordinates: point-in-time recovery cannot start from it"
        )
    say(f"base backup {base.backup_id} (coordinates {base.coordinates.file}:{base.coordinates.position})")
    check_key(base, keyring)
    # every binlog is fetched, verified and decrypted BEFORE the target is touched: a gap, a
    # missing key or a corrupt archive fails here, not after the base backup was loaded
    with fetch_window(locations, server, base.coordinates, until, ctx) as fetched:
        say(f"fetched and verified {len(fetched.paths)} archived binlog file(s)")
        restored = restore_backup(
            copies,
            target,
            ctx,
            databases=databases,
            overwrite=overwrite,
            allow_source_target=allow_source_target,
        )
        replay = apply_binlogs(target, fetched)
    say(f"replayed {len(replay.files)} binlog file(s) up to {replay.stop}")
    return PitrResult(restored, replay, base)


def prove_binlog_chain(
    locations: Sequence[Location],
    server: str,
    *,
    sandbox_dir: str | None = None,
    rng: random.Random | None = None,
    ctx: RunContext | None = None,
) -> list[Check]:
    """Prove point-in-time recovery over the archived window with a real reference point.

    Picks (at random) two consecutive complete logical backups B1, B2 with coordinates,
    restores B1 into a scratch server, replays the archived binlogs from B1's coordinates up to
    exactly B2's coordinates, and compares a re-dump of every database with B2's content
    hashes. Equality proves that B1 + the binlog archive reproduce B2: the archive is complete
    and replayable across that window. The scratch server is always removed; it lives in
    ``sandbox_dir`` or in a new owner-marked directory under /tmp, which the next run removes
    (server included) if this process is killed.
    """
    from mysqlops.adapters import builds, clients, sandbox
    from mysqlops.restore.verify import redump_content_hash, scratch_build_name

    ctx = ctx or RunContext()
    say, staging_dir = ctx.reporter.info, ctx.staging_dir
    scans = catalog.scan(locations)
    fulls = sorted(
        {m.backup_id: m for m in _logical_fulls(scans, server) if m.extra.get("parallel", 1) == 1}.values(),
        # binlog coordinates order backups of one server exactly (ids only to the second)
        key=lambda m: (
            (m.coordinates.sequence, m.coordinates.position, m.backup_id)
            if m.coordinates
            else (0, 0, m.backup_id)
        ),
    )
    pairs = list(itertools.pairwise(fulls))
    if not pairs:
        return [
            Check(
                "binlog chain between two full backups",
                False,
                f"needs two complete logical backups of {server!r} with coordinates; found {len(fulls)}",
            )
        ]
    first, second = (rng or random.Random()).choice(pairs)
    assert first.coordinates is not None and second.coordinates is not None
    say(
        f"proving {first.backup_id} + binlogs == {second.backup_id} ({second.coordinates.file}:{second.coordinates.position})"
    )
    checks: list[Check] = []
    reaper.reap([staging_dir, sandbox_dir], log=say)
    scratch_root = contextlib.ExitStack()
    scratch = None
    try:
        # a scratch server of the backups' own flavor and series, started inside the try: one
        # that cannot start is a failed check with the reason
        build = builds.resolve(scratch_build_name(first), log=say)
        root = sandbox_dir or scratch_root.enter_context(private_dir(SCRATCH_PARENT, "mysqlops-pitr-"))
        scratch = sandbox.start_server(
            root, f"pitr-{second.backup_id[-6:]}", server_id=950, tuned=True, binary=build, scratch=True
        )
        spec = scratch.spec(name=f"scratch-pitr-{second.backup_id[-6:]}")
        second_at = RecoveryTarget(
            position=BinlogCoordinates(second.coordinates.file, second.coordinates.position)
        )
        with fetch_window(locations, server, first.coordinates, second_at, ctx) as fetched:
            restore_backup(
                catalog.find_backup(scans, server, first.backup_id), spec, ctx, reap_leftovers=False
            )
            replay = apply_binlogs(spec, fetched)
        if replay.key_ids:
            checks.append(
                Check("encrypted binlogs decrypted", True, f"key id(s) {', '.join(replay.key_ids)}")
            )
        checks.append(Check("binlogs replayed", True, f"{len(replay.files)} file(s) up to {replay.stop}"))
        program = clients.for_build(build).dump
        for f in second.files:
            if f.database is None or not f.content_sha256:
                continue
            got = redump_content_hash(spec, f.database, program, second.flavor)
            checks.append(
                Check(
                    f"{f.database}: {first.backup_id} + binlogs equals {second.backup_id}",
                    got == f.content_sha256,
                    f"content sha256 {got[:16]}… vs {f.content_sha256[:16]}…",
                )
            )
    except MysqlopsError as exc:
        checks.append(Check("point-in-time replay", False, str(exc)))
    finally:
        try:
            if scratch is not None:
                sandbox.stop_server(scratch)
        finally:
            scratch_root.close()
    return checks
