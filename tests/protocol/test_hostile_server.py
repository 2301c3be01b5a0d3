"""A hostile or broken server on 127.0.0.1: every case ends with the project's error, fast.

Each fake server is a few lines of asyncio; ``connect`` must give up with an SshError
subclass (never hang, never raise anything else) within its timeout.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

import pytest

from keytools.errors import (
    ConnectionClosed,
    ConnectionCorrupt,
    ConnectionTimeout,
    InvalidFormat,
    NoKexMatch,
    NoProtocolVersion,
    SshError,
)
from keytools.wire import Writer
from protocol import messages
from protocol.client import accept_any_host_key, connect
from protocol.errors import ConnectFailed, DisconnectReceived
from protocol.kex.kexinit import KexInit, Preferences
from protocol.packet import PacketWriter

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BANNER = b"SSH-2.0-Hostile_1.0\r\n"


async def attempt(behaviour: Behaviour, timeout: float = 5.0) -> tuple[SshError, bytes]:
    """Connect to a server acting out ``behaviour``; the client's error and what it sent."""
    received = bytearray()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def collect() -> None:
            while data := await reader.read(65536):
                received.extend(data)

        collector = asyncio.create_task(collect())
        try:
            await behaviour(reader, writer)
            await asyncio.sleep(timeout + 1)
        except (ConnectionError, OSError):
            pass
        finally:
            collector.cancel()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(timeout + 5):  # the test's own guard against a hang
            with pytest.raises(SshError) as info:
                await connect("127.0.0.1", port, username="u",
                              known_host_check=accept_any_host_key, timeout=timeout)
        await asyncio.sleep(0.05)
    finally:
        server.close()
    return info.value, bytes(received)


def run(behaviour: Behaviour, timeout: float = 5.0) -> tuple[SshError, bytes]:
    return asyncio.run(attempt(behaviour, timeout))


def packet(payload: bytes) -> bytes:
    return PacketWriter().encode(payload)


def test_endless_junk_lines() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for _round in range(40):
            w.write(b"this is not ssh\r\n" * 100)
            await w.drain()

    err, _ = run(act)
    assert isinstance(err, InvalidFormat)


def test_endless_line_without_newline() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"x" * 100000)

    err, _ = run(act)
    assert isinstance(err, InvalidFormat)


def test_overlong_identification() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"SSH-2.0-" + b"A" * 400 + b"\r\n")

    err, _ = run(act)
    assert isinstance(err, InvalidFormat)


def test_ssh1_server() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"SSH-1.5-Ancient\r\n")

    err, _ = run(act)
    assert isinstance(err, NoProtocolVersion)


def test_close_after_banner() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(BANNER)
        await w.drain()
        w.close()

    err, _ = run(act)
    assert isinstance(err, ConnectionClosed)


@pytest.mark.parametrize("banner", [b"", BANNER])
def test_silent_server_times_out(banner: bytes) -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(banner)

    err, _ = run(act, timeout=0.5)
    assert isinstance(err, ConnectionTimeout)
    assert str(err) == "Connection timed out"


@pytest.mark.parametrize("length", [0x7FFFFFFF, 256 * 1024 + 8, 1])
def test_oversized_or_tiny_packet_length(length: int) -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(BANNER + length.to_bytes(4, "big") + b"\x04" + bytes(64))

    err, sent = run(act)
    assert isinstance(err, ConnectionCorrupt)
    # We told the server why, in a DISCONNECT after our KEXINIT (all still in clear).
    assert b"Packet corrupt" in sent


def test_random_bytes_after_banner() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(BANNER + os.urandom(5000))

    err, _ = run(act)
    assert isinstance(err, SshError)


def test_server_disconnects_with_reason() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(BANNER + packet(Writer().byte(messages.DISCONNECT).uint32(12)
                                .string("Too many connections").string("").getvalue()))

    err, _ = run(act)
    assert isinstance(err, DisconnectReceived)
    assert (err.reason, err.description) == (12, "Too many connections")


def test_no_common_kex() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        offer = KexInit.build(Preferences(kex=("diffie-hellman-group1-sha1",)))
        w.write(BANNER + packet(offer.payload))

    err, sent = run(act)
    assert isinstance(err, NoKexMatch)
    assert err.their_offer == "diffie-hellman-group1-sha1"
    assert b"no matching key exchange method found" in sent


def test_garbage_kex_reply() -> None:
    async def act(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        offer = KexInit.build(Preferences(kex=("curve25519-sha256",), host_key=("ssh-ed25519",)))
        writer = PacketWriter()
        w.write(BANNER + writer.encode(offer.payload))
        await asyncio.sleep(0.2)
        # A reply whose host key blob is nonsense.
        w.write(writer.encode(Writer().byte(messages.KEX_ECDH_REPLY).string(b"junk")
                              .string(bytes(32)).string(b"sig").getvalue()))

    err, _ = run(act)
    assert isinstance(err, SshError)


def test_message_before_kex_is_refused() -> None:
    async def act(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(BANNER + packet(Writer().byte(messages.USERAUTH_SUCCESS).getvalue()))

    err, _ = run(act)
    assert "before key exchange" in str(err)


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: refused

        async def main() -> None:
            with pytest.raises(ConnectFailed) as info:
                await connect("127.0.0.1", port, username="u",
                              known_host_check=accept_any_host_key, timeout=5)
            assert str(info.value) == f"connect to host 127.0.0.1 port {port}: Connection refused"

        asyncio.run(main())
