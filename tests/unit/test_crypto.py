"""Streaming authenticated encryption: round trips, splits, tampering, truncation, keys."""

from __future__ import annotations

import base64
import itertools
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysqlops.errors import EncryptionError, MysqlopsError
from mysqlops.streams import crypto
from mysqlops.streams.crypto import (
    MAGIC,
    TAG_SIZE,
    Decryptor,
    Encryptor,
    Keyring,
    ciphertext_size,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    format_key,
    generate_key,
    key_id,
    parse_key,
    peek_key_id,
)

KEY = bytes(range(32))
OTHER = bytes(range(100, 132))
CS = 16  # small chunk size so that boundaries are cheap to test
RECORD = CS + TAG_SIZE
HEADER_LEN = 8 + 1 + 4 + 1 + 16 + 16


def plaintext(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


def enc(data: bytes, key: bytes = KEY, chunk_size: int = CS) -> bytes:
    return encrypt_bytes(key, data, chunk_size)


def dec(data: bytes, *keys: bytes) -> bytes:
    ks = keys or (KEY,)
    return decrypt_bytes(Keyring(ks[0], ks[1:]), data)


def split_records(ct: bytes) -> tuple[bytes, list[bytes]]:
    """Header and the stored chunks (the last one is the short final chunk)."""
    header, body = ct[:HEADER_LEN], ct[HEADER_LEN:]
    return header, [body[i : i + RECORD] for i in range(0, len(body), RECORD)]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("n", [0, 1, CS - 1, CS, CS + 1, 2 * CS, 5 * CS + 3, 7 * CS])
def test_round_trip_sizes(n: int) -> None:
    data = plaintext(n)
    ct = enc(data)
    assert len(ct) == ciphertext_size(n, CS)
    assert len(ct) == HEADER_LEN + n + (n // CS + 1) * TAG_SIZE
    assert dec(ct) == data


def test_round_trip_default_chunk_size_multi_chunk() -> None:
    data = plaintext(1000) * 2200  # ~2.1 MiB: three 1 MiB chunks
    ct = encrypt_bytes(KEY, data)
    assert len(ct) == ciphertext_size(len(data))
    assert decrypt_bytes(Keyring(KEY), ct) == data


def test_final_chunk_is_empty_when_length_is_multiple_of_chunk_size() -> None:
    _, records = split_records(enc(plaintext(3 * CS)))
    assert [len(r) for r in records] == [RECORD, RECORD, RECORD, TAG_SIZE]


def test_header_layout() -> None:
    ct = enc(b"x")
    magic, version, chunk_size, kid_len = struct.unpack_from(">8sBIB", ct)
    assert (magic, version, chunk_size, kid_len) == (MAGIC, 1, CS, 16)
    assert ct[14:30].decode() == key_id(KEY)
    assert peek_key_id(ct[:HEADER_LEN]) == key_id(KEY)
    assert peek_key_id(ct) == key_id(KEY)


def test_each_file_gets_a_fresh_salt() -> None:
    a, b = enc(b"same"), enc(b"same")
    assert a[:30] == b[:30] and a[30:HEADER_LEN] != b[30:HEADER_LEN]
    assert a[HEADER_LEN:] != b[HEADER_LEN:]


def test_canary_and_key_do_not_appear_in_ciphertext() -> None:
    canary = b"CANARY-7f3a-secret-row-"
    data = canary * 50
    for chunk_size in (CS, 64, 1 << 20):
        ct = enc(data, chunk_size=chunk_size)
        assert canary not in ct
        assert canary[:8] not in ct
        assert KEY not in ct
        assert KEY.hex().encode() not in ct
        assert dec(ct) == data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=5 * CS + 5),
    chunk_size=st.sampled_from([1, 3, CS, 33]),
    cuts_in=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    cuts_out=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
)
def test_random_split_points(data: bytes, chunk_size: int, cuts_in: list[int], cuts_out: list[int]) -> None:
    e = Encryptor(KEY, chunk_size)
    ct = b"".join(e.update(p) for p in _split(data, cuts_in)) + e.finalize()
    assert len(ct) == ciphertext_size(len(data), chunk_size)
    d = Decryptor(Keyring(KEY))
    pt = b"".join(d.update(p) for p in _split(ct, cuts_out)) + d.finalize()
    assert pt == data
    assert d.key_id == key_id(KEY)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_one_byte_at_a_time_both_ways() -> None:
    data = plaintext(3 * CS + 5)
    e = Encryptor(KEY, CS)
    parts = [e.update(data[i : i + 1]) for i in range(len(data))]
    parts.append(e.finalize())
    ct = b"".join(parts)
    d = Decryptor(Keyring(KEY))
    out = b"".join(d.update(ct[i : i + 1]) for i in range(len(ct))) + d.finalize()
    assert out == data


