"""Encryption keys: made, written and read as text, named by a key id that does not reveal them,
and held in a :class:`Keyring` (the current key first) for readers to pick from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable

from mysqlops.errors import EncryptionError

KEY_SIZE = 32
KEY_ID_LEN = 16
_KEY_ID_DOMAIN = b"mysqlops-key-id"
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


def generate_key() -> bytes:
    """A new random 256-bit key (store it with ``format_key`` in a Secret block)."""
    return os.urandom(KEY_SIZE)


def format_key(key: bytes) -> str:
    """The key as standard base64 text, the form ``parse_key`` reads back."""
    _check_key(key)
    return base64.b64encode(bytes(key)).decode("ascii")


def parse_key(text: str) -> bytes:
    """32 raw key bytes from text: 64 hex digits or base64 (standard or URL-safe, padding optional).

    Whitespace (e.g. a trailing newline from a secret file) is ignored; an optional ``hex:`` or
    ``base64:`` prefix forces the encoding. Errors never repeat the text: it is a secret.
    """
    if not isinstance(text, str):
        raise EncryptionError(
            "an encryption key must be given as text (64 hex digits or base64 of 32 bytes); "
            "raw bytes go straight to Keyring/Encryptor"
        )
    s = "".join(text.split())
    forced: str | None = None
    low = s.lower()
    for prefix in ("hex:", "base64:"):
        if low.startswith(prefix):
            forced, s = prefix[:-1], s[len(prefix) :]
    if not s:
        raise EncryptionError(
            "the encryption key is empty: set it to 32 random bytes as 64 hex digits or base64 "
            "(mysqlops.streams.crypto.format_key(generate_key()) makes one)"
        )
    if forced == "hex" or (forced is None and len(s) % 2 == 0 and _HEX_RE.fullmatch(s)):
        try:
            key = bytes.fromhex(s)
        except ValueError:
            raise EncryptionError(
                "the encryption key is not valid hex: expected 64 hex digits (32 bytes)"
            ) from None
        encoding = "hex"
    else:
        key = _b64decode(s)
        encoding = "base64"
    if len(key) != KEY_SIZE:
        raise EncryptionError(
            f"the encryption key decodes ({encoding}) to {len(key)} bytes; it must be exactly "
            f"{KEY_SIZE} bytes (256 bits): 64 hex digits or 44 base64 characters"
        )
    return key


def _b64decode(s: str) -> bytes:
    padded = s + "=" * (-len(s) % 4)
    try:
        if "-" in s or "_" in s:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(
            "the encryption key is neither 64 hex digits nor valid base64; "
            "set it to 32 random bytes encoded as hex or base64"
        ) from None


def key_id(key: bytes) -> str:
    """Public name of a key: first 16 hex digits of sha256(b"mysqlops-key-id" + key)."""
    _check_key(key)
    return hashlib.sha256(_KEY_ID_DOMAIN + bytes(key)).hexdigest()[:KEY_ID_LEN]


def _check_key(key: object) -> None:
    if not isinstance(key, bytes | bytearray):
        raise EncryptionError(
            f"an encryption key must be {KEY_SIZE} raw bytes, not {type(key).__name__}; "
            "use parse_key() for hex/base64 text"
        )
    if len(key) != KEY_SIZE:
        raise EncryptionError(
            f"an encryption key must be exactly {KEY_SIZE} bytes (256 bits), got {len(key)}; "
            "use parse_key() for hex/base64 text"
        )


class Keyring:
    """Keys by key id: new files use ``current``; reading picks the key named in the header.

    Rotation: ``Keyring(new_key, old=[previous_key, ...])``; drop an old key only after every
    file encrypted with it has expired.
    """

    def __init__(self, current: bytes, old: Iterable[bytes] = ()) -> None:
        _check_key(current)
        self._current_id = key_id(current)
        self._keys: dict[str, bytes] = {self._current_id: bytes(current)}
        for k in old:
            _check_key(k)
            self._keys.setdefault(key_id(k), bytes(k))

    @classmethod
    def from_text(cls, current: str, old: Iterable[str] = ()) -> Keyring:
        """A keyring from hex/base64 key texts (as held in Secret blocks)."""
        return cls(parse_key(current), [parse_key(t) for t in old])

    @property
    def current_id(self) -> str:
        return self._current_id

    @property
    def current(self) -> bytes:
        return self._keys[self._current_id]

    @property
    def ids(self) -> tuple[str, ...]:
        """All key ids, the current one first."""
        return tuple(self._keys)

    def get(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except (KeyError, TypeError):
            raise EncryptionError(
                f"no key with id {key_id!r} in the keyring (it holds {', '.join(self._keys)}): "
                "this file was encrypted with another key; add that key to the keyring's old keys"
            ) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(current_id={self._current_id!r}, ids={self.ids!r})"
