"""zlib@openssh.com: packets round-trip compressed, hostile inflation is bounded, and
compression starts exactly after USERAUTH_SUCCESS (and restarts at each NEWKEYS)."""

from __future__ import annotations

import asyncio
import os
import zlib

import pytest

from keytools.errors import ConnectionCorrupt, InvalidFormat
from keytools.private import generate
from keytools.wire import Writer
from protocol import messages
from protocol.auth import authenticate
from protocol.compression import Compressor, Decompressor
from protocol.kex import Preferences
from protocol.packet import MAX_PACKET, PacketReader, PacketWriter
from protocol.transport import TransportConfig
from tests.protocol.loopback import loopback


def test_round_trip_through_packets() -> None:
    writer, reader = PacketWriter(), PacketReader()
    writer.compressor, reader.decompressor = Compressor(), Decompressor()
    payloads = [b"\x5e" + bytes(100000), os.urandom(5000), b"\x01hello" * 50]
    wire = b"".join(writer.encode(p) for p in payloads)
    assert len(wire) < 20000  # the zeros shrank
    reader.feed(wire)
    assert [reader.next() for _ in payloads] == list(enumerate(payloads))


def test_each_packet_is_flushed() -> None:
    """Z_PARTIAL_FLUSH: every packet can be inflated on its own, in order."""
    c, d = Compressor(), Decompressor()
    for n in range(5):
        assert d.decompress(c.compress(bytes([n]) * 300)) == bytes([n]) * 300


def test_inflation_is_capped() -> None:
    bomb = zlib.compress(bytes(MAX_PACKET + 1))
    assert len(bomb) < 2000
    with pytest.raises(ConnectionCorrupt):
        Decompressor().decompress(bomb)


@pytest.mark.parametrize("data", [b"\x00\x01\x02garbage", b"x"])
def test_garbage_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidFormat):
        Decompressor().decompress(data)


def test_delayed_start_in_a_session() -> None:
    key = generate("ed25519")
    zlib_only = TransportConfig(algorithms=Preferences(compression=("zlib@openssh.com",)))

    async def server_auth(server: object) -> None:
        from protocol.transport import Transport

        assert isinstance(server, Transport)
        queue = server.subscribe([messages.USERAUTH_REQUEST])
        await queue.get()  # "none": accept at once
        server.send(bytes((messages.USERAUTH_SUCCESS,)))

    async def main() -> None:
        lb, cerr, serr = await loopback([key], client_config=zlib_only, server_config=zlib_only)
        assert lb is not None, (cerr, serr)
        assert lb.client.kex is not None and lb.client.kex.algorithms is not None
        assert lb.client.kex.algorithms.compression_c2s == "zlib@openssh.com"
        # Not before authentication ...
        assert lb.client._out.compressor is None and lb.server._in.decompressor is None
        task = asyncio.create_task(server_auth(lb.server))
        await authenticate(lb.client, "alice")
        await task
        # ... and on both sides, both ways, right after it.
        assert lb.client._out.compressor is not None and lb.client._in.decompressor is not None
        assert lb.server._out.compressor is not None and lb.server._in.decompressor is not None
        big = bytes(200000)
        assert await asyncio.wait_for(lb.client.ping(big), 10) == big
        before = lb.client._out.compressor
        await lb.client.rekey()
        assert lb.client._out.compressor is not before  # a fresh stream after NEWKEYS
        assert await asyncio.wait_for(lb.client.ping(b"again"), 10) == b"again"
        lb.server.send(Writer().byte(messages.IGNORE).string(bytes(1000)).getvalue())
        await lb.close()

    asyncio.run(main())
