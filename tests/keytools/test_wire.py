"""Unit tests of the wire codec (keytools/wire.py): every field type, both directions."""

from __future__ import annotations

import pytest

from keytools.errors import (
    BignumNegative,
    BignumTooLarge,
    InvalidFormat,
    MessageIncomplete,
    SshError,
    StringTooLarge,
    UnexpectedTrailingData,
)
from keytools.wire import MAX_BIGNUM_BYTES, MAX_STRING, Reader, Writer, mpint_bytes


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def sstr(data: bytes) -> bytes:
    return u32(len(data)) + data


# --- fixed-size fields -------------------------------------------------------------------


def test_byte_boolean_uint32_uint64_read() -> None:
    r = Reader(b"\x7f\x00\x02" + bytes.fromhex("deadbeef") + bytes.fromhex("0102030405060708"))
    assert r.byte() == 0x7F
    assert r.boolean() is False
    assert r.boolean() is True  # any non-zero byte is true, as in OpenSSH
    assert r.uint32() == 0xDEADBEEF
    assert r.uint64() == 0x0102030405060708
    assert r.remaining == 0
    r.end()


def test_uint_extremes_round_trip() -> None:
    data = Writer().uint32(0).uint32(2**32 - 1).uint64(0).uint64(2**64 - 1).getvalue()
    assert data == b"\0" * 4 + b"\xff" * 4 + b"\0" * 8 + b"\xff" * 8
    r = Reader(data)
    assert [r.uint32(), r.uint32(), r.uint64(), r.uint64()] == [0, 2**32 - 1, 0, 2**64 - 1]
    r.end()


def test_writer_byte_and_boolean() -> None:
    assert Writer().byte(0).byte(255).byte(0x1FF).getvalue() == b"\x00\xff\xff"
    assert Writer().boolean(True).boolean(False).getvalue() == b"\x01\x00"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", "byte"),
        (b"", "boolean"),
        (b"\0\0\0", "uint32"),
        (b"\0" * 7, "uint64"),
        (b"", "string"),
        (b"\0\0", "string"),
        (b"\0\0\0\x05abcd", "string"),
        (b"\0\0\0\x05abcd", "text"),
        (b"\0\0\0\x05abcd", "ascii"),
        (b"\0\0\0\x05abcd", "mpint"),
        (b"\0\0\0\x05abcd", "name_list"),
        (b"\0\0\0\x05abcd", "sub"),
        (b"\0\0\0\x64x", "string"),
    ],
)
def test_short_reads_raise_message_incomplete(data: bytes, field: str) -> None:
    with pytest.raises(MessageIncomplete) as exc:
        getattr(Reader(data), field)()
    assert str(exc.value) == "incomplete message"


def test_short_read_does_not_move_position_of_fixed_field() -> None:
    r = Reader(b"\x01\x02\x03")
    with pytest.raises(MessageIncomplete):
        r.uint32()
    assert r.position == 0
    assert r.raw(3) == b"\x01\x02\x03"


# --- strings -----------------------------------------------------------------------------


def test_string_round_trip_and_str_is_utf8() -> None:
    data = Writer().string(b"").string(b"\0\xff").string("h\u00e9").getvalue()
    assert data == sstr(b"") + sstr(b"\0\xff") + sstr("h\u00e9".encode())
    r = Reader(data)
    assert r.string() == b""
    assert r.string() == b"\0\xff"
    assert r.text() == "h\u00e9"
    r.end()


def test_writer_accepts_bytearray_and_memoryview() -> None:
    w = Writer().string(bytearray(b"ab")).string(memoryview(b"cd")).raw(bytearray(b"!"))
    assert w.getvalue() == sstr(b"ab") + sstr(b"cd") + b"!"
    assert len(w) == len(w.getvalue())


def test_reader_accepts_bytearray_and_memoryview() -> None:
    assert Reader(bytearray(sstr(b"x"))).string() == b"x"
    assert Reader(memoryview(sstr(b"y"))).string() == b"y"


