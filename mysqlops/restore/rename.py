"""Restoring a database under another name (:class:`RenameRewriter`, refusals), and a table
under another name (:class:`TableRenamer`, for single-table restores)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mysqlops.errors import (
    ConfigError,
    RestoreError,
)
from mysqlops.sql.quoting import quote_identifier as q
from mysqlops.streams.checksum import CHUNK, iter_chunks
from mysqlops.streams.compression import codec_from_label
from mysqlops.streams.crypto import Decryptor, Keyring

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


# --------------------------------------------------------------------------- one table under another name
_CONSTRAINT_RE = re.compile(rb"  CONSTRAINT `((?:[^`]|``){1,256})` ")


class TableRenamer:
    """Streaming rewrite of one table's sections to another table name: only the statement
    heads mysqldump writes for that table (``DROP TABLE IF EXISTS``, ``CREATE TABLE``,
    ``LOCK TABLES``, ``ALTER TABLE ... KEYS``, ``INSERT INTO``), the section marker comments
    and its constraint names, at line starts (data never holds a raw newline). Row data passes
    through untouched."""

    _NEED = 1024

    def __init__(self, old: str, new: str) -> None:
        qo, qn = q(old).encode(), q(new).encode()
        heads = (
            b"-- Table structure for table ",  # the markers the parallel loader names a table by
            b"-- Dumping data for table ",
            b"DROP TABLE IF EXISTS ",
            b"CREATE TABLE ",
            b"LOCK TABLES ",
            b"/*!40000 ALTER TABLE ",
            b"INSERT INTO ",
        )
        self._rules = [(h + qo, h + qn) for h in heads]
        self._old, self._new = old.encode(), new.encode()
        self._carry = b""
        self._at_line = True
        self.created = 0  # CREATE TABLE statements rewritten

    def _constraint(self, name: bytes) -> bytes:
        plain = name.replace(b"``", b"`")
        new = self._new + plain[len(self._old) :] if plain.startswith(self._old) else self._new + b"_" + plain
        return new.decode("utf-8", "replace")[:64].encode()

    def feed(self, data: bytes) -> bytes:
        buf = self._carry + data if self._carry else data
        self._carry = b""
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while pos < n:
            if self._at_line:
                if n - pos < self._NEED and buf.find(b"\n", pos) < 0:
                    self._carry = buf[pos:]
                    break
                self._at_line = False
                for old, new in self._rules:
                    if buf.startswith(old, pos):
                        out.append(new)
                        pos += len(old)
                        if new.startswith(b"CREATE TABLE "):
                            self.created += 1
                        break
                else:
                    m = _CONSTRAINT_RE.match(buf, pos)
                    if m:
                        out.append(
                            b"  CONSTRAINT " + q(self._constraint(m.group(1)).decode()).encode() + b" "
                        )
                        pos = m.end()
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                out.append(buf[pos:])
                break
            out.append(buf[pos : nl + 1])
            pos = nl + 1
            self._at_line = True
        return b"".join(out)

    def finish(self) -> bytes:
        carry, self._carry = self._carry, b""
        if carry:
            self._carry, self._at_line = b"", True
            return self._finish_line(carry)
        return b""

    def _finish_line(self, carry: bytes) -> bytes:
        saved = self._NEED
        self._NEED = 0  # decide on what is there
        try:
            return self.feed(carry)
        finally:
            self._NEED = saved
