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
from keytools.wire import Reader, Writer
from protocol.ciphers import (
    Plaintext,
    Protection,
    read_protection_state,
    restore_protection,
    write_protection_state,
)

if TYPE_CHECKING:
    from protocol.compression import Compressor, Decompressor

#: OpenSSH's PACKET_MAX_SIZE: the largest packet_length accepted or sent.
MAX_PACKET = 256 * 1024
MIN_PADDING = 4
_SEQ_MASK = 0xFFFFFFFF
#: free space offered to a socket read: it starts small (a login moves a few KiB) and
#: doubles whenever a read fills it, up to _READ_MAX (bulk data arrives in big reads)
_READ_MIN = 1 << 15
_READ_MAX = 1 << 20


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
        #: packets through the current compressor (a zlib stream cannot be exported)
        self.compressed = 0

    def set_protection(self, protection: Protection) -> None:
        self.protection = protection
        self.bytes = 0
        self.packets = 0

    def export_state(self, w: Writer) -> None:
        """This direction's state for another process; compression only before its
        first packet (zlib's history cannot be exported)."""
        if self.compressor is not None and self.compressed:
            raise InvalidArgument("compression state cannot be exported")
        write_protection_state(w, self.protection.export())
        w.uint32(self.seq).uint64(self.bytes).uint64(self.packets)
        w.boolean(self.compressor is not None)

    def restore_state(self, r: Reader) -> bool:
        """Undo ``export_state``; True when compression is to start afresh."""
        self.protection = restore_protection(read_protection_state(r))
        self.seq = r.uint32()
        self.bytes = r.uint64()
        self.packets = r.uint64()
        return r.boolean()

    def encode(self, payload: bytes) -> bytes:
        """The wire form of one packet carrying ``payload``."""
        if self.compressor is not None:
            payload = self.compressor.compress(payload)
            self.compressed += 1
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
    """The receiving half. ``feed`` bytes (or fill ``get_buffer`` in place), then call
    ``next`` until it returns None.

    Bytes live in one fixed bytearray that is only ever compacted (moved to the front) or
    replaced, never resized in place, so the memoryviews handed to the socket and to the
    cipher stay valid; packets are opened straight from it without copying.
    """

    def __init__(self) -> None:
        self.protection: Protection = Plaintext()
        self.decompressor: Decompressor | None = None
        self.seq = 0
        self.bytes = 0
        self.packets = 0
        self._buf = bytearray(2 * _READ_MIN)
        self._view = memoryview(self._buf)
        self._want = _READ_MIN
        self._start = 0
        self._end = 0
        self._total = 0  # wire size of the packet whose length was read; 0 = none yet
        self._length = 0
        self.decompressed = 0

    @property
    def at_boundary(self) -> bool:
        """No packet is half decoded (its length read, its body not yet)."""
        return not self._total

    def export_state(self, w: Writer) -> None:
        """As ``PacketWriter.export_state``, plus every byte received but not decoded."""
        if not self.at_boundary:
            raise InvalidArgument("packet state exported inside a packet")
        if self.decompressor is not None and self.decompressed:
            raise InvalidArgument("compression state cannot be exported")
        write_protection_state(w, self.protection.export())
        w.uint32(self.seq).uint64(self.bytes).uint64(self.packets)
        w.boolean(self.decompressor is not None)
        w.string(self._view[self._start : self._end])

    def restore_state(self, r: Reader) -> bool:
        """Undo ``export_state`` (the undecoded bytes come first); True when
        decompression is to start afresh."""
        self.protection = restore_protection(read_protection_state(r))
        self.seq = r.uint32()
        self.bytes = r.uint64()
        self.packets = r.uint64()
        inflate = r.boolean()
        self._start = self._end = self._total = 0
        self.feed(r.string())
        return inflate

    def set_protection(self, protection: Protection) -> None:
        if self._total:
            raise InvalidArgument("keys changed inside a packet")
        self.protection = protection
        self.bytes = 0
        self.packets = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
        return self._end - self._start

    def get_buffer(self, size: int = 0) -> memoryview:
        """Free space for at least ``size`` more bytes (asyncio's BufferedProtocol
        writes received data here, then calls ``buffer_updated``)."""
        size = max(size, self._want)
        if len(self._buf) - self._end < size:
            held = self._end - self._start
            if held + size <= len(self._buf) and self._start >= held:
                # Compact: the held bytes move to the front (no overlap, no resize).
                self._buf[:held] = self._view[self._start : self._end]
            else:
                grown = bytearray(max(len(self._buf) * 2, held + size))
                grown[:held] = self._view[self._start : self._end]
                self._buf = grown
                self._view = memoryview(grown)
            self._start, self._end = 0, held
        return self._view[self._end :]

    def buffer_updated(self, n: int) -> None:
        if self._end + n == len(self._buf) and self._want < _READ_MAX:
            self._want *= 2  # the read filled all we offered: offer more next time
        self._end += n

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        self.get_buffer(n)[:n] = data
        self._end += n

    def take_buffered(self) -> bytes:
        """Remove and return every byte not yet framed (for hand-over to another reader)."""
        data = bytes(self._view[self._start : self._end])
        self._start = self._end = 0
        return data

    def next(self) -> tuple[int, bytes] | None:
        """The next (sequence number, payload), or None until more bytes arrive.

        Raises ConnectionCorrupt for a bad length or padding and MacInvalid for a bad MAC;
        the connection cannot continue after either.
        """
        prot = self.protection
        start = self._start
        avail = self._end - start
        if not self._total:
            if avail < prot.head_len:
                return None
            length = prot.packet_length(self.seq, self._view[start : start + prot.head_len])
            _check_length(length, prot)
            self._length = length
            self._total = 4 + length + prot.mac_len
        total = self._total
        if avail < total:
            return None
        body = prot.open(self.seq, self._view[start : start + total])
        self._total = 0
        if avail == total:
            self._start = self._end = 0
        else:
            self._start = start + total
        padding = body[0]
        end = self._length - padding
        if padding < MIN_PADDING or end <= 1:
            raise ConnectionCorrupt(f"Corrupted padlen {padding} on input.")
        seq = self.seq
        self.seq = (seq + 1) & _SEQ_MASK
        self.bytes += total
        self.packets += 1
        payload = body[1:end]
        if self.decompressor is not None:
            payload = self.decompressor.decompress(payload)
            self.decompressed += 1
        return seq, payload
