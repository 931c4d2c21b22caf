"""One short way for tests to call the backup engines, which take a request and a run context:

    core.run_backup(*job(spec, [location], codec("zstd"), databases=["shop"], log=lines.append))
    backup.run_physical_backup(*job(spec, [location], zstd, incremental=True, staging_dir=st))

Lists stand for tuples; ``log`` gets every line (all levels), ``progress`` every
:class:`~mysqlops.progress.Progress` of the dump, ``encryption_key`` becomes a one-key keyring.
Any other keyword is a :class:`~mysqlops.backup.BackupRequest` field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from mysqlops.backup import BackupRequest
from mysqlops.model import Location, ServerSpec
from mysqlops.progress import ProgressFn
from mysqlops.runs import CHILD_TIMEOUT_SECONDS, Reporter, RunContext
from mysqlops.streams.compression import Codec
from mysqlops.streams.crypto import Keyring


def job(
    server: ServerSpec,
    locations: Sequence[Location],
    compression: str | Codec = "zstd",
    *,
    staging_dir: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: ProgressFn | None = None,
    progress_interval: float = 5.0,
    timeout: float | None = CHILD_TIMEOUT_SECONDS,
    encryption_key: bytes | None = None,
    **fields: Any,
) -> tuple[BackupRequest, RunContext]:
    for name in ("databases", "include", "exclude", "tags"):
        if isinstance(fields.get(name), list):
            fields[name] = tuple(fields[name])
    request = BackupRequest(server, tuple(locations), compression=compression, **fields)
    ctx = RunContext(
        staging_dir=staging_dir,
        keyring=Keyring(encryption_key) if encryption_key is not None else None,
        reporter=dataclasses.replace(Reporter.from_log(log), stream=progress),
        timeout=timeout,
        progress_interval=progress_interval,
    )
    return request, ctx