def test_string_length_past_end() -> None:
    r = Reader(u32(10) + b"short")
    with pytest.raises(MessageIncomplete):
        r.string()


def test_string_length_over_limit_is_too_large() -> None:
    # The claimed length is refused before the buffer is even looked at.
    with pytest.raises(StringTooLarge) as exc:
        Reader(u32(MAX_STRING + 1)).string()
    assert str(exc.value) == "string is too large"
    assert isinstance(exc.value, InvalidFormat)
    with pytest.raises(MessageIncomplete):
        Reader(u32(MAX_STRING)).string()


def test_text_rejects_nul_and_invalid_utf8() -> None:
    with pytest.raises(InvalidFormat):
        Reader(sstr(b"a\0b")).text()
    with pytest.raises(InvalidFormat):
        Reader(sstr(b"\xff\xfe")).text()
    with pytest.raises(InvalidFormat):
        Reader(sstr(b"\xc3")).text()  # truncated multi-byte sequence
    assert Reader(sstr("\u2603".encode())).text() == "\u2603"
    assert Reader(sstr(b"")).text() == ""


def test_ascii_rejects_non_ascii_and_nul() -> None:
    assert Reader(sstr(b"ssh-ed25519")).ascii() == "ssh-ed25519"
    with pytest.raises(InvalidFormat):
        Reader(sstr("\u00e9".encode())).ascii()
    with pytest.raises(InvalidFormat):
        Reader(sstr(b"ssh\0rsa")).ascii()


def test_sub_reads_inside_the_string_only() -> None:
    r = Reader(sstr(u32(7) + b"x") + b"after")
    sub = r.sub()
    assert sub.uint32() == 7
    assert sub.raw(1) == b"x"
    sub.end()
    with pytest.raises(MessageIncomplete):
        sub.byte()
    assert r.rest() == b"after"


# --- name-list ---------------------------------------------------------------------------


def test_name_list_round_trip() -> None:
    names = ["curve25519-sha256", "ext-info-c", "kex-strict-c-v00@openssh.com"]
    data = Writer().name_list(names).name_list([]).getvalue()
    assert data == sstr(",".join(names).encode()) + sstr(b"")
    r = Reader(data)
    assert r.name_list() == names
    assert r.name_list() == []
    r.end()


def test_name_list_rejects_non_ascii() -> None:
    with pytest.raises(InvalidFormat):
        Reader(sstr("a,\u00e9".encode())).name_list()


# --- mpint (RFC 4251 section 5 examples) ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (0, "00000000"),
        (0x9A378F9B2E332A7, "0000000809a378f9b2e332a7"),
        (0x80, "000000020080"),
        (0x7F, "000000017f"),
        (0xFF, "0000000200ff"),
        (0x0100, "000000020100"),
    ],
)
def test_mpint_encoding(value: int, encoding: str) -> None:
    raw = bytes.fromhex(encoding)
    assert Writer().mpint(value).getvalue() == raw
    assert mpint_bytes(value) == raw
    r = Reader(raw)
    assert r.mpint() == value
    r.end()


def test_mpint_negative_is_refused() -> None:
    # RFC 4251's -1234 (0xfb2e) and -0xdeadbeef: OpenSSH refuses negative bignums.
    for enc in ("00000002fb2e", "00000005ff21524111", "0000000180"):
        with pytest.raises(BignumNegative) as exc:
            Reader(bytes.fromhex(enc)).mpint()
        assert str(exc.value) == "bignum is negative"
    with pytest.raises(BignumNegative):
        Writer().mpint(-1)


def test_mpint_leading_zeros_are_accepted() -> None:
    # Non-minimal encodings are trimmed, as sshbuf_get_bignum2_bytes_direct does.
    assert Reader(sstr(b"\0\0\x01")).mpint() == 1
    assert Reader(sstr(b"\0")).mpint() == 0


