"""Streaming authenticated encryption of backup and binlog files (AES-256-GCM, chunked).

A pipeline stage: ``Encryptor.update(bytes) -> bytes`` / ``finalize()``, and the reverse with
``Decryptor``. Memory stays bounded by one chunk plus the header whatever the stream length, and
``update()`` accepts any split of the input (one byte at a time works).

File format, version 1 (all integers big-endian)::

    offset  size  field
    0       8     magic  b"MYOPSENC"
    8       1     format version = 1
    9       4     chunk size C in plaintext bytes (u32, 1 .. 64 MiB; default 1 MiB)
    13      1     key id length n (1 .. 64)
    14      n     key id, lowercase hex ASCII (16 chars for keys made here)
    14+n    16    file salt, random per file
    ---- header ends (46 bytes with a 16-char key id); then the chunks:
    chunk 0, chunk 1, ..., chunk N       each = AES-GCM ciphertext || 16-byte tag

* Every chunk except the last holds exactly C plaintext bytes (C + 16 stored bytes). The last
  chunk is the *final* chunk and holds 0 .. C-1 plaintext bytes, so it is empty when the stream
  length is a multiple of C. There is always exactly one final chunk; its size (< C + 16) is what
  tells a reader where the stream ends, so a stream that stops on a chunk boundary has lost its
  final chunk and is reported as truncated.
* Key: ``key_id(key)`` = first 16 hex digits of ``sha256(b"mysqlops-key-id" + key)``. It names
  the key without revealing it, so a reader can pick the right key from a ``Keyring``.
* Chunk key: ``subkey = HKDF-SHA256(ikm=key, salt=file salt, info=b"mysqlops-enc v1 chunk key")``,
  32 bytes, one per file. Nonce of chunk i = i as a 96-bit big-endian counter.
* Associated data of chunk i = ``header bytes || i (u64) || final flag (u8: 1 on the final chunk,
  else 0)``.

Why a per-file subkey and counter nonces rather than ``random 8-byte prefix || counter`` under the
long-term key: with random 64-bit prefixes a nonce collision (which breaks GCM's confidentiality
and authenticity for that key) becomes likely long before the key is retired: the NIST 2^-32
bound is reached after only ~2^16 files, and binlogs are archived every few minutes on many
servers for years. With a 128-bit random salt the subkeys collide with probability ~n^2/2^129,
the long-term key never encrypts anything itself (no per-key GCM usage limit to track), and each
subkey sees at most 2^64 counter nonces, each used once.

What the associated data detects: the header (magic, version, chunk size, key id, salt) is bound
into every chunk, so any header change fails authentication of chunk 0 (a changed salt or key id
also changes the subkey); the chunk index detects reordered, duplicated or dropped chunks and
chunks spliced in from another file (different subkey); the final flag detects truncation on a
chunk boundary (a non-final chunk cannot pass as final) and data appended after the end.

Reading: until chunk 0 is authenticated the header is untrusted, so the chunk size is capped
(64 MiB) to bound memory. ``Decryptor.update`` releases the plaintext of each chunk as soon as it
is authenticated, but the *stream* is only proven complete when ``finalize()`` returns: a restore
must treat its output as provisional until then (and discard it if ``finalize`` raises).

Errors are ``EncryptionError``; messages name key ids, never key material. Keys, key ids and the
:class:`Keyring` are in :mod:`mysqlops.streams.keys` (also importable from here).

Over ~500 lines on purpose: one concept, the version-1 file format, with its one writer and its
readers (whole stream, ranged chunks): split apart, the format would be read in three places.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mysqlops.errors import EncryptionError
from mysqlops.streams.keys import (
    KEY_ID_LEN,
    KEY_SIZE,
    Keyring,
    _check_key,
    format_key,
    generate_key,
    key_id,
    parse_key,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "HEADER_MAX_SIZE",
    "KEY_SIZE",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "TAG_SIZE",
    "Decryptor",
    "Encryptor",
    "Keyring",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_stream",
    "format_key",
    "generate_key",
    "key_id",
    "parse_key",
    "peek_key_id",
]

MAGIC = b"MYOPSENC"
FORMAT_VERSION = 1
SALT_SIZE = 16
TAG_SIZE = 16
NONCE_SIZE = 12
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
MAX_KEY_ID_LEN = 64

_FIXED = struct.Struct(">8sBIB")  # magic, version, chunk size, key id length
HEADER_MAX_SIZE = _FIXED.size + MAX_KEY_ID_LEN + SALT_SIZE
"""Bytes to read from the start of a file so that ``peek_key_id`` always has the full header."""

_HKDF_INFO = b"mysqlops-enc v1 chunk key"
_MAX_CHUNKS = 1 << 64
_KEY_ID_RE = re.compile(rb"[0-9a-f]{1,64}")


# --------------------------------------------------------------------------- keys


# --------------------------------------------------------------------------- format helpers


@dataclass(frozen=True)
class _Header:
    raw: bytes
    chunk_size: int
    key_id: str
    salt: bytes


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
        raise EncryptionError(f"chunk size must be an int, not {type(chunk_size).__name__}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise EncryptionError(f"chunk size must be 1 .. {MAX_CHUNK_SIZE} bytes, got {chunk_size}")


def _pack_header(chunk_size: int, kid: str, salt: bytes) -> bytes:
    kid_b = kid.encode("ascii")
    return _FIXED.pack(MAGIC, FORMAT_VERSION, chunk_size, len(kid_b)) + kid_b + salt


def _parse_header(buf: bytes | bytearray) -> _Header | None:
    """The header at the start of ``buf``; None if more bytes are needed. Raises if invalid."""
    n = min(len(buf), len(MAGIC))
    if bytes(buf[:n]) != MAGIC[:n]:
        raise EncryptionError(
            "not a mysqlops encrypted stream (bad magic): the file is not encrypted, "
            "or is not a mysqlops file"
        )
    if len(buf) < _FIXED.size:
        return None
    _, version, chunk_size, kid_len = _FIXED.unpack_from(buf)
    if version != FORMAT_VERSION:
        raise EncryptionError(
            f"unsupported encryption format version {version} (this mysqlops reads version "
            f"{FORMAT_VERSION}): upgrade mysqlops"
        )
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise EncryptionError(f"corrupt encryption header: chunk size {chunk_size} out of range")
    if not 1 <= kid_len <= MAX_KEY_ID_LEN:
        raise EncryptionError(f"corrupt encryption header: key id length {kid_len} out of range")
    end = _FIXED.size + kid_len + SALT_SIZE
    if len(buf) < end:
        return None
    kid_b = bytes(buf[_FIXED.size : _FIXED.size + kid_len])
    if not _KEY_ID_RE.fullmatch(kid_b):
        raise EncryptionError("corrupt encryption header: key id is not lowercase hex")
    return _Header(
        raw=bytes(buf[:end]),
        chunk_size=chunk_size,
        key_id=kid_b.decode("ascii"),
        salt=bytes(buf[end - SALT_SIZE : end]),
    )


def peek_key_id(header_bytes: bytes) -> str:
    """The key id of an encrypted file, from its first bytes (read ``HEADER_MAX_SIZE`` to be safe).

    Unauthenticated: it says which key to try, nothing more.
    """
    header = _parse_header(header_bytes)
    if header is None:
        raise EncryptionError(
            f"encryption header incomplete: got {len(header_bytes)} bytes; "
            f"pass the first {HEADER_MAX_SIZE} bytes of the file"
        )
    return header.key_id


def ciphertext_size(
    plaintext_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE, key_id_len: int = KEY_ID_LEN
) -> int:
    """Exact encrypted size of a plaintext of ``plaintext_size`` bytes."""
    _check_chunk_size(chunk_size)
    if plaintext_size < 0:
        raise EncryptionError("plaintext size cannot be negative")
    chunks = plaintext_size // chunk_size + 1  # the final chunk is always present
    return _FIXED.size + key_id_len + SALT_SIZE + plaintext_size + chunks * TAG_SIZE


def _derive_subkey(key: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=_HKDF_INFO).derive(bytes(key))


def _nonce(index: int) -> bytes:
    return index.to_bytes(NONCE_SIZE, "big")


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _as_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


# --------------------------------------------------------------------------- streaming


class Encryptor:
    """Streaming encryption: ``update(plaintext) -> ciphertext``, then ``finalize()`` once.

    The header comes out with the first output. At most ``chunk_size - 1`` plaintext bytes are
    held between calls.
    """

    def __init__(self, key: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_key(key)
        _check_chunk_size(chunk_size)
        self.key_id: str = key_id(key)
        self.chunk_size = chunk_size
        salt = os.urandom(SALT_SIZE)
        self.header: bytes = _pack_header(chunk_size, self.key_id, salt)
        self._aead = AESGCM(_derive_subkey(key, salt))
        self._buf = bytearray()
        self._index = 0
        self._header_sent = False
        self._finished = False
        self.plaintext_bytes = 0
        self.ciphertext_bytes = 0

    def _seal(self, chunk: bytes | bytearray | memoryview, final: bool) -> bytes:
        if self._index >= _MAX_CHUNKS:
            raise EncryptionError("stream too long: chunk counter exhausted; use a larger chunk size")
        out = self._aead.encrypt(_nonce(self._index), chunk, _aad(self.header, self._index, final))
        self._index += 1
        return out

    def _start(self, out: list[bytes]) -> None:
        if self._finished:
            raise EncryptionError("Encryptor already finalized: create a new one per file")
        if not self._header_sent:
            out.append(self.header)
            self._header_sent = True

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        out: list[bytes] = []
        self._start(out)
        view = _as_view(data)
        self.plaintext_bytes += len(view)
        cs = self.chunk_size
        buf = self._buf
        if buf:
            take = min(len(view), cs - len(buf))
            buf += view[:take]
            view = view[take:]
            if len(buf) < cs:
                return self._emit(out)
            out.append(self._seal(buf, final=False))
            buf.clear()
        pos, end = 0, len(view)
        while end - pos >= cs:
            out.append(self._seal(view[pos : pos + cs], final=False))
            pos += cs
        if pos < end:
            buf += view[pos:]
        return self._emit(out)

    def finalize(self) -> bytes:
        out: list[bytes] = []
        self._start(out)
        out.append(self._seal(self._buf, final=True))
        self._buf = bytearray()
        self._finished = True
        return self._emit(out)

    def _emit(self, out: list[bytes]) -> bytes:
        result = out[0] if len(out) == 1 else b"".join(out)
        self.ciphertext_bytes += len(result)
        return result


class Decryptor:
    """Streaming decryption: ``update(ciphertext) -> plaintext``, then ``finalize()`` once.

    Each chunk's plaintext is released once that chunk authenticates; the stream as a whole is
    only proven complete and untruncated when ``finalize()`` returns. Any failure is final: later
    calls raise again.
    """

    def __init__(self, keyring: Keyring) -> None:
        if not isinstance(keyring, Keyring):
            raise EncryptionError(f"Decryptor needs a Keyring, not {type(keyring).__name__}")
        self._keyring = keyring
        self._header: _Header | None = None
        self._aead: AESGCM | None = None
        self._buf = bytearray()
        self._index = 0
        self._finished = False
        self._error: EncryptionError | None = None
        self.plaintext_bytes = 0
        self.ciphertext_bytes = 0

    @property
    def key_id(self) -> str | None:
        """Key id from the header; None until the header has been read."""
        return self._header.key_id if self._header else None

    @property
    def chunk_size(self) -> int | None:
        return self._header.chunk_size if self._header else None

    def _fail(self, message: str) -> EncryptionError:
        self._error = EncryptionError(message)
        return self._error

    def _check_state(self) -> None:
        if self._error is not None:
            raise EncryptionError(f"Decryptor failed earlier: {self._error}")
        if self._finished:
            raise EncryptionError("Decryptor already finalized: create a new one per file")

    def _read_header(self, view: memoryview) -> memoryview | None:
        """Consume header bytes from ``view``; the rest of ``view`` once complete, else None."""
        buf = self._buf
        while True:
            try:
                header = _parse_header(buf)
            except EncryptionError as exc:
                raise self._fail(str(exc)) from None
            if header is not None:
                break
            if not view:
                return None
            # Never read past the header: take only what the next parse step can need.
            need = _FIXED.size if len(buf) < _FIXED.size else _FIXED.size + buf[_FIXED.size - 1] + SALT_SIZE
            take = min(need - len(buf), len(view))
            buf += view[:take]
            view = view[take:]
        try:
            key = self._keyring.get(header.key_id)
        except EncryptionError as exc:
            raise self._fail(str(exc)) from None
        self._header = header
        self._aead = AESGCM(_derive_subkey(key, header.salt))
        buf.clear()
        return view

    def _open(self, chunk: bytes | bytearray | memoryview, final: bool) -> bytes:
        assert self._aead is not None and self._header is not None
        try:
            out = self._aead.decrypt(_nonce(self._index), chunk, _aad(self._header.raw, self._index, final))
        except InvalidTag:
            what = "final chunk" if final else "chunk"
            raise self._fail(
                f"authentication failed at {what} {self._index} (key id {self._header.key_id}): the "
                "data is corrupted, tampered with, truncated, or its chunks were reordered or duplicated"
            ) from None
        self._index += 1
        return out

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        self._check_state()
        view = _as_view(data)
        self.ciphertext_bytes += len(view)
        if self._header is None:
            rest = self._read_header(view)
            if rest is None:
                return b""
            view = rest
        assert self._header is not None
        record = self._header.chunk_size + TAG_SIZE
        out: list[bytes] = []
        buf = self._buf
        if buf:
            take = min(len(view), record - len(buf))
            buf += view[:take]
            view = view[take:]
            if len(buf) < record:
                return b""
            # A full-size record is never final (the final chunk is always shorter).
            out.append(self._open(buf, final=False))
            buf.clear()
        pos, end = 0, len(view)
        while end - pos >= record:
            out.append(self._open(view[pos : pos + record], final=False))
            pos += record
        if pos < end:
            buf += view[pos:]
        result = out[0] if len(out) == 1 else b"".join(out)
        self.plaintext_bytes += len(result)
        return result

    def finalize(self) -> bytes:
        self._check_state()
        if self._header is None:
            if not self._buf:
                raise self._fail("truncated encrypted stream: it is empty (no header)")
            raise self._fail(
                f"truncated encrypted stream: it ends inside the header ({len(self._buf)} bytes)"
            )
        rest = len(self._buf)
        if rest == 0:
            raise self._fail(
                f"truncated encrypted stream: it ends after chunk {self._index - 1} without its final "
                "chunk (a chunk boundary was cut)"
            )
        if rest < TAG_SIZE:
            raise self._fail(
                f"truncated encrypted stream: the final chunk {self._index} has only {rest} of at least "
                f"{TAG_SIZE} bytes"
            )
        out = self._open(self._buf, final=True)
        self._buf = bytearray()
        self._finished = True
        self.plaintext_bytes += len(out)
        return out


# --------------------------------------------------------------------------- helpers


def encrypt_stream(
    key: bytes, chunks: Iterable[bytes], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes]:
    """Pipeline stage: plaintext chunks in, ciphertext chunks out (empty outputs skipped)."""
    enc = Encryptor(key, chunk_size)
    for chunk in chunks:
        out = enc.update(chunk)
        if out:
            yield out
    yield enc.finalize()


def decrypt_stream(keyring: Keyring, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pipeline stage: ciphertext chunks in, plaintext chunks out.

    Raises ``EncryptionError`` at the end if the stream is truncated; output is provisional until
    the generator is exhausted without an error.
    """
    dec = Decryptor(keyring)
    for chunk in chunks:
        out = dec.update(chunk)
        if out:
            yield out
    out = dec.finalize()
    if out:
        yield out


