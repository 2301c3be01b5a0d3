"""Property tests of the transport's parsers: arbitrary or mutated input gives the
project's own errors or valid results, never another exception, and never buffers more
than one packet's worth."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keytools.errors import SshError
from keytools.private import generate
from keytools.wire import Writer
from protocol import messages
from protocol.ciphers import CIPHERS, Protection, make_protection
from protocol.kex import KexEngine, KexInit, Preferences
from protocol.packet import MAX_PACKET, PacketReader, PacketWriter
from protocol.version import MAX_OTHER_LINE, VersionReader

_KEYS = {name: (os.urandom(spec.key_len), os.urandom(spec.iv_len))
         for name, spec in CIPHERS.items()}
_MAC_KEY = os.urandom(32)
PROTECTIONS = [None, *CIPHERS]


def protection(name: str | None) -> Protection | None:
    if name is None:
        return None
    key, iv = _KEYS[name]
    mac = None if CIPHERS[name].aead else "hmac-sha2-256-etm@openssh.com"
    return make_protection(name, mac, key, iv, _MAC_KEY)


def decode_all(reader: PacketReader, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while (item := reader.next()) is not None:
                out.append(item)
            # Never more than one packet (plus one read) waits in the buffer.
            assert reader.buffered <= MAX_PACKET + 64 + len(chunk)
    except SshError:
        pass
    for _, payload in out:
        assert 0 < len(payload) < MAX_PACKET
    return out


@settings(max_examples=200)
@given(st.sampled_from(PROTECTIONS), st.lists(st.binary(max_size=300), max_size=12))
def test_packet_reader_on_arbitrary_bytes(name: str | None, chunks: list[bytes]) -> None:
    reader = PacketReader()
    prot = protection(name)
    if prot is not None:
        reader.set_protection(prot)
    decode_all(reader, chunks)


@settings(max_examples=200)
@given(st.sampled_from(PROTECTIONS), st.lists(st.binary(min_size=1, max_size=200), min_size=1,
                                              max_size=5),
       st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_packet_reader_on_mutated_packets(name: str | None, payloads: list[bytes], where: int,
                                          xor: int) -> None:
    writer, reader = PacketWriter(), PacketReader()
    if name is not None:
        writer.set_protection(protection(name))  # type: ignore[arg-type]
        reader.set_protection(protection(name))  # type: ignore[arg-type]
    wire = bytearray(b"".join(writer.encode(p) for p in payloads))
    wire[where % len(wire)] ^= xor
    got = decode_all(reader, [bytes(wire)])
    if xor == 0:
        assert [p for _, p in got] == payloads
    elif name is not None:
        # Under a MAC or AEAD, a flipped bit never yields a changed payload.
        assert all(p == payloads[i] for i, (_, p) in enumerate(got))


@settings(max_examples=300)
@given(st.booleans(), st.lists(st.binary(max_size=400), max_size=10))
def test_version_reader(server: bool, chunks: list[bytes]) -> None:
    reader = VersionReader(server=server)
    try:
        for chunk in chunks:
            version = reader.feed(chunk)
            if version is not None:
                assert version.line.startswith("SSH-")
                assert len(version.line) <= 253
                return
    except SshError:
        return
    assert len(reader._buf) <= MAX_OTHER_LINE + 400


@given(st.binary(max_size=600))
def test_kexinit_parse(data: bytes) -> None:
    with contextlib.suppress(SshError):
        KexInit.parse(bytes([messages.KEXINIT]) + data)


class _Hooks:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_kex(self, payload: bytes) -> None:
        self.sent.append(payload)

    def install_outgoing(self, protection: Any, reset_seq: bool) -> None:
        pass

    def install_incoming(self, protection: Any, reset_seq: bool) -> None:
        pass

    def kex_complete(self, first: bool) -> None:
        pass


_HOST_KEY = generate("ed25519")
KEX_NAMES = ["curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256",
             "diffie-hellman-group-exchange-sha256", "mlkem768x25519-sha256"]


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.sampled_from(KEX_NAMES),
       st.lists(st.tuples(st.integers(min_value=20, max_value=49), st.binary(max_size=200)),
                max_size=4))
def test_kex_engine_on_random_messages(client: bool, kex: str,
                                       msgs: list[tuple[int, bytes]]) -> None:
    """After a valid KEXINIT from the peer, random kex messages only raise SshError."""
    async def accept(key: object) -> None:
        return None

    async def main() -> None:
        prefs = Preferences(kex=(kex,))
        engine = KexEngine(client=client, prefs=prefs, hooks=_Hooks(), client_version="SSH-2.0-a",
                           server_version="SSH-2.0-b", host_keys=[_HOST_KEY],
                           verify_host_key=accept)
        peer = KexInit.build(prefs, ("ssh-ed25519",))
        try:
            await engine.handle(0, peer.payload)
            for seq, (msg, body) in enumerate(msgs, 1):
                await engine.handle(seq, bytes([msg]) + body)
        except SshError:
            pass

    asyncio.run(main())


class _FakeTransport:
    authenticated = True

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def set_handler(self, numbers: Any, handler: Any) -> None:
        self.handler = handler

    def on_close(self, callback: Any) -> None:
        pass

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)

    async def drain(self) -> None:
        pass


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(min_value=80, max_value=100), st.binary(max_size=60)),
                max_size=8))
def test_connection_layer_on_random_messages(msgs: list[tuple[int, bytes]]) -> None:
    from protocol.channels import ConnectionLayer, SessionChannel

    async def main() -> None:
        transport = _FakeTransport()
        layer = ConnectionLayer(transport)  # type: ignore[arg-type]
        channel = SessionChannel(layer, 0)
        layer._channels[0] = channel
        channel.send_window = 100
        channel.remote_max_packet = 100
        try:
            for msg, body in msgs:
                transport.handler(bytes([msg]) + Writer().uint32(0).getvalue() + body)
        except SshError:
            pass

    asyncio.run(main())


@given(st.lists(st.binary(max_size=300), max_size=5))
def test_decompressor_on_arbitrary_bytes(chunks: list[bytes]) -> None:
    from protocol.compression import Decompressor

    d = Decompressor()
    try:
        for chunk in chunks:
            assert 0 < len(d.decompress(chunk)) <= MAX_PACKET
    except SshError:
        pass