def test_split_input_gives_same_ciphertext_shape_as_whole_input() -> None:
    data = plaintext(4 * CS + 2)
    e = Encryptor(KEY, CS)
    pieces = [e.update(data[:5]), e.update(data[5:40]), e.update(data[40:]), e.finalize()]
    # header with the first output; then exactly one record per complete chunk
    assert pieces[0][:HEADER_LEN] == e.header
    assert [len(p) for p in pieces] == [HEADER_LEN, RECORD * 2, RECORD * 2, 2 + TAG_SIZE]


def test_accepts_bytearray_and_memoryview() -> None:
    data = plaintext(50)
    e = Encryptor(KEY, CS)
    ct = e.update(bytearray(data[:20])) + e.update(memoryview(data)[20:]) + e.finalize()
    d = Decryptor(Keyring(KEY))
    assert d.update(memoryview(ct)) + d.finalize() == data


def test_stream_helpers() -> None:
    data = plaintext(10 * CS + 1)
    pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
    ct_pieces = list(encrypt_stream(KEY, pieces, CS))
    assert b"" not in ct_pieces
    assert b"".join(decrypt_stream(Keyring(KEY), ct_pieces)) == data


def test_memory_stays_bounded_by_the_chunk_size() -> None:
    chunk_size = 64 * 1024
    block = plaintext(50_000)
    total = 16 * 1024 * 1024

    def source():
        sent = 0
        while sent < total:
            yield block
            sent += len(block)

    tracemalloc.start()
    try:
        n = 0
        for out in decrypt_stream(Keyring(KEY), encrypt_stream(KEY, source(), chunk_size)):
            n += len(out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n >= total
    assert peak < 1024 * 1024, peak  # a few chunks, not the 16 MiB stream


def test_internal_buffers_never_reach_a_chunk() -> None:
    e = Encryptor(KEY, CS)
    d = Decryptor(Keyring(KEY))
    sent, got = b"", b""
    for size in (1, 5, CS - 1, CS, 3 * CS + 1, 2):
        sent += plaintext(size)
        got += d.update(e.update(plaintext(size)))
        assert len(e._buf) < CS
        assert len(d._buf) < RECORD
        assert len(sent) - len(got) < CS  # output lags the input by less than one chunk
    got += d.update(e.finalize())
    assert got + d.finalize() == sent


# --------------------------------------------------------------------------- tampering


def test_truncation_at_every_length_is_detected() -> None:
    ct = enc(plaintext(3 * CS + 5))
    for cut in range(len(ct)):
        with pytest.raises(EncryptionError):
            dec(ct[:cut])


@pytest.mark.parametrize("n", [CS - 1, CS, 3 * CS, 3 * CS + 5])
def test_truncation_at_chunk_boundaries_says_truncated(n: int) -> None:
    ct = enc(plaintext(n))
    header, records = split_records(ct)
    for keep in range(len(records)):  # drop the final chunk, and everything after any boundary
        cut = header + b"".join(records[:keep])
        with pytest.raises(EncryptionError, match="truncated"):
            dec(cut)


def test_truncated_inside_header_and_empty() -> None:
    ct = enc(b"abc")
    with pytest.raises(EncryptionError, match=r"truncated.*empty"):
        dec(b"")
    with pytest.raises(EncryptionError, match=r"truncated.*header"):
        dec(ct[:20])


def test_reordered_chunks_detected() -> None:
    header, r = split_records(enc(plaintext(3 * CS + 5)))
    with pytest.raises(EncryptionError, match="authentication failed"):
        dec(header + r[1] + r[0] + r[2] + r[3])


def test_duplicated_chunk_detected() -> None:
    header, r = split_records(enc(plaintext(3 * CS + 5)))
    with pytest.raises(EncryptionError, match="authentication failed"):
        dec(header + r[0] + r[1] + r[1] + r[2] + r[3])


def test_dropped_middle_chunk_detected() -> None:
    header, r = split_records(enc(plaintext(3 * CS + 5)))
    with pytest.raises(EncryptionError, match="authentication failed"):
        dec(header + r[0] + r[2] + r[3])


def test_full_chunk_cannot_pass_as_final_and_final_cannot_pass_as_full() -> None:
    # Same plaintext length multiple of CS: dropping the empty final chunk leaves a full last chunk.
    header, r = split_records(enc(plaintext(2 * CS)))
    with pytest.raises(EncryptionError, match="truncated"):
        dec(header + r[0] + r[1])
    # The final chunk followed by more data is no longer final.
    header, r = split_records(enc(plaintext(CS + 5)))
    with pytest.raises(EncryptionError):
        dec(header + r[0] + r[1] + r[1])


def test_chunks_spliced_from_another_file_with_same_key_detected() -> None:
    data = plaintext(3 * CS + 5)
    h1, r1 = split_records(enc(data))
    _, r2 = split_records(enc(data))
    with pytest.raises(EncryptionError, match="authentication failed"):
        dec(h1 + r1[0] + r2[1] + r1[2] + r1[3])


@pytest.mark.parametrize("garbage", [b"\x00", b"x" * TAG_SIZE, b"y" * (RECORD + 3)])
def test_trailing_garbage_detected(garbage: bytes) -> None:
    ct = enc(plaintext(2 * CS + 3))
    with pytest.raises(EncryptionError):
        dec(ct + garbage)


def test_appended_second_stream_detected() -> None:
    with pytest.raises(EncryptionError):
        dec(enc(b"first") + enc(b"second"))


def test_flipped_bit_anywhere_detected() -> None:
    ct = enc(plaintext(2 * CS + 7))
    for pos in range(len(ct)):
        for bit in (0x01, 0x80):
            bad = bytearray(ct)
            bad[pos] ^= bit
            with pytest.raises(EncryptionError):
                dec(bytes(bad))


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"X", "bad magic"),
        (8, b"\x02", "unsupported encryption format version 2"),
        (9, struct.pack(">I", 0), "chunk size 0 out of range"),
        (9, struct.pack(">I", 1 << 30), "out of range"),
        (9, struct.pack(">I", CS * 2), "authentication failed"),
        (13, b"\x00", "key id length 0"),
        (14, b"G", "not lowercase hex"),
        (HEADER_LEN - 1, b"\xff", "authentication failed"),
    ],
)
def test_header_tampering_detected(offset: int, value: bytes, message: str) -> None:
    ct = bytearray(enc(plaintext(3 * CS)))
    if bytes(ct[offset : offset + len(value)]) == value:
        value = bytes(b ^ 1 for b in value)
    ct[offset : offset + len(value)] = value
    with pytest.raises(EncryptionError, match=message):
        dec(bytes(ct))