def test_mpint_size_limit() -> None:
    biggest = 2 ** (MAX_BIGNUM_BYTES * 8) - 1  # 16384 bits, needs a 0x00 prefix byte
    enc = Writer().mpint(biggest).getvalue()
    assert len(enc) == 4 + MAX_BIGNUM_BYTES + 1
    assert Reader(enc).mpint() == biggest
    # One byte more than the limit with a non-zero first byte is too large.
    with pytest.raises(BignumTooLarge) as exc:
        Reader(sstr(b"\x01" + b"\0" * MAX_BIGNUM_BYTES)).mpint()
    assert str(exc.value) == "bignum is too large"
    with pytest.raises(BignumTooLarge):
        Reader(sstr(b"\0" * (MAX_BIGNUM_BYTES + 2))).mpint()
    # Exactly the limit with the first byte zero is fine.
    assert Reader(sstr(b"\0" * (MAX_BIGNUM_BYTES + 1))).mpint() == 0


def test_mpint_round_trip_many_sizes() -> None:
    for bits in range(0, 16384, 97):
        for value in (2**bits - 1, 2**bits, 2**bits + 1):
            r = Reader(Writer().mpint(value).getvalue())
            assert r.mpint() == value
            r.end()


# --- raw, rest, slice, position, end ----------------------------------------------------------


def test_raw_rest_and_position() -> None:
    r = Reader(b"abcdef")
    assert r.raw(0) == b""
    assert r.raw(2) == b"ab"
    assert r.position == 2
    assert r.remaining == 4
    assert r.rest() == b"cdef"
    assert r.remaining == 0
    assert r.rest() == b""
    with pytest.raises(MessageIncomplete):
        r.raw(1)


def test_raw_negative_length_is_refused() -> None:
    with pytest.raises(MessageIncomplete):
        Reader(b"abc").raw(-1)


def test_slice_only_covers_bytes_already_read() -> None:
    r = Reader(sstr(b"signed") + sstr(b"sig"))
    start = r.position
    r.string()
    end = r.position
    assert r.slice(start, end) == sstr(b"signed")
    assert r.slice(0, 0) == b""
    for bad in ((0, end + 1), (-1, 2), (3, 2)):
        with pytest.raises(MessageIncomplete):
            r.slice(*bad)


def test_end_rejects_trailing_data() -> None:
    r = Reader(u32(1) + b"!")
    r.uint32()
    with pytest.raises(UnexpectedTrailingData) as exc:
        r.end()
    assert str(exc.value) == "unexpected bytes remain after decoding"
    assert isinstance(exc.value, InvalidFormat)
    r.byte()
    r.end()


def test_writer_chains_and_getvalue_is_a_snapshot() -> None:
    w = Writer()
    assert w.byte(1) is w
    first = w.getvalue()
    w.uint32(2)
    assert first == b"\x01"
    assert w.getvalue() == b"\x01" + u32(2)
    assert isinstance(w.getvalue(), bytes)


def test_full_message_round_trip() -> None:
    w = (
        Writer()
        .byte(20)
        .raw(b"\x11" * 16)
        .name_list(["a", "b"])
        .boolean(True)
        .uint32(0)
        .uint64(12345678901234)
        .mpint(65537)
        .string(b"blob")
    )
    r = Reader(w.getvalue())
    assert r.byte() == 20
    assert r.raw(16) == b"\x11" * 16
    assert r.name_list() == ["a", "b"]
    assert r.boolean() is True
    assert r.uint32() == 0
    assert r.uint64() == 12345678901234
    assert r.mpint() == 65537
    assert r.string() == b"blob"
    r.end()


def test_every_error_is_an_ssh_error() -> None:
    for cls in (MessageIncomplete, InvalidFormat, BignumNegative, BignumTooLarge,
                StringTooLarge, UnexpectedTrailingData):
        assert issubclass(cls, SshError)
