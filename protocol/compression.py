"""zlib@openssh.com payload compression (PROTOCOL 1.2): zlib, started after user auth.

OpenSSH flushes every packet with Z_PARTIAL_FLUSH and begins a fresh zlib stream in a
direction whenever compression starts there: at authentication success and again at
every later NEWKEYS. Inflating stops at the packet limit, so a small compressed packet
cannot expand into an unbounded allocation.
"""

from __future__ import annotations

import zlib

from keytools.errors import ConnectionCorrupt, InvalidFormat
from protocol.packet import MAX_PACKET

ZLIB_DELAYED = "zlib@openssh.com"


class Compressor:
    def __init__(self, level: int = 6) -> None:
        self._zlib = zlib.compressobj(level)

    def compress(self, payload: bytes) -> bytes:
        return self._zlib.compress(payload) + self._zlib.flush(zlib.Z_PARTIAL_FLUSH)


class Decompressor:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj()

    def decompress(self, data: bytes) -> bytes:
        try:
            out = self._zlib.decompress(data, MAX_PACKET)
        except zlib.error:
            raise InvalidFormat("bad compressed data") from None
        if self._zlib.unconsumed_tail:
            raise ConnectionCorrupt("compressed packet too large")
        if not out:
            raise InvalidFormat("empty compressed packet")
        return out
