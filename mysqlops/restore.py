"""Restore logical backups, and prove them: restore tests into scratch servers.

Restore path, per database file: download the stored (compressed) copy into a private
staging directory while computing its sha256 → compare with the manifest (a missing,
truncated or corrupt copy is reported and the next location is tried; nothing has touched
the target yet) → stream decompress → rewrite the database name if renamed → the real
``mariadb``/``mysql`` client. No uncompressed copy is ever written to disk. If loading
fails, every database this run created is dropped again: nothing half-restored is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mysqlops import ids, redact
from mysqlops.adapters import mysql as db
from mysqlops.adapters import process, reaper
from mysqlops.adapters.localfs import private_dir, private_tempdir
from mysqlops.adapters.storage import Store
from mysqlops.checksum import CHUNK, CountingHash, iter_chunks
from mysqlops.commands import ClientTools, DumpOptions, client_option_file, dump_argv, mysql_argv
from mysqlops.compression import codec_from_label
from mysqlops.crypto import Decryptor, Keyring
from mysqlops.dialect import quote_identifier as q
from mysqlops.dumpscan import DumpScanner
from mysqlops.errors import (
    ConfigError,
    IntegrityError,
    MysqlopsError,
    ProcessError,
    RestoreError,
    StorageError,
)
from mysqlops.manifest import BackupFile, BackupManifest, Check, RestoreCertificate, validate_backup_manifest
from mysqlops.model import Location, ServerSpec
from mysqlops.tablesum import table_checksums

ProgressFn = Callable[[int, int, float], None]  # loaded raw bytes, total raw bytes, elapsed seconds
SCRATCH_PARENT = "/tmp"  # noqa: S108 - scratch servers: a short path for their unix socket (107 bytes)


# --------------------------------------------------------------------------- stream rewriting
# One SQL token of a dump statement. Strings, quoted identifiers and block comments may be
# unterminated at the end of the text seen so far (the statement continues on the next line).
_TOKEN_RE = re.compile(
    rb"""
    (?P<ws>\s+)
   |(?P<bt>`(?:[^`]|``)*(?P<bt_end>`)?)
   |(?P<sq>'(?:[^'\\]|\\.|'')*(?P<sq_end>')?)
   |(?P<dq>"(?:[^"\\]|\\.|"")*(?P<dq_end>")?)
   |(?P<vopen>/\*M?!\d*)
   |(?P<comment>/\*(?:[^*]|\*(?!/))*(?P<comment_end>\*/)?|--(?=\s|$)[^\n]*|\#[^\n]*)
   |(?P<vclose>\*/)
   |(?P<word>[A-Za-z0-9_$\x80-\xff]+)
   |(?P<punct>.)
    """,
    re.S | re.X,
)
_OBJECT_KINDS = {b"TRIGGER": "trigger", b"PROCEDURE": "procedure", b"FUNCTION": "function",
                 b"EVENT": "event", b"VIEW": "view", b"TABLE": "table"}  # fmt: skip
_DATABASE_STATEMENTS = ((b"CREATE", b"DATABASE"), (b"CREATE", b"SCHEMA"), (b"ALTER", b"DATABASE"),
                        (b"ALTER", b"SCHEMA"), (b"DROP", b"DATABASE"), (b"DROP", b"SCHEMA"), (b"USE",))  # fmt: skip
_MAX_STATEMENT = 64 << 20  # a statement outside table data longer than this cannot be checked
_INSERT = b"INSERT INTO "


@dataclass(frozen=True)
class _Token:
    kind: str
    start: int
    end: int
    text: bytes
    closed: bool = True  # False: a string, quoted name or comment cut off by the end of the text

    def identifier(self) -> str | None:
        """The name this token spells when it can be an identifier (bare word, backticks, or
        double quotes, which are identifiers under ANSI_QUOTES)."""
        if self.kind == "word":
            return self.text.decode("utf-8", "replace")
        if self.kind == "bt" and len(self.text) >= 2:
            return self.text[1:-1].replace(b"``", b"`").decode("utf-8", "replace")
        if self.kind == "dq" and len(self.text) >= 2:
            return self.text[1:-1].replace(b'""', b'"').decode("utf-8", "replace")
        return None


def _tokens(text: bytes) -> list[_Token]:
    out = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "punct"
        if kind.endswith("_end"):
            kind = kind[: -len("_end")]
        closed = True
        if kind in ("bt", "sq", "dq") or (kind == "comment" and m.group().startswith(b"/*")):
            closed = m.group(f"{kind}_end") is not None
        out.append(_Token(kind, m.start(), m.end(), m.group(), closed))
    return out


def _significant(tokens: list[_Token]) -> list[_Token]:
    """Tokens the server sees as code: versioned comments (``/*!50003 ... */``) are code."""
    return [t for t in tokens if t.kind not in ("ws", "comment", "vopen", "vclose")]


class RenameRefused(RestoreError):
    """A dump cannot be restored under another name without touching the original database."""


class RenameRewriter:
    """Rewrites a one-database dump stream so that it creates and fills ``new`` instead of
    ``old``, and never touches another database.

    Every statement outside table data is tokenised (strings, quoted identifiers, comments,
    ``DELIMITER`` blocks; versioned comments count as code). Statements about the database
    itself (``CREATE DATABASE``, ``USE``, the ``ALTER DATABASE `old` CHARACTER SET`` lines a
    dump wraps around routines, events and triggers created under another default charset)
    are rewritten. Any other statement that qualifies a name with ``old`` (``old.t`` in a
    view, trigger, routine or event body) cannot be rewritten safely (the qualifier might be
    an alias, the body might be dynamic): it is recorded in :attr:`refusals`, naming the
    object; with ``check_only=False`` the first one raises :class:`RenameRefused`. A
    statement about another database raises too. Table data (``INSERT INTO`` at the top
    level, up to the ``;`` that ends a line; mysqldump escapes every newline inside data)
    passes through untouched at memory speed.
    """

    def __init__(self, mapping: Mapping[str, str], *, check_only: bool = False) -> None:
        if len(mapping) > 1:
            raise ConfigError("a dump file holds one database: rename one database per stream")
        self.old, self.new = next(iter(mapping.items())) if mapping else ("", "")
        self.active = bool(mapping) and self.old != self.new
        self.check_only = check_only
        self.refusals: list[str] = []
        self._new_quoted = q(self.new).encode() if self.active else b""
        self._carry = b""
        self._statement: list[bytes] = []
        self._statement_bytes = 0
        self._delimiter = b";"
        self._in_data = False
        self._data_tail = b""  # last byte of data emitted (a ';' may end it at the next '\n')

    # -- streaming --------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        if not self.active:
            return data
        buf = self._carry + data if self._carry else data
        self._carry = b""
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while pos < n:
            if self._in_data:
                if self._data_tail == b";" and buf[pos : pos + 1] == b"\n":
                    end = pos
                else:
                    end = buf.find(b";\n", pos)
                    end = end + 1 if end >= 0 else -1
                if end < 0:
                    out.append(buf[pos:])
                    self._data_tail = buf[-1:]
                    pos = n
                    break
                out.append(buf[pos : end + 1])
                pos = end + 1
                self._in_data = False
                self._data_tail = b""
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                rest = buf[pos:]
                if not self._statement and self._delimiter == b";" and rest.startswith(_INSERT):
                    out.append(rest)  # an enormous single-line INSERT: data from here on
                    self._in_data = True
                    self._data_tail = rest[-1:]
                elif len(rest) + self._statement_bytes > _MAX_STATEMENT:
                    self._too_long()
                    out.append(rest)
                else:
                    self._carry = rest
                break
            self._line(buf[pos : nl + 1], out)
            pos = nl + 1
        return b"".join(out)

    def finish(self) -> bytes:
        if not self.active:
            return b""
        out: list[bytes] = []
        if self._carry:
            carry, self._carry = self._carry, b""
            if self._in_data:
                out.append(carry)
            else:
                self._line(carry, out)
        if self._statement:
            out.append(self._statement_done())
        return b"".join(out)

    # -- lines and statements -------------------------------------------------------------
    def _line(self, line: bytes, out: list[bytes]) -> None:
        if not self._statement:
            bare = line.strip()
            if not bare or bare.startswith((b"-- ", b"/*M!999999")) or bare == b"--":
                out.append(line)  # a comment line or the sandbox-mode marker
                return
            if bare[:10].upper() == b"DELIMITER " or bare.upper() == b"DELIMITER":
                self._delimiter = bare[10:].strip() or b";"
                out.append(line)
                return
            if self._delimiter == b";" and line.startswith(_INSERT):
                out.append(line)
                if not line.rstrip(b"\r\n").endswith(b";"):
                    self._in_data = True
                return
        self._statement.append(line)
        self._statement_bytes += len(line)
        if self._statement_bytes > _MAX_STATEMENT:
            self._too_long()
            out.append(b"".join(self._statement))
            self._statement.clear()
            self._statement_bytes = 0
            return
        if line.rstrip().endswith(self._delimiter) and self._complete():
            out.append(self._statement_done())

    def _complete(self) -> bool:
        """The statement so far ends with the delimiter outside strings and comments."""
        tokens = [t for t in _tokens(b"".join(self._statement)) if t.kind != "ws"]
        if not tokens or not tokens[-1].closed:
            return False
        tail = tokens[-len(self._delimiter) :]
        return all(t.kind == "punct" for t in tail) and b"".join(t.text for t in tail) == self._delimiter

    def _statement_done(self) -> bytes:
        text = b"".join(self._statement)
        self._statement.clear()
        self._statement_bytes = 0
        return self._rewrite(text)

    def _rewrite(self, text: bytes) -> bytes:
        tokens = _tokens(text)
        code = _significant(tokens)
        words = [t.text.upper() for t in code[:2] if t.kind == "word"]
        for head in _DATABASE_STATEMENTS:
            if tuple(words[: len(head)]) == head:
                return self._database_statement(text, code[len(head) :], head)
        header = _trigger_header(code)
        old = self.old.casefold()
        edits: list[_Token] = []
        for i, tok in enumerate(code):
            name = tok.identifier()
            if (
                name is None
                or i + 1 >= len(code)
                or code[i + 1].text != b"."
                or (i > 0 and code[i - 1].text == b".")
            ):
                continue  # not the first part of a qualified name
            if i < header:
                # ``TRIGGER db.name ... ON db.table``: by the grammar these are database names
                if name.casefold() == old:
                    edits.append(tok)
                else:
                    self._refuse(f"{_describe_object(code)} is defined on another database, {q(name)}")
            elif name.casefold() == old:
                self._refuse(f"{_describe_object(code)} names {q(self.old)} explicitly ({_snippet(code, i)})")
                break
        for tok in reversed(edits):
            text = text[: tok.start] + self._new_quoted + text[tok.end :]
        return text

    def _database_statement(self, text: bytes, rest: list[_Token], head: tuple[bytes, ...]) -> bytes:
        """``CREATE DATABASE [IF NOT EXISTS] `old` ...``, ``USE `old```, ``ALTER DATABASE `old`
        ...``: the first name is the database; it must be ``old``, and becomes ``new``."""
        target = next(
            (
                t
                for t in rest
                if t.identifier() is not None and t.text.upper() not in (b"IF", b"NOT", b"EXISTS")
            ),
            None,
        )
        statement = b" ".join(head).decode()
        if target is None or (
            target.kind == "word" and target.text.upper() in (b"CHARACTER", b"DEFAULT", b"COLLATE")
        ):
            # ALTER DATABASE without a name changes the current database: the one being loaded
            return text
        name = target.identifier()
        if name is None or name.casefold() != self.old.casefold():
            self._refuse(f"a {statement} statement names another database, {q(name or '?')}")
            return text
        return text[: target.start] + self._new_quoted + text[target.end :]

    def _refuse(self, reason: str) -> None:
        if reason not in self.refusals:
            self.refusals.append(reason)
        if not self.check_only:
            raise RenameRefused(
                f"restoring {q(self.old)} as {q(self.new)}: {reason}; the load was stopped and rolled back"
            )

    def _too_long(self) -> None:
        self._refuse(
            f"a statement outside table data is longer than {_MAX_STATEMENT >> 20} MiB and cannot be checked"
        )


def _trigger_header(code: list[_Token]) -> int:
    """In a ``CREATE ... TRIGGER`` statement, the index of ``FOR EACH ROW`` (the header before
    it names the trigger and its table, the body follows); 0 for any other statement."""
    words = [t.text.upper() if t.kind == "word" else b"" for t in code]
    if b"TRIGGER" not in words or b"CREATE" not in words[: words.index(b"TRIGGER")]:
        return 0
    for i in range(words.index(b"TRIGGER"), len(words) - 2):
        if words[i : i + 3] == [b"FOR", b"EACH", b"ROW"]:
            return i
    return 0


def _describe_object(code: list[_Token]) -> str:
    """``trigger `t```, ``view `v```... from a statement's first object keyword."""
    for i, tok in enumerate(code[:-1]):
        kind = _OBJECT_KINDS.get(tok.text.upper()) if tok.kind == "word" else None
        if kind:
            j = i + 1
            while (
                code[j].kind == "word"
                and code[j].text.upper() in (b"IF", b"NOT", b"EXISTS")
                and j + 1 < len(code)
            ):
                j += 1
            if j + 2 < len(code) and code[j + 1].text == b"." and code[j + 2].identifier() is not None:
                j += 2  # db.name: the object is the name
            name = code[j].identifier()
            if name is not None:
                return f"{kind} {q(name)}"
    head = b" ".join(t.text for t in code[:4]).decode("utf-8", "replace")
    return f"the statement {head[:60]!r}"


def _snippet(code: list[_Token], i: int) -> str:
    """The qualified name at ``code[i]``: ``old``.``t`` (identifiers only, never a value)."""
    parts = [code[i]]
    j = i + 1
    while (
        j + 1 < len(code) and code[j].text == b"." and code[j + 1].identifier() is not None and len(parts) < 3
    ):
        parts.append(code[j + 1])
        j += 2
    return ".".join(q(p.identifier() or "?") for p in parts)


def rename_refusals(
    path: str, compression: str, rename: Mapping[str, str], keyring: Keyring | None = None
) -> list[str]:
    """Read a stored dump file (decrypting and decompressing as a load would) and list every
    statement that a rename cannot rewrite without touching the original database. Nothing
    is loaded: restore calls this before it changes the target."""
    rewriter = RenameRewriter(rename, check_only=True)
    if not rewriter.active:
        return []
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    with open(path, "rb") as src:
        for chunk in iter_chunks(src, CHUNK):
            plain = decryptor.update(chunk) if decryptor is not None else chunk
            rewriter.feed(dec.decompress(plain))
        if decryptor is not None:
            rewriter.feed(dec.decompress(decryptor.finalize()))
        rewriter.feed(dec.finish())
        rewriter.finish()
    return rewriter.refusals


def check_key(manifest: BackupManifest, keyring: Keyring | None) -> None:
    """Fail before touching anything when an encrypted backup's key is not available."""
    kid = manifest.encryption_key_id
    if kid and (keyring is None or kid not in keyring):
        raise RestoreError(
            f"backup {manifest.backup_id} is encrypted with key id {kid}, which is not in the given keys "
            f"({', '.join(keyring.ids) if keyring else 'none given'}): pass the encryption key Secret block "
            "that was current when it was made"
        )


# --------------------------------------------------------------------------- fetching
@dataclass
class FetchedFile:
    database: str | None
    path: str
    location: str
    seconds: float


def fetch_verified(store: Store, key: str, expected: BackupFile, dest: str) -> float:
    """Download ``key`` to ``dest`` (a new 0600 file: never an existing file or a symbolic
    link, ``O_EXCL | O_NOFOLLOW``), checking size and sha256; remove it on mismatch."""
    started = time.monotonic()
    digest = CountingHash()
    created = False
    try:
        with store.open_read(key) as src:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            created = True
            with os.fdopen(fd, "wb") as out:
                for chunk in iter_chunks(src, CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
    except BaseException:
        if created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
        raise
    problem = ""
    if digest.size != expected.stored_bytes:
        problem = f"is {digest.size} bytes, the manifest says {expected.stored_bytes} (truncated or corrupt)"
    elif digest.hexdigest() != expected.stored_sha256:
        problem = "fails its sha256 check (corrupt copy)"
    if problem:
        os.unlink(dest)
        raise IntegrityError(f"location {store.location.name!r}: {key} {problem}")
    return time.monotonic() - started


def fetch_backup_files(
    copies: Sequence[tuple[Location, BackupManifest]],
    files: Sequence[BackupFile],
    staging: str,
    log: Callable[[str], None],
) -> tuple[list[FetchedFile], list[str]]:
    """Each file from the first location (in preference order) holding a good copy.

    Returns the fetched files and the problems met on the way (corrupt/missing copies). Every
    manifest and file name is validated again here (``validate_backup_manifest``): a name that
    could leave ``staging`` or the backup's directory is refused before anything is read.
    """
    for _location, manifest in copies:
        validate_backup_manifest(manifest)
    names = [ids.check_data_file_name(f.path) for f in files]
    if len(set(names)) != len(names):
        raise RestoreError(f"the files to restore name one file twice ({sorted(names)}): refused")
    problems: list[str] = []
    fetched: list[FetchedFile] = []
    for f in files:
        for location, manifest in copies:
            key = f"{ids.backup_dir(manifest.server, manifest.backup_id)}/{f.path}"
            dest = os.path.join(staging, f.path)
            try:
                seconds = fetch_verified(Store(location), key, f, dest)
            except (IntegrityError, StorageError) as exc:
                problems.append(str(exc))
                log(f"copy at {location.name} unusable: {exc}; trying the next location")
                continue
            fetched.append(FetchedFile(f.database, dest, location.name, seconds))
            break
        else:
            raise RestoreError(
                f"no good copy of {f.path} at any location: " + " | ".join(problems[-len(copies) :])
            )
    return fetched, problems


# --------------------------------------------------------------------------- loading
_MARK_RE = re.compile(
    rb"^-- (Table structure for table|Dumping data for table|Temporary table structure for view|"
    rb"Final view structure for view|Dumping events for database|Dumping routines for database|"
    rb"Current Database:) ([^\n]{0,300})",
    re.M,
)
_MARK_LABELS = {
    b"Table structure for table": "structure of table",
    b"Dumping data for table": "INSERT INTO: data of table",
    b"Temporary table structure for view": "placeholder of view",
    b"Final view structure for view": "view",
    b"Dumping events for database": "events of database",
    b"Dumping routines for database": "routines of database",
    b"Current Database:": "database",
}
_AT_LINE_RE = re.compile(r"\bat line (\d+)")


class DumpLines:
    """Line numbers of a dump stream, and which object the statements at each line belong to
    (from the dump's own ``-- Dumping data for table `t``` comments): what a client's
    ``ERROR ... at line N`` was loading, without keeping any of the stream."""

    _MAX_PARTIAL = 64 * 1024  # a longer line is data: never a comment line

    def __init__(self) -> None:
        self.lines = 0  # complete lines seen
        self._partial = b""
        self._marks: list[tuple[int, str]] = []  # (1-based line of the comment, label)

    def feed(self, data: bytes) -> None:
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(self._partial) < self._MAX_PARTIAL:
                self._partial += data[: self._MAX_PARTIAL]
            return
        block = self._partial + data[: cut + 1] if self._partial else data[: cut + 1]
        tail = data[cut + 1 :]
        self._partial = tail[: self._MAX_PARTIAL]
        pos, line = 0, self.lines
        for m in _MARK_RE.finditer(block):
            line += block.count(b"\n", pos, m.start())
            pos = m.start()
            name = m.group(2).strip().decode("utf-8", "replace")
            self._marks.append((line + 1, f"{_MARK_LABELS[m.group(1)]} {name}"))
        self.lines = line + block.count(b"\n", pos)

    def where(self, line: int) -> str:
        """What the statement starting at 1-based ``line`` belongs to."""
        label = "the dump's header"
        for at, text in self._marks:
            if at > line:
                break
            label = text
        return label


def load_file(
    path: str,
    compression: str,
    target: ServerSpec,
    program: str,
    rename: Mapping[str, str],
    on_bytes: Callable[[int], None] | None = None,
    timeout: float | None = None,
    keyring: Keyring | None = None,
) -> None:
    """Stream-decrypt (when encrypted) and decompress ``path`` (with renames) into the real
    client on ``target``.

    A failed load raises :class:`ProcessError` naming the line and the object it was loading
    (``data of table `t```), the error code and a message without values: the client's echo
    of the statement (rows of the table) and quoted values never reach the exception."""
    dec = codec_from_label(compression).decompressor()
    decryptor = Decryptor(keyring) if keyring is not None else None
    rewriter = RenameRewriter(rename)
    lines = DumpLines()
    name = os.path.basename(path)

    def send(sink: Any, raw: bytes) -> None:
        out = rewriter.feed(raw)
        lines.feed(out)
        sink.write(out)

    try:
        with (
            process.Pipeline(
                [mysql_argv(program)],
                credentials=client_option_file(target),
                stdin=process.PIPE,
                stdout=process.DEVNULL,
                timeout=timeout,
                name=f"load of {name}",
                stderr_filter=redact.client_stderr,
            ) as pipe,
            open(path, "rb") as src,
        ):
            sink = pipe.stdin_pipe
            try:
                for chunk in iter_chunks(src, CHUNK):
                    plain = decryptor.update(chunk) if decryptor is not None else chunk
                    raw = dec.decompress(plain)
                    if raw:
                        send(sink, raw)
                        if on_bytes:
                            on_bytes(len(raw))
                if decryptor is not None:
                    rest = decryptor.finalize()  # raises on truncation/tampering: the load is rolled back
                    if rest:
                        send(sink, dec.decompress(rest))
                send(sink, dec.finish())
                last = rewriter.finish()
                lines.feed(last)
                sink.write(last)
            except BrokenPipeError:
                pass  # the client died: wait() reports its error
            pipe.wait()
    except ProcessError as exc:
        found = _AT_LINE_RE.search(str(exc))
        where = f" at line {found.group(1)} ({lines.where(int(found.group(1)))})" if found else ""
        raise type(exc)(
            f"loading {name} into {target.name} failed{where}: {exc}",
            returncode=exc.returncode,
            stderr_tail=exc.stderr_tail,
        ) from None


def _database_state(conn: db.Connection, database: str) -> str:
    """'absent', 'empty' or 'nonempty'."""
    exists = db.scalar(
        conn, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", [database]
    )
    if not exists:
        return "absent"
    objects = db.scalar(
        conn,
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s)"
        " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s)"
        " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s)",
        [database] * 3,
    )
    return "nonempty" if objects else "empty"


@dataclass
class RestoreResult:
    backup_id: str
    server: str
    target: str
    databases: dict[str, str]  # source database -> restored as
    locations_used: dict[str, str]  # file -> location
    problems: list[str]
    durations: dict[str, float]
    raw_bytes: int
    warnings: list[str] = field(default_factory=list)


def server_identity(conn: db.Connection) -> dict[str, Any]:
    row = db.query(conn, "SELECT @@hostname AS h, @@port AS p, @@server_id AS s, @@datadir AS d")[0]
    return {
        "hostname": str(row["h"]),
        "port": int(row["p"]),
        "server_id": int(row["s"]),
        "datadir": str(row["d"]),
    }


def restore_backup(
    copies: Sequence[tuple[Location, BackupManifest]],
    target: ServerSpec,
    *,
    databases: Sequence[str] | None = None,
    rename: Mapping[str, str] | None = None,
    overwrite: bool = False,
    allow_source_target: bool = False,
    staging_dir: str | None = None,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    load_timeout: float | None = 24 * 3600,
    keyring: Keyring | None = None,
    reap_leftovers: bool = True,
) -> RestoreResult:
    """Restore one backup (its copies in location preference order) into ``target``.
    Encrypted backups need ``keyring`` holding the key whose id the manifest records.
    ``reap_leftovers``: first remove what killed runs left (:mod:`mysqlops.adapters.reaper`)."""
    say = log or (lambda _m: None)
    if not copies:
        raise ConfigError("no copy of the backup to restore from")
    for _location, copy in copies:
        validate_backup_manifest(copy)  # before anything touches the target
    manifest = copies[0][1]
    check_key(manifest, keyring)
    rename = dict(rename or {})
    wanted = list(databases) if databases else list(manifest.databases)
    unknown = [d for d in wanted if d not in manifest.databases]
    if unknown:
        raise ConfigError(
            f"backup {manifest.backup_id} has no database(s) {unknown}; it holds {list(manifest.databases)}"
        )
    bad_rename = [d for d in rename if d not in wanted]
    if bad_rename:
        raise ConfigError(f"rename names database(s) {bad_rename} that are not being restored ({wanted})")
    targets = {d: rename.get(d, d) for d in wanted}
    if len(set(targets.values())) != len(targets):
        raise ConfigError(f"rename maps two databases to one name: {targets}")
    files = [f for f in manifest.files if f.database in wanted]
    with db.session(target) as conn:
        identity = db.server_identity(conn)
        source_identity = manifest.extra.get("server_identity") or {}
        same = target.name == manifest.server or (
            source_identity
            and all(identity.get(k) == source_identity.get(k) for k in ("hostname", "port", "server_id"))
        )
        if same and not allow_source_target:
            raise RestoreError(
                f"target {target.name!r} is the backup's own source server {manifest.server!r}; restoring there "
                "would overwrite production data. Pass allow_source_target=True if that is really intended"
            )
        states = {d: _database_state(conn, t) for d, t in targets.items()}
        busy = [targets[d] for d, s in states.items() if s == "nonempty"]
        if busy and not overwrite:
            raise RestoreError(
                f"database(s) {busy} already exist on {target.name} and are not empty; pass overwrite=True to "
                "replace them, or rename=... to restore under another name"
            )
        version = db.server_version(conn)
    program = process.require_program(
        ClientTools.for_flavor(version.flavor).mysql, "mysql", package_hint="mariadb-client"
    )
    if reap_leftovers:
        reaper.reap([staging_dir], log=say)
    staging = private_tempdir(staging_dir, "mysqlops-restore-")
    durations: dict[str, float] = {}
    created: list[str] = []
    try:
        t0 = time.monotonic()
        fetched, problems = fetch_backup_files(copies, files, staging, say)
        durations["download"] = round(time.monotonic() - t0, 3)
        refused = [
            f"{q(ff.database)}: {reason}"
            for ff in fetched
            if ff.database is not None and targets[ff.database] != ff.database
            for reason in rename_refusals(
                ff.path,
                manifest.compression,
                {ff.database: targets[ff.database]},
                keyring if manifest.encryption_key_id else None,
            )
        ]
        if refused:
            raise RenameRefused(
                "cannot restore under another name without touching the original database: "
                + "; ".join(refused[:20])
                + (f"; and {len(refused) - 20} more" if len(refused) > 20 else "")
                + ". A rename rewrites CREATE/USE/ALTER DATABASE only; these definitions qualify names "
                "with the original database. Nothing was loaded. Restore under the original name "
                "(on another server), or remove the qualifier from these definitions and back up again"
            )
        total = sum(f.raw_bytes for f in files)
        loaded = [0]
        t1 = time.monotonic()

        def on_bytes(n: int) -> None:
            loaded[0] += n
            if progress:
                progress(loaded[0], total, time.monotonic() - t1)

        with db.session(target) as conn:
            for source_db, state in states.items():
                if state == "nonempty":  # overwrite=True, and every copy passed its sha256 check
                    say(f"dropping existing {targets[source_db]!r} on {target.name} (overwrite=True)")
                    db.execute(conn, f"DROP DATABASE {q(targets[source_db])}")
                if state in ("nonempty", "absent"):
                    created.append(targets[source_db])
        for ff in fetched:
            assert ff.database is not None
            load_file(
                ff.path,
                manifest.compression,
                target,
                program,
                {ff.database: targets[ff.database]} if targets[ff.database] != ff.database else {},
                on_bytes,
                load_timeout,
                keyring if manifest.encryption_key_id else None,
            )
            say(f"loaded {ff.database!r} as {targets[ff.database]!r} from {ff.location}")
        durations["load"] = round(time.monotonic() - t1, 3)
        created.clear()  # success: keep them
        warnings: list[str] = []
        return RestoreResult(
            backup_id=manifest.backup_id,
            server=manifest.server,
            target=target.name,
            databases=targets,
            locations_used={os.path.basename(f.path): f.location for f in fetched},
            problems=problems,
            durations=durations,
            raw_bytes=total,
            warnings=warnings,
        )
    except BaseException:
        if created:
            with contextlib.suppress(Exception), db.session(target) as conn:
                for name in created:
                    db.execute(conn, f"DROP DATABASE IF EXISTS {q(name)}")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- verification
def redump_content_hash(spec: ServerSpec, database: str, program: str) -> str:
    """Dump ``database`` again with the backup's options and return its content hash."""
    scanner = DumpScanner()
    with process.Pipeline(
        [dump_argv(program, database, DumpOptions())],
        credentials=client_option_file(spec),
        stdout=process.PIPE,
        name=f"re-dump of {database}",
        stderr_filter=redact.client_stderr,
    ) as pipe:
        for chunk in iter(lambda: pipe.stdout_pipe.read(CHUNK), b""):
            scanner.feed(chunk)
        scanner.finish()
        pipe.wait()
    stats = scanner.sections.get(database)
    if stats is None:
        raise MysqlopsError(f"re-dump of {database!r} has no section for it")
    return stats.content_sha256


def verify_restored(
    manifest: BackupManifest, target: ServerSpec, names: Mapping[str, str], dump_program: str
) -> tuple[list[Check], list[str]]:
    """Compare the restored databases with what the manifest recorded. Returns checks and the
    lossy-by-format notes."""
    checks: list[Check] = []
    lossy_notes: list[str] = []
    with db.session(target) as conn:
        present = set(db.user_databases(conn))
        for f in manifest.files:
            if f.database is None or f.database not in names:
                continue
            name = names[f.database]
            if name not in present:
                checks.append(Check(f"database {name} present", False, "missing after restore"))
                continue
            checks.append(Check(f"database {name} present", True))
            counts = db.object_counts(conn, name)
            if f.counts is not None:
                diffs = f.counts.differences(counts)
                checks.append(
                    Check(f"{name}: object counts", not diffs, "; ".join(diffs) or str(counts.as_dict()))
                )
            if f.lossy_columns:
                lossy_notes.append(
                    f"{name}: FLOAT columns {', '.join(f.lossy_columns)} are rounded to 6 significant digits by "
                    "the logical dump format (lossy by format); other columns compared exactly"
                )
            if f.tables:
                lossy_by_table: dict[str, list[str]] = {}
                for stat in f.tables:
                    lossy_by_table[stat.table] = list(stat.lossy_columns)
                restored = table_checksums(conn, name, lossy_by_table)
                for stat in f.tables:
                    got = restored.get(stat.table)
                    ok = got is not None and got.rows == stat.rows and got.checksum == stat.checksum
                    detail = (
                        f"rows {stat.rows} checksum {stat.checksum}"
                        if ok
                        else (
                            f"expected rows {stat.rows} checksum {stat.checksum}, got "
                            + (f"rows {got.rows} checksum {got.checksum}" if got else "no table")
                        )
                    )
                    checks.append(Check(f"{name}.{stat.table}: rows and checksum", ok, detail))
            elif f.content_sha256:
                redumped = redump_content_hash(target, name, dump_program) if name == f.database else None
                if redumped is None:
                    checks.append(Check(f"{name}: content hash", True, "skipped: database was renamed"))
                else:
                    ok = redumped == f.content_sha256
                    checks.append(
                        Check(
                            f"{name}: re-dump content hash",
                            ok,
                            f"sha256 {redumped[:16]}… {'equals' if ok else 'differs from'} the backup's {f.content_sha256[:16]}…",
                        )
                    )
    return checks, lossy_notes


def certificate_key(manifest: BackupManifest, location: str, tested_at: datetime) -> str:
    return (
        f"{ids.backup_dir(manifest.server, manifest.backup_id)}/{ids.CERTIFICATE_PREFIX}"
        f"{tested_at:%Y%m%dT%H%M%SZ}-{location}.json"
    )


def make_certificate(
    manifest: BackupManifest,
    location: str,
    checks: Sequence[Check],
    durations: Mapping[str, float],
    target_version: str,
    lossy: Sequence[str],
    tested_at: datetime | None = None,
) -> RestoreCertificate:
    tested_at = tested_at or datetime.now(UTC)
    return RestoreCertificate(
        backup_id=manifest.backup_id,
        server=manifest.server,
        location=location,
        tested_at=tested_at,
        passed=bool(checks) and all(c.passed for c in checks),
        checks=tuple(checks),
        durations=dict(durations),
        source_version=f"{manifest.flavor} {manifest.server_version}",
        target_version=target_version,
        recovery_point_seconds=max(0.0, (tested_at - manifest.finished_at).total_seconds()),
        lossy=tuple(lossy),
        fingerprint=manifest.fingerprint,
    )


# --------------------------------------------------------------------------- restore tests
def restore_test_copy(
    location: Location,
    manifest: BackupManifest,
    *,
    sandbox_dir: str | None = None,
    staging_dir: str | None = None,
    log: Callable[[str], None] | None = None,
    write_certificate: bool = True,
    progress: ProgressFn | None = None,
    keyring: Keyring | None = None,
) -> RestoreCertificate:
    """Restore the copy of ``manifest`` stored at ``location`` into a scratch sandbox server
    of the same flavor and series, verify it against the manifest, measure the time, and
    write a restore certificate next to the manifest at that location. The scratch server
    is always torn down; it lives in ``sandbox_dir`` or, by default, in a new owner-marked
    directory under /tmp (short: unix socket paths), so that if this process is killed the
    next run stops the server and removes its datadir. Starts by removing what killed runs
    left behind (:mod:`mysqlops.adapters.reaper`). A manifest that fails validation (a file
    name that could leave the staging directory, a duplicate, a bad server name or id) is
    refused before anything is started, read or written: no certificate."""
    from mysqlops.adapters import sandbox

    validate_backup_manifest(manifest)
    say = log or (lambda _m: None)
    reaper.reap([staging_dir, sandbox_dir], log=say)
    checks: list[Check] = []
    lossy: list[str] = []
    durations: dict[str, float] = {}
    started = time.monotonic()
    binary = sandbox.find_server_binary()
    series = ".".join(manifest.server_version.split(".")[:2])
    target_version = str(binary.version)
    same_kind = binary.flavor.value == manifest.flavor and binary.version.series == series
    key_ok = True
    if manifest.encryption_key_id:
        try:
            check_key(manifest, keyring)
            checks.append(Check("encryption key available", True, f"key id {manifest.encryption_key_id}"))
        except RestoreError as exc:
            key_ok = False  # no scratch server for a copy that cannot be decrypted
            checks.append(Check("encryption key available", False, str(exc)))
    checks.append(
        Check(
            "scratch server flavor and series",
            same_kind,
            f"backup from {manifest.flavor} {manifest.server_version}, scratch server {binary.version}",
        )
    )
    if same_kind and key_ok:
        name = f"rt-{manifest.backup_id[-6:]}-{location.name}"[:40]
        scratch_root = contextlib.ExitStack()
        root = sandbox_dir or scratch_root.enter_context(private_dir(SCRATCH_PARENT, "mysqlops-rt-"))
        try:
            server = sandbox.start_server(
                root, name, server_id=900 + os.getpid() % 1000, tuned=True, binary=binary, scratch=True
            )
        except BaseException:
            scratch_root.close()
            raise
        try:
            spec = server.spec(name=f"scratch-{name}")
            try:
                result = restore_backup(
                    [(location, manifest)],
                    spec,
                    staging_dir=staging_dir,
                    log=say,
                    progress=progress,
                    keyring=keyring,
                    reap_leftovers=False,
                )
            except (RestoreError, IntegrityError, StorageError) as exc:
                checks.append(Check(f"sha256 of the copy at {location.name}", False, str(exc)))
            except MysqlopsError as exc:
                checks.append(Check(f"sha256 of the copy at {location.name}", True))
                checks.append(Check("load into the scratch server", False, str(exc)))
            else:
                durations.update(result.durations)
                checks.append(
                    Check(
                        f"sha256 of the copy at {location.name}",
                        True,
                        f"{len(result.locations_used)} file(s), {manifest.stored_bytes} bytes",
                    )
                )
                checks.append(Check("load into the scratch server", True, f"{result.raw_bytes} bytes of SQL"))
                t_verify = time.monotonic()
                dump_program = process.require_program(
                    ClientTools.for_flavor(binary.flavor).dump, "mysqldump"
                )
                more, lossy = verify_restored(manifest, spec, result.databases, dump_program)
                checks += more
                durations["verify"] = round(time.monotonic() - t_verify, 3)
        finally:
            try:
                sandbox.stop_server(server)
            finally:
                scratch_root.close()
    durations["total"] = round(time.monotonic() - started, 3)
    cert = make_certificate(manifest, location.name, checks, durations, target_version, lossy)
    if write_certificate:
        key = certificate_key(manifest, location.name, cert.tested_at)
        try:
            Store(location).put_bytes(cert.to_json().encode(), key)
        except MysqlopsError as exc:
            say(f"could not store the restore certificate at {location.name}: {exc}")
    return cert