def encrypt_bytes(key: bytes, data: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """Encrypt a whole (small) byte string, e.g. a manifest."""
    enc = Encryptor(key, chunk_size)
    return enc.update(data) + enc.finalize()


def decrypt_bytes(keyring: Keyring, data: bytes) -> bytes:
    """Decrypt and fully authenticate a whole (small) encrypted byte string."""
    dec = Decryptor(keyring)
    return dec.update(data) + dec.finalize()


# --------------------------------------------------------------------------- random access


@dataclass(frozen=True)
class ChunkRange:
    """Which stored bytes of an encrypted file hold plaintext bytes ``[start, end)``.

    ``stored_start``/``stored_end``: the byte range to read; ``first``/``last``: the chunk
    indexes it covers; ``skip``: plaintext bytes to drop before ``start`` in the first chunk."""

    stored_start: int
    stored_end: int
    first: int
    last: int
    skip: int


def parse_header(data: bytes) -> tuple[int, int]:
    """``(header length, chunk size)`` of an encrypted file from its first bytes (read
    ``HEADER_MAX_SIZE``). Unauthenticated: authenticating any chunk proves it."""
    header = _parse_header(data)
    if header is None:
        raise EncryptionError(
            f"encryption header incomplete: got {len(data)} bytes; pass the first {HEADER_MAX_SIZE} bytes"
        )
    return len(header.raw), header.chunk_size


def chunk_range(header_size: int, chunk_size: int, stored_size: int, start: int, end: int) -> ChunkRange:
    """The stored range of plaintext ``[start, end)`` in a file of ``stored_size`` bytes."""
    if not 0 <= start < end:
        raise EncryptionError(f"bad plaintext range {start}..{end}")
    record = chunk_size + TAG_SIZE
    first, last = start // chunk_size, (end - 1) // chunk_size
    return ChunkRange(
        stored_start=header_size + first * record,
        stored_end=min(header_size + (last + 1) * record, stored_size),
        first=first,
        last=last,
        skip=start - first * chunk_size,
    )


def final_chunk_index(header_size: int, chunk_size: int, stored_size: int) -> int:
    """Index of the final chunk of an encrypted file of ``stored_size`` bytes."""
    return (stored_size - header_size) // (chunk_size + TAG_SIZE)


def decrypt_chunks(keyring: Keyring, header: bytes, first: int, data: bytes, final_index: int) -> bytes:
    """Authenticate and decrypt whole chunks ``first, first + 1, ...`` read from an encrypted
    file (``header``: its first bytes; ``final_index``: :func:`final_chunk_index`). Raises
    ``EncryptionError`` naming the chunk that fails."""
    parsed = _parse_header(header)
    if parsed is None:
        raise EncryptionError("encryption header incomplete")
    aead = AESGCM(_derive_subkey(keyring.get(parsed.key_id), parsed.salt))
    record = parsed.chunk_size + TAG_SIZE
    out: list[bytes] = []
    view = memoryview(data)
    index = first
    for pos in range(0, len(view), record):
        piece = view[pos : pos + record]
        final = index == final_index
        if not final and len(piece) != record:
            raise EncryptionError(f"chunk {index} is truncated ({len(piece)} of {record} bytes)")
        try:
            out.append(aead.decrypt(_nonce(index), piece, _aad(parsed.raw, index, final)))
        except InvalidTag:
            raise EncryptionError(
                f"authentication failed at chunk {index} (key id {parsed.key_id}): the data is corrupted or tampered with"
            ) from None
        index += 1
    return b"".join(out)
