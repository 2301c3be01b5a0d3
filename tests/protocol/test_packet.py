"""The binary packet protocol: framing, padding, sequence numbers, limits, every cipher."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from keytools.errors import ConnectionCorrupt, InvalidArgument, MacInvalid
from protocol.ciphers import CIPHERS, MACS, ChaChaPoly, Plaintext, Protection, make_protection
from protocol.packet import MAX_PACKET, PacketReader, PacketWriter

# Every (cipher, MAC) pair: AEAD ciphers once, CTR with each MAC.
SUITES = [(c, None) for c, s in CIPHERS.items() if s.aead] + [
    (c, m) for c, s in CIPHERS.items() if not s.aead for m in MACS
]


def keyed(cipher: str | None, mac: str | None) -> Callable[[], Protection]:
    """A factory of fresh Protection objects that all share one random key set."""
    if cipher is None:
        return Plaintext
    spec = CIPHERS[cipher]
    key, iv = os.urandom(spec.key_len), os.urandom(spec.iv_len)
    mac_key = os.urandom(MACS[mac].key_len) if mac else b""
    return lambda: make_protection(cipher, mac, key, iv, mac_key)


def pair(cipher: str | None = None, mac: str | None = None) -> tuple[PacketWriter, PacketReader]:
    make = keyed(cipher, mac)
    writer, reader = PacketWriter(), PacketReader()
    writer.set_protection(make())
    reader.set_protection(make())
    return writer, reader


def drain(reader: PacketReader) -> list[tuple[int, bytes]]:
    out = []
    while (item := reader.next()) is not None:
        out.append(item)
    return out


PAYLOADS = [b"\x05", b"x" * 15, b"y" * 16, os.urandom(1000), os.urandom(32768),
            os.urandom(MAX_PACKET - 100)]


@pytest.mark.parametrize(("cipher", "mac"), [(None, None), *SUITES])
def test_round_trip_in_random_chunks(cipher: str | None, mac: str | None) -> None:
    writer, reader = pair(cipher, mac)
    wire = b"".join(writer.encode(p) for p in PAYLOADS)
    rng = random.Random(1)
    got: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(wire):
        n = rng.choice((1, 3, 17, 4096, 100000))
        reader.feed(wire[pos : pos + n])
        pos += n
        got += drain(reader)
    assert got == list(enumerate(PAYLOADS))
    assert reader.buffered == 0
    assert writer.bytes == reader.bytes == len(wire)


@pytest.mark.parametrize(("cipher", "mac"), [(None, None), *SUITES])
def test_padding_and_alignment(cipher: str | None, mac: str | None) -> None:
    writer, _ = pair(cipher, mac)
    prot = writer.protection
    for size in range(1, 70):
        wire = writer.encode(b"p" * size)
        body = len(wire) - prot.mac_len
        aligned = body - 4 if prot.length_outside else body
        assert aligned % prot.block_size == 0
        padding = body - 4 - 1 - size
        assert 4 <= padding < 4 + prot.block_size


def test_plaintext_layout() -> None:
    wire = PacketWriter().encode(b"\x15")
    assert wire[:4] == (12).to_bytes(4, "big") and wire[4] == 10 and wire[5] == 0x15
    assert len(wire) == 16


def test_sequence_numbers_wrap() -> None:
    writer, reader = pair("aes128-ctr", "hmac-sha2-256")
    writer.seq = reader.seq = 0xFFFFFFFE
    reader.feed(b"".join(writer.encode(bytes([n])) for n in (1, 2, 3)))
    assert drain(reader) == [(0xFFFFFFFE, b"\x01"), (0xFFFFFFFF, b"\x02"), (0, b"\x03")]
    assert writer.seq == reader.seq == 1


@pytest.mark.parametrize(("cipher", "mac"), SUITES)
def test_corruption_is_mac_invalid(cipher: str, mac: str | None) -> None:
    make = keyed(cipher, mac)
    writer = PacketWriter()
    writer.set_protection(make())
    wire = writer.encode(b"hello" * 10)
    for index in (len(wire) - 1, len(wire) // 2, 20):
        reader = PacketReader()
        reader.set_protection(make())
        bad = bytearray(wire)
        bad[index] ^= 0x01
        reader.feed(bytes(bad))
        with pytest.raises(MacInvalid):
            drain(reader)


@pytest.mark.parametrize(("cipher", "mac"), [
    ("chacha20-poly1305@openssh.com", None), ("aes128-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes192-ctr", "hmac-sha1"),
])
def test_wrong_sequence_number_is_mac_invalid(cipher: str, mac: str | None) -> None:
    """A dropped or replayed packet shifts the sequence number and breaks the MAC."""
    writer, reader = pair(cipher, mac)
    wire = writer.encode(b"b")
    reader.seq = 9
    reader.feed(wire)
    with pytest.raises((MacInvalid, ConnectionCorrupt)):
        drain(reader)


@pytest.mark.parametrize("length", [0, 4, MAX_PACKET + 1, 0x7FFFFFFF, 0xFFFFFFFF])
def test_bad_lengths_are_refused_before_buffering(length: int) -> None:
    reader = PacketReader()
    reader.feed(length.to_bytes(4, "big") + b"\x04")
    with pytest.raises(ConnectionCorrupt):
        reader.next()


@pytest.mark.parametrize("cipher", ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"])
def test_oversized_length_under_encryption(cipher: str) -> None:
    writer, reader = pair(cipher)
    wire = bytearray(writer.encode(b"x"))
    if cipher.startswith("chacha"):
        # Re-encrypt a huge length with the length key (K_1) and sequence number 0.
        prot = writer.protection
        assert isinstance(prot, ChaChaPoly)
        huge = (MAX_PACKET + 8).to_bytes(4, "big")
        wire[:4] = prot._stream(prot._length_key, 0).update(huge)
    else:
        wire[:4] = (MAX_PACKET + 16).to_bytes(4, "big")
    reader.feed(bytes(wire))
    with pytest.raises(ConnectionCorrupt):
        reader.next()


def test_misaligned_length_is_corrupt() -> None:
    reader = PacketReader()
    reader.feed((13).to_bytes(4, "big") + bytes(13))  # 4 + 13 is not a multiple of 8
    with pytest.raises(ConnectionCorrupt):
        reader.next()


@pytest.mark.parametrize("padding", [0, 3, 11, 12, 255])
def test_bad_padding_is_corrupt(padding: int) -> None:
    reader = PacketReader()
    reader.feed((12).to_bytes(4, "big") + bytes([padding]) + bytes(11))
    with pytest.raises(ConnectionCorrupt):
        reader.next()


def test_writer_refuses_oversized_or_empty_payload() -> None:
    with pytest.raises(InvalidArgument):
        PacketWriter().encode(bytes(MAX_PACKET))
    with pytest.raises(InvalidArgument):
        PacketWriter().encode(b"")


def test_keys_cannot_change_inside_a_packet() -> None:
    writer, reader = PacketWriter(), PacketReader()
    reader.feed(writer.encode(b"abc")[:6])
    assert reader.next() is None
    with pytest.raises(InvalidArgument):
        reader.set_protection(Plaintext())


def test_keys_switch_between_packets() -> None:
    """What NEWKEYS does: the next packet is decoded with the new protection."""
    writer, reader = PacketWriter(), PacketReader()
    make = keyed("chacha20-poly1305@openssh.com", None)
    wire = writer.encode(b"\x15")
    writer.set_protection(make())
    wire += writer.encode(b"secret")
    reader.feed(wire)
    assert reader.next() == (0, b"\x15")
    reader.set_protection(make())
    assert reader.next() == (1, b"secret")