def test_header_bad_magic_fails_before_reading_more() -> None:
    d = Decryptor(Keyring(KEY))
    with pytest.raises(EncryptionError, match="not a mysqlops encrypted stream"):
        d.update(b"PK\x03")
    with pytest.raises(EncryptionError, match="failed earlier"):
        d.update(b"more")


def test_plain_zstd_file_is_rejected_as_not_encrypted() -> None:
    with pytest.raises(EncryptionError, match="not a mysqlops encrypted stream"):
        dec(b"\x28\xb5\x2f\xfd" + b"\x00" * 100)


def test_altered_key_id_fails_authentication() -> None:
    """The key id names a key we have, but not the one used: the subkey and the AAD differ."""
    ct = bytearray(enc(plaintext(20)))
    ct[14:30] = key_id(OTHER).encode()
    assert peek_key_id(bytes(ct)) == key_id(OTHER)
    with pytest.raises(EncryptionError, match="authentication failed"):
        dec(bytes(ct), OTHER, KEY)


def test_failure_is_sticky() -> None:
    ct = bytearray(enc(plaintext(3 * CS)))
    ct[HEADER_LEN + 2] ^= 1
    d = Decryptor(Keyring(KEY))
    with pytest.raises(EncryptionError):
        d.update(bytes(ct))
    with pytest.raises(EncryptionError, match="failed earlier"):
        d.finalize()


def test_use_after_finalize_refused() -> None:
    e = Encryptor(KEY, CS)
    ct = e.finalize()
    with pytest.raises(EncryptionError, match="already finalized"):
        e.update(b"x")
    d = Decryptor(Keyring(KEY))
    assert d.update(ct) == b"" and d.finalize() == b""
    with pytest.raises(EncryptionError, match="already finalized"):
        d.update(b"")


# --------------------------------------------------------------------------- keys


def test_missing_key_names_key_id_not_key() -> None:
    ct = enc(b"secret rows", key=OTHER)
    with pytest.raises(EncryptionError) as info:
        dec(ct, KEY)
    msg = str(info.value)
    assert key_id(OTHER) in msg and "no key with id" in msg
    assert key_id(KEY) in msg  # what the keyring does hold
    for secret in (OTHER.hex(), KEY.hex(), format_key(OTHER), format_key(KEY), repr(OTHER), repr(KEY)):
        assert secret not in msg
    assert isinstance(info.value, MysqlopsError)


def test_missing_key_detected_after_header_only() -> None:
    ct = enc(b"x", key=OTHER)
    d = Decryptor(Keyring(KEY))
    with pytest.raises(EncryptionError, match=key_id(OTHER)):
        d.update(ct[:HEADER_LEN])
    assert d.key_id is None


