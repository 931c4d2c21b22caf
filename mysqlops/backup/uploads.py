"""Uploads that follow the staging files and publish only after the dump is proven."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import IO, cast

from mysqlops import layout
from mysqlops.adapters.storage import Store
from mysqlops.backup.staging import StagedFile
from mysqlops.errors import (
    BackupAborted,
    IntegrityError,
    MysqlopsError,
    StorageError,
)
from mysqlops.manifest import BackupManifest
from mysqlops.model import (
    Location,
)
from mysqlops.streams.checksum import CountingHash
from mysqlops.streams.follow import FollowReader, Growth
from mysqlops.units import human_bytes


# --------------------------------------------------------------------------- the backup
@dataclass
class LocationResult:
    location: str
    ok: bool
    seconds_upload: float = 0.0  # first byte to last file published (overlaps the dump)
    seconds_upload_after_dump: float = 0.0  # the part of it after the dump ended
    seconds_verify: float = 0.0
    error: str = ""
    manifest_key: str = ""

    def durations(self) -> dict[str, float]:
        return {
            f"upload:{self.location}": round(self.seconds_upload, 3),
            f"upload_after_dump:{self.location}": round(self.seconds_upload_after_dump, 3),
            f"verify:{self.location}": round(self.seconds_verify, 3),
        }


class _Gate:
    """Whether the dump was proven good. Uploads wait here before publishing anything."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._failure: str | None = None

    def open(self) -> None:
        self._event.set()

    def abort(self, reason: str) -> None:
        if not self._event.is_set():
            self._failure = reason
            self._event.set()

    def wait(self) -> None:
        self._event.wait()
        if self._failure is not None:
            raise BackupAborted(self._failure)


class _Lane:
    """One location: follows each staged file while it is written, publishes behind the gate,
    reads every stored copy back, then writes the manifest."""

    def __init__(self, location: Location, directory: str, gate: _Gate, streams: int) -> None:
        self.location = location
        self.store = Store(location)
        self.directory = directory
        self.gate = gate
        self.pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix=f"upload-{location.name}"[:40])
        self.jobs: list[Future[None]] = []
        self.lock = threading.Lock()
        self.committed: list[str] = []
        self.error = ""
        self.first_byte: float | None = None
        self.last_commit = 0.0
        self.verify_seconds = 0.0
        self.sent: dict[str, int] = {}  # staged path -> bytes read by the current attempt

    def submit(self, sf: StagedFile, growth: Growth, size_hint: int) -> None:
        job = self.pool.submit(self._one, sf, growth, size_hint)
        with self.lock:
            self.jobs.append(job)

    def _one(self, sf: StagedFile, growth: Growth, size_hint: int) -> None:
        if self.error:
            return  # this location already failed: do not keep uploading to it
        key = layout.member_key(self.directory, os.path.basename(sf.path))

        def ready(written: CountingHash) -> None:
            self.gate.wait()  # the whole dump is proven good, and this file is complete
            if written.size != sf.stored.size or written.hexdigest() != sf.stored.hexdigest():
                raise IntegrityError(
                    f"location {self.location.name!r}: {key} uploaded {written.size} bytes that differ "
                    f"from the staged file ({sf.stored.size} bytes)"
                )

        with self.lock:
            self.first_byte = self.first_byte or time.monotonic()
        try:
            obj = self.store.put_from(
                key,
                lambda: cast(IO[bytes], FollowReader(sf.path, growth, on_read=self._counter(sf.path))),
                size_hint=size_hint,
                before_commit=ready,
                verify=False,
            )
            with self.lock:
                self.committed.append(key)
                self.last_commit = max(self.last_commit, time.monotonic())
            t = time.monotonic()
            self.store.verify(key, obj.sha256, obj.size)
            with self.lock:
                self.verify_seconds += time.monotonic() - t
        except MysqlopsError as exc:
            if not isinstance(exc, BackupAborted):
                self.error = self.error or str(exc)
            raise

    def _counter(self, path: str) -> Callable[[int], None]:
        self.sent[path] = 0  # a new attempt starts from the beginning of the file

        def add(n: int) -> None:
            self.sent[path] += n

        return add

    @property
    def sent_bytes(self) -> int:
        return sum(self.sent.values())

    def finish(self, base: BackupManifest, dump_ended: float) -> LocationResult:
        result = LocationResult(self.location.name, ok=False)
        with self.lock:
            jobs = list(self.jobs)
        for job in jobs:
            with contextlib.suppress(Exception):
                job.result()
        end = self.last_commit or time.monotonic()
        result.seconds_upload = max(0.0, end - (self.first_byte or dump_ended))
        result.seconds_upload_after_dump = max(0.0, end - dump_ended)
        result.seconds_verify = self.verify_seconds
        try:
            if self.error:
                raise StorageError(self.error)
            if len(self.committed) != len(jobs):
                raise StorageError(f"location {self.location.name!r}: some files were not uploaded")
            manifest = replace(
                base,
                location=self.location.name,
                durations={**base.durations, **result.durations()},
            )
            key = layout.member_key(self.directory, layout.MANIFEST_NAME)
            self.store.put_bytes(manifest.to_json().encode(), key)  # the commit marker, last
            result.manifest_key = key
            result.ok = True
        except MysqlopsError as exc:
            result.error = str(exc)
            for key in self.committed:  # not a backup without a manifest: leave no garbage either
                with contextlib.suppress(Exception):
                    self.store.delete(key)
            with contextlib.suppress(Exception):
                self.store.abort_stale_uploads(older_than=timedelta(0), prefix=self.directory)
        return result


