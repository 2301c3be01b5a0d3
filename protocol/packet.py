"""The binary packet protocol (RFC 4253 section 6), without I/O.

``PacketWriter`` frames payloads (padding to the cipher's block size, sequence numbers
that wrap at 2^32) and seals them with the direction's ``Protection``. ``PacketReader``
is fed raw bytes and hands back one payload at a time, so the transport can install new
keys after NEWKEYS before the next packet is decoded. A length above 256 KiB (OpenSSH's
PACKET_MAX_SIZE) is refused before anything is buffered for it, so a peer cannot make us
allocate more than one packet's worth.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keytools.errors import ConnectionCorrupt, InvalidArgument
from protocol.ciphers import Plaintext, Protection

if TYPE_CHECKING:
    from protocol.compression import Compressor, Decompressor

#: OpenSSH's PACKET_MAX_SIZE: the largest packet_length accepted or sent.
MAX_PACKET = 256 * 1024
MIN_PADDING = 4
_SEQ_MASK = 0xFFFFFFFF
# Drop consumed input once this much has piled up at the front of the buffer.
_COMPACT_AT = 1 << 16


def _check_length(length: int, prot: Protection) -> None:
    if length < 1 + MIN_PADDING or length > MAX_PACKET:
        raise ConnectionCorrupt(f"Bad packet length {length}.")
    aligned = length if prot.length_outside else length + 4
    if aligned % prot.block_size:
        raise ConnectionCorrupt(f"padding error: need {aligned} block {prot.block_size}")


class PacketWriter:
    """The sending half: sequence number, protection and data counters for rekeying."""

    def __init__(self) -> None:
        self.protection: Protection = Plaintext()
        self.compressor: Compressor | None = None
        self.seq = 0
        #: bytes and packets sent under the current keys (rekey limits look at these)
        self.bytes = 0
        self.packets = 0

    def set_protection(self, protection: Protection) -> None:
        self.protection = protection
        self.bytes = 0
        self.packets = 0

    def encode(self, payload: bytes) -> bytes:
        """The wire form of one packet carrying ``payload``."""
        if self.compressor is not None:
            payload = self.compressor.compress(payload)
        prot = self.protection
        size = len(payload)
        block = prot.block_size
        aligned = size + 1 if prot.length_outside else size + 5
        padding = -aligned % block
        if padding < MIN_PADDING:
            padding += block
        length = size + 1 + padding
        if length > MAX_PACKET or size == 0:
            raise InvalidArgument(f"packet payload of {size} bytes")
        packet = b"".join(
            (length.to_bytes(4, "big"), bytes((padding,)), payload, os.urandom(padding))
        )
        wire = prot.seal(self.seq, packet)
        self.seq = (self.seq + 1) & _SEQ_MASK
        self.bytes += len(wire)
        self.packets += 1
        return wire


class PacketReader:
    """The receiving half. ``feed`` bytes, then call ``next`` until it returns None."""

    def __init__(self) -> None:
        self.protection: Protection = Plaintext()
        self.decompressor: Decompressor | None = None
        self.seq = 0
        self.bytes = 0
        self.packets = 0
        self._buf = bytearray()
        self._pos = 0
        self._total = 0  # wire size of the packet whose length was read; 0 = none yet
        self._length = 0

    def set_protection(self, protection: Protection) -> None:
        if self._total:
            raise InvalidArgument("keys changed inside a packet")
        self.protection = protection
        self.bytes = 0
        self.packets = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos >= _COMPACT_AT:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def take_buffered(self) -> bytes:
        """Remove and return every byte not yet framed (for hand-over to another reader)."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    def next(self) -> tuple[int, bytes] | None:
        """The next (sequence number, payload), or None until more bytes arrive.

        Raises ConnectionCorrupt for a bad length or padding and MacInvalid for a bad MAC;
        the connection cannot continue after either.
        """
        prot = self.protection
        avail = len(self._buf) - self._pos
        if not self._total:
            if avail < prot.head_len:
                return None
            head = bytes(self._buf[self._pos : self._pos + prot.head_len])
            length = prot.packet_length(self.seq, head)
            _check_length(length, prot)
            self._length = length
            self._total = 4 + length + prot.mac_len
        total = self._total
        if avail < total:
            return None
        start = self._pos
        wire = bytes(self._buf[start : start + total])
        self._pos = start + total
        self._total = 0
        body = prot.open(self.seq, wire)
        padding = body[0]
        end = self._length - padding
        if padding < MIN_PADDING or end <= 1:
            raise ConnectionCorrupt(f"Corrupted padlen {padding} on input.")
        seq = self.seq
        self.seq = (seq + 1) & _SEQ_MASK
        self.bytes += total
        self.packets += 1
        payload = bytes(body[1:end])
        if self.decompressor is not None:
            payload = self.decompressor.decompress(payload)
        return seq, payload