def test_key_rotation() -> None:
    old, new = generate_key(), generate_key()
    old_ct = encrypt_bytes(old, b"written before rotation", CS)
    ring = Keyring(new, old=[old])
    assert ring.current_id == key_id(new) and ring.ids == (key_id(new), key_id(old))
    e = Encryptor(ring.current, CS)
    assert e.key_id == key_id(new)
    new_ct = e.update(b"written after rotation") + e.finalize()
    assert peek_key_id(new_ct) == key_id(new) and peek_key_id(old_ct) == key_id(old)
    assert decrypt_bytes(ring, old_ct) == b"written before rotation"
    assert decrypt_bytes(ring, new_ct) == b"written after rotation"
    d = Decryptor(ring)
    d.update(old_ct)
    assert d.key_id == key_id(old)
    # once the old key is dropped, old files fail with a message naming the old key id
    with pytest.raises(EncryptionError, match=key_id(old)):
        decrypt_bytes(Keyring(new), old_ct)


def test_keyring_basics() -> None:
    ring = Keyring(KEY, [OTHER, KEY, OTHER])
    assert len(ring) == 2 and key_id(OTHER) in ring and "nope" not in ring
    assert ring.get(key_id(OTHER)) == OTHER
    assert KEY.hex() not in repr(ring) and key_id(KEY) in repr(ring)
    with pytest.raises(EncryptionError, match="no key with id"):
        ring.get("0123456789abcdef")
    with pytest.raises(EncryptionError, match="exactly 32 bytes"):
        Keyring(KEY, [b"short"])
    ring2 = Keyring.from_text(KEY.hex(), [format_key(OTHER)])
    assert ring2.ids == ring.ids


def test_key_id_is_stable_and_domain_separated() -> None:
    import hashlib

    assert key_id(KEY) == hashlib.sha256(b"mysqlops-key-id" + KEY).hexdigest()[:16]
    assert key_id(KEY) != hashlib.sha256(KEY).hexdigest()[:16]
    assert len(key_id(generate_key())) == 16
    assert generate_key() != generate_key()


def test_parse_key_formats() -> None:
    key = generate_key()
    b64 = base64.b64encode(key).decode()
    urlsafe = base64.urlsafe_b64encode(key).decode()
    for text in (
        key.hex(),
        key.hex().upper(),
        b64,
        b64.rstrip("="),
        urlsafe,
        f"  {b64}\n",
        f"hex:{key.hex()}",
        f"base64:{b64}",
        format_key(key),
        key.hex()[:32] + "\n" + key.hex()[32:],
    ):
        assert parse_key(text) == key, text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("ab" * 16, "16 bytes"),
        ("ab" * 33, "33 bytes"),
        (base64.b64encode(b"k" * 16).decode(), "16 bytes"),
        (base64.b64encode(b"k" * 48).decode(), "48 bytes"),
        ("not a key at all!", "neither 64 hex digits nor valid base64"),
        ("hex:zz" * 1, "not valid hex"),
    ],
)
def test_parse_key_errors(text: str, message: str) -> None:
    with pytest.raises(EncryptionError, match=message) as info:
        parse_key(text)
    stripped = "".join(text.split())
    if len(stripped) > 3:
        assert stripped not in str(info.value)  # the (secret) text is never echoed
    assert "32 bytes" in str(info.value) or "32 random bytes" in str(info.value)


def test_parse_key_rejects_non_text() -> None:
    with pytest.raises(EncryptionError, match="as text"):
        parse_key(KEY)  # type: ignore[arg-type]


def test_bad_key_and_chunk_size_arguments() -> None:
    with pytest.raises(EncryptionError, match="exactly 32 bytes"):
        Encryptor(b"x" * 16)
    with pytest.raises(EncryptionError, match="raw bytes"):
        Encryptor(KEY.hex())  # type: ignore[arg-type]
    with pytest.raises(EncryptionError, match="chunk size"):
        Encryptor(KEY, 0)
    with pytest.raises(EncryptionError, match="chunk size"):
        Encryptor(KEY, crypto.MAX_CHUNK_SIZE + 1)
    with pytest.raises(EncryptionError, match="Keyring"):
        Decryptor(KEY)  # type: ignore[arg-type]


def test_peek_key_id_needs_whole_header() -> None:
    ct = enc(b"abc")
    with pytest.raises(EncryptionError, match="incomplete"):
        peek_key_id(ct[: HEADER_LEN - 1])
    with pytest.raises(EncryptionError, match="bad magic"):
        peek_key_id(b"nope" * 20)