class _Uploads:
    """Every staged file to every location, each uploaded while the dump is writing it.

    ``STREAMS`` files are followed at once per location (a multi-database dump keeps every
    file open until its end, so later files wait and are read from disk): that bounds the
    memory of open S3 multipart buffers (one part each) whatever the number of databases.
    """

    STREAMS = 2

    def __init__(
        self,
        locations: Sequence[Location],
        directory: str,
        estimates: dict[str, int],
        log: Callable[[str], None] | None = None,
        report_interval: float = 5.0,
    ) -> None:
        self.gate = _Gate()
        self.log = log
        self.report_interval = max(0.2, report_interval)
        self.estimates = estimates
        self.growths: list[Growth] = []
        self.lock = threading.Lock()
        self.lanes: list[_Lane] = []
        try:
            for location in locations:
                self.lanes.append(_Lane(location, directory, self.gate, self.STREAMS))
        except BaseException:
            self.close()
            raise

    def add(self, sf: StagedFile, growth: Growth) -> None:
        with self.lock:
            self.growths.append(growth)
        hint = 2 * self.estimates.get(sf.database, 0)  # compressed is smaller than this
        for lane in self.lanes:
            lane.submit(sf, growth, hint)

    def finish(
        self, base: BackupManifest, dump_ended: float, durations: dict[str, float]
    ) -> list[LocationResult]:
        """Open the gate (the dump is proven good), let every location publish and verify, and
        write each location's manifest once all its files verified."""
        self.gate.open()
        total = sum(f.stored_bytes for f in base.files)
        with ThreadPoolExecutor(max_workers=max(1, len(self.lanes)), thread_name_prefix="publish") as pool:
            futures = [pool.submit(lane.finish, base, dump_ended) for lane in self.lanes]
            # a slow location keeps uploading after the dump: say so, or it looks like a hang
            while wait(futures, timeout=self.report_interval).not_done:
                self._report(total, dump_ended)
            results = [f.result() for f in futures]
        for r in results:
            durations.update(r.durations())
        return results

    def _report(self, total: int, dump_ended: float) -> None:
        if self.log is None:
            return
        parts = [
            f"{lane.location.name} {human_bytes(lane.sent_bytes)} of {human_bytes(total)}"
            f" ({100 * lane.sent_bytes / total if total else 100:.0f}%)"
            for lane in self.lanes
        ]
        self.log(f"dump done {time.monotonic() - dump_ended:.0f}s ago; uploading: " + ", ".join(parts))

    def close(self) -> None:
        self.gate.abort("the backup failed before it was published")
        with self.lock:
            growths = list(self.growths)
        for growth in growths:
            growth.fail("the backup failed before it was published")
        for lane in self.lanes:
            lane.pool.shutdown(wait=True)


def as_uploaded(
    manifest: BackupManifest, results: Sequence[LocationResult], durations: dict[str, float]
) -> BackupManifest:
    """The manifest a backup run returns: at the first location that took it (``""``: none did),
    with the run's durations."""
    first_ok = next((r.location for r in results if r.ok), "")
    return replace(manifest, location=first_ok, durations=dict(durations))


def _upload_everywhere(
    base: BackupManifest,
    files: Sequence[StagedFile],
    locations: Sequence[Location],
    durations: dict[str, float],
) -> list[LocationResult]:
    """Upload files that are already complete (physical backups): the same lanes, no overlap."""
    uploads = _Uploads(locations, layout.backup_dir(base.server, base.backup_id), {})
    try:
        for sf in files:
            growth = Growth()
            growth.finish(sf.stored.size)
            uploads.add(sf, growth)
        return uploads.finish(base, time.monotonic(), durations)
    finally:
        uploads.close()
