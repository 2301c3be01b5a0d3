"""The framing on the privsep socketpairs, and the hand-over of the connection.

Between the monitor and the network child every message is a frame: uint32 length, one
kind byte (PAYLOAD, SIGN, SIGNED), a body; a relayed SSH payload carries its sequence
number. Lengths are bounded, so a compromised child cannot make the monitor buffer
without limit. The hand-over is the network child passing the client socket and the
signature socket (SCM_RIGHTS) with the exported transport state to the user's process
over the data socketpair (see protocol.privsep).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from keytools.errors import ConnectionClosed, InvalidFormat
from keytools.wire import Reader, Writer

#: frame kinds on the socketpairs between the three processes
PAYLOAD = 1
SIGN = 2
SIGNED = 3
#: a frame carries at most one packet's payload plus a little
MAX_FRAME = 512 * 1024
RELAY_READ = 256 * 1024
#: the largest transport state a hand-over may carry (undecoded bytes included)
MAX_HANDOVER = 16 * 1024 * 1024


def frame(kind: int, body: bytes) -> bytes:
    return Writer().uint32(len(body) + 1).byte(kind).getvalue() + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next (kind, body), or None at a clean end of stream."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionClosed("relay closed inside a frame") from None
        return None
    length = Reader(head).uint32()
    if not 1 <= length <= MAX_FRAME:
        raise InvalidFormat(f"relay frame of {length} bytes")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("relay closed inside a frame") from None
    return body[0], body[1:]


class FrameReader:
    """Frames from a stream, parsed out of large reads (one await per read, not per
    frame: bulk data crosses the relay in many frames per system call)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self._buf = bytearray()
        self._pos = 0

    async def next(self) -> tuple[int, bytes] | None:
        """The next (kind, body), or None at a clean end of stream."""
        while True:
            avail = len(self._buf) - self._pos
            if avail >= 4:
                length = Reader(bytes(self._buf[self._pos : self._pos + 4])).uint32()
                if not 1 <= length <= MAX_FRAME:
                    raise InvalidFormat(f"relay frame of {length} bytes")
                if avail >= 4 + length:
                    start = self._pos + 4
                    self._pos = start + length
                    return self._buf[start], bytes(self._buf[start + 1 : self._pos])
            data = await self.reader.read(RELAY_READ)
            if not data:
                if avail:
                    raise ConnectionClosed("relay closed inside a frame")
                return None
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += data


def payload_frame(seq: int, payload: bytes) -> bytes:
    return frame(PAYLOAD, Writer().uint32(seq).getvalue() + payload)


def split_payload(body: bytes) -> tuple[int, bytes]:
    r = Reader(body)
    seq = r.uint32()
    payload = r.rest()
    if not payload:
        raise InvalidFormat("empty relayed payload")
    return seq, payload

# -- the hand-over after authentication -----------------------------------------------


def send_handover(data: socket.socket, fds: Sequence[int], state: bytes) -> None:
    """Pass the client socket and the signature socket (SCM_RIGHTS) with the transport
    state to the user's process (blocking: the network child has nothing else to do)."""
    data.setblocking(True)
    socket.send_fds(data, [Writer().uint32(len(state)).getvalue()], list(fds))
    data.sendall(state)


def _recv_exactly(data: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = data.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionClosed("network child closed inside the hand-over")
        chunks += chunk
    return bytes(chunks)


def receive_handover(data: socket.socket) -> tuple[socket.socket, socket.socket, bytes]:
    """The user's process: (client socket, signature socket, transport state)."""
    data.setblocking(True)
    msg, fds, flags, _ = socket.recv_fds(data, 4, 2)
    socks = [socket.socket(fileno=fd) for fd in fds]
    try:
        if not msg:
            raise ConnectionClosed("connection ended before the hand-over")
        if len(socks) != 2 or flags & getattr(socket, "MSG_CTRUNC", 0):
            raise InvalidFormat("hand-over without its two sockets")
        head = msg + _recv_exactly(data, 4 - len(msg)) if len(msg) < 4 else msg
        length = Reader(head).uint32()
        if length > MAX_HANDOVER:
            raise InvalidFormat(f"hand-over state of {length} bytes")
        return socks[0], socks[1], _recv_exactly(data, length)
    except BaseException:
        for s in socks:
            s.close()
        raise

