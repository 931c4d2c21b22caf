"""The one loading engine of logical restores: stored bytes → SQL → the target server.

Every restore path loads through here (whole databases, single tables, restore tests, the
base backup of a point-in-time restore):

- :func:`iter_raw`: a stored backup file decrypted, decompressed and renamed, as a stream of
  bytes (small reads: memory stays flat);
- :func:`pipe_into_client`: bytes piped into the real ``mariadb``/``mysql`` client of the
  server's build, a failure named by its line and the object the dump's comments say was
  loading there, never a value;
- :func:`load_file`: ``workers=0``, the whole stream through one client as it is;
- :class:`mysqlops.restore.parallel.ParallelLoader` (over :func:`iter_raw` or a single-table
  stream from :mod:`mysqlops.restore.tables`): tables over N connections with secondary keys
  and foreign keys added after the rows, triggers, routines, events and views through
  :func:`pipe_into_client` last.

:class:`LoadOptions` says how: the number of connections and how long one statement may go
without an answer (a hung load fails instead of hanging the run).

Binlog replay (:mod:`mysqlops.binlog.replay`) keeps its own pipe: it runs ``mysqlbinlog`` into
the client as a two-process pipeline with a stop position, and its failure is named by binlog
file and position, not by a dump's line comments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mysqlops import redact
from mysqlops.adapters import process
from mysqlops.errors import ConfigError, ProcessError
from mysqlops.model import ServerSpec
from mysqlops.restore.lines import AT_LINE_RE, DumpLines
from mysqlops.restore.rename import RenameRewriter
from mysqlops.streams.checksum import iter_chunks
from mysqlops.streams.compression import codec_from_label
from mysqlops.streams.crypto import Decryptor, Keyring
from mysqlops.tools.client import client_option_file, mysql_argv

_READ = 128 * 1024

#: how long one statement of a load may go without an answer by default: generous (an index
#: build on a large table takes hours), but a hung server no longer hangs a restore forever
STATEMENT_TIMEOUT_SECONDS = 6 * 3600.0


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class LoadOptions:
    """How a logical restore loads. ``workers``: connections loading tables in parallel (None:
    one per core; 0: the whole stream through one real client as it is, no keys deferred);
    ``statement_timeout``: seconds one statement may go without an answer from the server on
    a loading connection (None: no limit)."""

    workers: int | None = None
    statement_timeout: float | None = STATEMENT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 0):
            raise ConfigError(
                f"workers must be 0 (one client, as dumped) or a positive number of connections, got {self.workers!r}"
            )
        if self.statement_timeout is not None and self.statement_timeout <= 0:
            raise ConfigError(
                f"load_timeout_s must be positive seconds (or None for no limit), got {self.statement_timeout!r}"
            )

    @property
    def connections(self) -> int:
        """Connections of a parallel load (0: the raw pipe)."""
        return default_workers() if self.workers is None else self.workers


def iter_raw(
    path: str,
    compression: str,
    keyring: Keyring | None,
    rename: Mapping[str, str],
    on_raw: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The decrypted, decompressed, renamed bytes of a stored backup file; ``on_raw`` counts
    the bytes as the backup holds them (before a rename), as the manifest's raw size does. A
    truncated or tampered encrypted file raises at its end (before its last bytes are out)."""
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    rewriter = RenameRewriter(rename)
    count = on_raw or (lambda _n: None)

    def plain(raw: bytes) -> bytes:
        if raw:
            count(len(raw))
        return rewriter.feed(raw)

    with open(path, "rb") as src:
        # small reads: what one read decompresses to is bounded by READ × the compression ratio
        for chunk in iter_chunks(src, _READ):
            raw = dec.decompress(decryptor.update(chunk) if decryptor is not None else chunk)
            if raw:
                yield plain(raw)
        if decryptor is not None:
            rest = decryptor.finalize()  # raises on truncation/tampering
            if rest:
                yield plain(dec.decompress(rest))
        yield plain(dec.finish())
        yield rewriter.finish()


def pipe_into_client(
    target: ServerSpec,
    program: Any,
    chunks: Iterable[bytes],
    *,
    name: str,
    timeout: float | None,
    context: str | None = None,
    on_open: Callable[[process.Pipeline], None] | None = None,
    on_close: Callable[[process.Pipeline], None] | None = None,
) -> None:
    """Pipe ``chunks`` into the real client on ``target``. A failure raises
    :class:`ProcessError` ``"<context or name> failed at line N (<what the dump says loads
    there>): ..."`` with the client's message stripped of values (``name`` names the process). ``on_open``/``on_close``: the caller tracks
    the running pipe (to cancel it when another part of the load fails)."""
    lines = DumpLines()
    try:
        with process.Pipeline(
            [mysql_argv(program)],
            credentials=client_option_file(target),
            stdin=process.PIPE,
            stdout=process.DEVNULL,
            timeout=timeout,
            name=name,
            stderr_filter=redact.client_stderr,
        ) as pipe:
            if on_open is not None:
                on_open(pipe)
            try:
                sink = pipe.stdin_pipe
                try:
                    for chunk in chunks:
                        if chunk:
                            lines.feed(chunk)
                            sink.write(chunk)
                except BrokenPipeError:
                    pass  # the client died: wait() reports its error
                pipe.wait()
            finally:
                if on_close is not None:
                    on_close(pipe)
    except ProcessError as exc:
        found = AT_LINE_RE.search(str(exc))
        where = f" at line {found.group(1)} ({lines.where(int(found.group(1)))})" if found else ""
        raise type(exc)(
            f"{context or name} failed{where}: {exc}", returncode=exc.returncode, stderr_tail=exc.stderr_tail
        ) from None


def load_file(
    path: str,
    compression: str,
    target: ServerSpec,
    program: Any,
    rename: Mapping[str, str],
    on_bytes: Callable[[int], None] | None = None,
    timeout: float | None = None,
    keyring: Keyring | None = None,
) -> None:
    """Stream-decrypt (when encrypted) and decompress ``path`` (with renames) into one real
    client on ``target`` (``workers=0``). A truncated or tampered encrypted file raises before
    its end reaches the client: the client's transaction-less load stops there, the caller
    drops what it created."""
    pipe_into_client(
        target,
        program,
        iter_raw(path, compression, keyring, rename, on_bytes),
        name=f"load of {os.path.basename(path)}",
        timeout=timeout,
        context=f"loading {os.path.basename(path)} into {target.name}",
    )
