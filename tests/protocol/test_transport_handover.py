"""Transport state export and import (privsep hand-over): for every cipher and MAC, a
server transport stopped mid-stream and resumed over the same socket in a new Transport
keeps talking to the client, through rekeys started by either side; zlib@openssh.com
hands over at USERAUTH_SUCCESS, before its first compressed packet."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from keytools.errors import InvalidArgument
from keytools.private import PrivateKey, generate
from keytools.wire import Writer
from protocol import messages
from protocol.auth import authenticate
from protocol.ciphers import (
    CIPHERS,
    MACS,
    ProtectionState,
    make_protection,
    restore_protection,
)
from protocol.kex import Preferences
from protocol.transport import Transport, TransportConfig
from tests.protocol.loopback import Loopback, loopback

SUITES = [(c, None) for c, s in CIPHERS.items() if s.aead] + [
    (c, m) for c, s in CIPHERS.items() if not s.aead
    for m in ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512", "hmac-sha1-etm@openssh.com")
]


def _protection(cipher: str, mac: str | None, seed: int) -> tuple[str, str | None, bytes,
                                                                   bytes, bytes]:
    spec = CIPHERS[cipher]
    mac_len = MACS[mac].key_len if mac else 0
    rnd = bytes((seed + i) % 256 for i in range(200))
    return cipher, mac, rnd[: spec.key_len], rnd[64 : 64 + spec.iv_len], rnd[100 : 100 + mac_len]


def _packet(n: int) -> bytes:
    body = bytes((n + i) % 251 for i in range(n))
    length = len(body) + 1
    return length.to_bytes(4, "big") + bytes((4,)) + body[:-4] + bytes(4)


@pytest.mark.parametrize(("cipher", "mac"), SUITES)
def test_protection_round_trip(cipher: str, mac: str | None) -> None:
    """Seal and open a few packets, export, restore: the copy continues exactly where the
    original was (AES-CTR rebuilt at its counter, AES-GCM at its invocation counter)."""
    sender = make_protection(*_protection(cipher, mac, 7))
    receiver = make_protection(*_protection(cipher, mac, 7))
    block = sender.block_size
    sizes = [block * k + (4 if sender.length_outside else 0) - 4 for k in (3, 5, 64, 2)]
    for seq, size in enumerate(sizes):
        wire = sender.seal(seq, _packet(size))
        receiver.packet_length(seq, wire[: receiver.head_len])
        receiver.open(seq, wire)
    state = sender.export()
    assert isinstance(state, ProtectionState) and state.cipher == cipher
    copy_send = restore_protection(state)
    copy_recv = restore_protection(receiver.export())
    for seq, size in enumerate(sizes[:2], start=len(sizes)):
        packet = _packet(size)
        wire = copy_send.seal(seq, packet)
        assert wire == sender.seal(seq, packet)
        assert copy_recv.packet_length(seq, wire[: copy_recv.head_len]) == len(packet) - 4
        assert copy_recv.open(seq, wire) == packet[4:]


def test_ctr_state_refused_inside_a_packet() -> None:
    prot = make_protection(*_protection("aes128-ctr", "hmac-sha2-256", 1))
    wire = make_protection(*_protection("aes128-ctr", "hmac-sha2-256", 1)).seal(0, _packet(44))
    prot.packet_length(0, wire[:16])
    with pytest.raises(InvalidArgument):
        prot.export()


async def _server_auth(server: Transport) -> None:
    queue = server.subscribe([messages.USERAUTH_REQUEST])
    await queue.get()
    server.send(bytes((messages.USERAUTH_SUCCESS,)))


async def _hand_over(lb: Loopback, config: TransportConfig, key: PrivateKey) -> Transport:
    """What the network child and the user's process do: stop, export, pass the socket
    on (here: a duplicate of its fd), close the old one; resume in a new Transport."""
    old = lb.server
    await asyncio.wait_for(old.stop_reading(), 10)
    state = old.export_state()
    sock = old._writer.get_extra_info("socket")
    dup = socket.socket(fileno=os.dup(sock.fileno()))
    old._writer.transport.abort()
    reader, writer = await asyncio.open_connection(sock=dup)
    new = Transport.resume(reader, writer, state, config, host_keys=[key])
    lb.server = new
    return new


async def _traffic(lb: Loopback, rounds: int = 3) -> None:
    for n in range(rounds):
        data = os.urandom(1000 * n + 37)
        assert await asyncio.wait_for(lb.client.ping(data), 10) == data


@pytest.mark.parametrize(("cipher", "mac"), SUITES)
def test_transport_handover_mid_stream(cipher: str, mac: str | None) -> None:
    key = generate("ed25519")
    prefs = Preferences(ciphers=(cipher,), macs=(mac,) if mac else Preferences().macs)
    config = TransportConfig(algorithms=prefs)

    async def main() -> None:
        lb, cerr, serr = await loopback([key], client_config=config, server_config=config)
        assert lb is not None, (cerr, serr)
        task = asyncio.create_task(_server_auth(lb.server))
        await authenticate(lb.client, "alice")
        await task
        await _traffic(lb)
        await lb.client.rekey()
        # the client keeps sending while the server stops: those bytes travel in the state
        pings = [asyncio.create_task(lb.client.ping(bytes([n]) * 3000)) for n in range(4)]
        await asyncio.sleep(0)
        server = await _hand_over(lb, config, key)
        assert [await asyncio.wait_for(p, 10) for p in pings] == [bytes([n]) * 3000
                                                                  for n in range(4)]
        await _traffic(lb)
        await asyncio.wait_for(lb.client.rekey(), 10)  # rekey after import: client-started
        await _traffic(lb)
        await asyncio.wait_for(server.rekey(), 10)  # and server-started
        await _traffic(lb)
        assert server.session_id == lb.client.session_id
        server.send(Writer().byte(messages.IGNORE).string(bytes(1000)).getvalue())
        await lb.close()

    asyncio.run(main())


def test_transport_handover_with_delayed_compression() -> None:
    key = generate("ed25519")
    config = TransportConfig(algorithms=Preferences(compression=("zlib@openssh.com",)))

    async def main() -> None:
        lb, cerr, serr = await loopback([key], client_config=config, server_config=config)
        assert lb is not None, (cerr, serr)
        task = asyncio.create_task(_server_auth(lb.server))
        auth = asyncio.create_task(authenticate(lb.client, "alice"))
        await task
        # at USERAUTH_SUCCESS: compression started, nothing compressed yet
        server = await _hand_over(lb, config, key)
        await auth
        assert server._out.compressor is not None and server._in.decompressor is not None
        big = bytes(200000)
        assert await asyncio.wait_for(lb.client.ping(big), 10) == big
        await asyncio.wait_for(lb.client.rekey(), 10)
        await _traffic(lb)
        await asyncio.wait_for(server.rekey(), 10)
        assert await asyncio.wait_for(lb.client.ping(big), 10) == big
        await lb.close()

    asyncio.run(main())


def test_compressed_stream_is_not_exported() -> None:
    key = generate("ed25519")
    config = TransportConfig(algorithms=Preferences(compression=("zlib@openssh.com",)))

    async def main() -> None:
        lb, cerr, serr = await loopback([key], client_config=config, server_config=config)
        assert lb is not None, (cerr, serr)
        task = asyncio.create_task(_server_auth(lb.server))
        await authenticate(lb.client, "alice")
        await task
        await _traffic(lb, 1)
        await asyncio.wait_for(lb.server.stop_reading(), 10)
        with pytest.raises(InvalidArgument):
            lb.server.export_state()
        await lb.close()

    asyncio.run(main())


def test_handover_waits_for_a_key_exchange_in_progress() -> None:
    """A rekey in progress when the stop is requested is finished first (the state is
    taken between key exchanges only)."""
    key = generate("ed25519")
    config = TransportConfig()

    async def main() -> None:
        lb, cerr, serr = await loopback([key], client_config=config, server_config=config)
        assert lb is not None, (cerr, serr)
        task = asyncio.create_task(_server_auth(lb.server))
        await authenticate(lb.client, "alice")
        await task
        assert lb.server.kex is not None
        before = lb.server.kex.completed
        lb.server.kex.start()  # our KEXINIT is out: a key exchange is in progress
        assert lb.server.kex.in_progress
        server = await _hand_over(lb, config, key)
        assert server.kex is not None and server.kex.completed == before + 1
        await _traffic(lb)
        await lb.close()

    asyncio.run(main())
