"""Hostile packets at every state of a live connection, against our client and our server.

A peer on 127.0.0.1 (raw bytes early on, then one of our own transports that misbehaves
once) sends random or mutated data at: the version exchange, KEXINIT, the key exchange
method messages, NEWKEYS, the service request, user authentication, and channel
messages after authentication. The side under test must end with one of the project's
own errors (keytools.errors.SshError) or carry on; it must never raise anything else
(nor turn a bug into "unexpected internal error", nor leave a task exception behind),
and it must finish promptly once the peer hangs up. A packet length field beyond
256 KiB is refused as soon as it is read, with nothing allocated for it.

tests/fuzz/test_fuzz_transport.py covers the parsers one at a time; this drives them
through the real reader loop, with the real state machine around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from keytools.errors import ConnectionCorrupt, InvalidArgument, SshError
from keytools.private import generate
from keytools.public import PublicKey
from keytools.wire import Writer
from protocol import messages
from protocol.kex import KexInit, Preferences
from protocol.packet import MAX_PACKET, PacketWriter
from protocol.transport import Role, Transport, TransportConfig
from tests.fuzz.mutations import mutated_from

HOST_KEY = generate("ed25519")
USER_KEY = generate("ed25519")
BANNER = b"SSH-2.0-Fuzz_1.0\r\n"
#: how long the side under test may take to finish once the peer has hung up
END_TIMEOUT = 3.0
#: how long a misbehaving peer stays before hanging up
LINGER = 0.05
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEX_NAMES = ("curve25519-sha256", "diffie-hellman-group-exchange-sha256", "ecdh-sha2-nistp256",
             "mlkem768x25519-sha256")
#: a cheap group for the group exchange
GEX_PREFS_KEX = "diffie-hellman-group-exchange-sha256"


class Watch(logging.Handler):
    """Collects what must never happen: a task exception that is not an SshError, and the
    transport's own "reader failed" log of an unexpected exception."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None:
            self.problems.append(self.format(record))

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        exc = context.get("exception")
        if isinstance(exc, SshError | asyncio.CancelledError | ConnectionError):
            return
        self.problems.append(f"{context.get('message')}: {exc!r}")


async def guarded(body: Callable[[Watch], Awaitable[None]]) -> None:
    watch = Watch()
    logger = logging.getLogger("pyssh")
    logger.addHandler(watch)
    asyncio.get_running_loop().set_exception_handler(watch.loop_handler)
    try:
        await body(watch)
    finally:
        logger.removeHandler(watch)
    assert not watch.problems, watch.problems


def run(body: Callable[[Watch], Awaitable[None]]) -> None:
    asyncio.run(guarded(body))


def assert_clean(*transports: Transport) -> None:
    for t in transports:
        assert t.error is None or isinstance(t.error, SshError), repr(t.error)
        if t.error is not None:
            assert "unexpected internal error" not in t.error.message, t.error.message


async def settle(op: Awaitable[object] | None) -> BaseException | None:
    """Await the operation under test; its exception, which must be an SshError."""
    if op is None:
        return None
    try:
        async with asyncio.timeout(END_TIMEOUT):
            await op
    except TimeoutError:
        raise AssertionError("the side under test hung after the peer hung up") from None
    except SshError as exc:
        return exc
    return None


async def tcp_pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter,
                              asyncio.StreamReader, asyncio.StreamWriter]:
    got: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
        asyncio.get_running_loop().create_future()

    async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.set_result((r, w))

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    r2, w2 = await got
    listener.close()
    return r1, w1, r2, w2


async def accept_key(key: PublicKey) -> None:
    return None


def make(role: Role, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
         cls: type[Transport] = Transport, kex: str = "curve25519-sha256") -> Transport:
    config = TransportConfig(algorithms=Preferences(kex=(kex,)))
    if role is Role.SERVER:
        return cls(reader, writer, role, config, host_keys=[HOST_KEY])
    return cls(reader, writer, role, config, host_key_check=accept_key)


def plain_packet(payload: bytes) -> bytes:
    return PacketWriter().encode(payload)


KEXINIT = KexInit.build(Preferences()).payload
ECDH_INIT = Writer().byte(messages.KEX_ECDH_INIT).string(os.urandom(32)).getvalue()
EARLY_SAMPLES = [
    BANNER,
    BANNER + plain_packet(KEXINIT),
    BANNER + plain_packet(KEXINIT) + plain_packet(ECDH_INIT),
    b"pre-banner line\r\n" + BANNER + plain_packet(KEXINIT),
]


# -- version exchange and KEXINIT: raw bytes ------------------------------------------------


@FAST
@given(st.sampled_from([Role.CLIENT, Role.SERVER]),
       st.one_of(st.binary(max_size=400), mutated_from(EARLY_SAMPLES)))
@example(Role.CLIENT, BANNER + (2**31).to_bytes(4, "big") + bytes(64))
@example(Role.SERVER, BANNER + (2**32 - 1).to_bytes(4, "big") + bytes(64))
def test_version_exchange_and_kexinit(role: Role, data: bytes) -> None:
    async def body(watch: Watch) -> None:
        r1, w1, _, w2 = await tcp_pair()
        victim = make(role, r1, w1)
        w2.write(data)
        await w2.drain()
        await asyncio.sleep(LINGER)
        w2.close()
        err = await settle(victim.handshake())
        assert err is not None  # half a handshake and a hang-up can never succeed
        assert_clean(victim)
        victim.disconnect()
        await victim.wait_closed()

    run(body)


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
@pytest.mark.parametrize("length", [2**31, 2**32 - 1, MAX_PACKET + 1, 2**27 + 1])
def test_huge_length_refused_before_reading(role: Role, length: int) -> None:
    """The peer stays connected, so nothing but the length check can end this."""

    async def body(watch: Watch) -> None:
        r1, w1, _, w2 = await tcp_pair()
        victim = make(role, r1, w1)
        tracemalloc.start()
        try:
            w2.write(BANNER + length.to_bytes(4, "big") + bytes(60))
            err = await settle(victim.handshake())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert isinstance(err, ConnectionCorrupt) and "Bad packet length" in str(err)
        assert peak < 4 * 1024 * 1024  # buffers and key exchange only, never ``length``
        assert victim._in.buffered < 4096
        w2.close()
        await victim.wait_closed()

    run(body)


# -- the key exchange: our own peer, one kex message mutated --------------------------------


#: mutations.py's edits, drawn before the message exists (its length varies from run to
#: run with the random key shares, so the draw must not depend on it): (op, where, value)
Edit = tuple[str, int, int]
EDITS = st.lists(st.tuples(
    st.sampled_from(("flip", "set", "insert", "delete", "truncate", "length")),
    st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)
_LENGTHS = (0, 1, 3, 8, 255, 0x7FFFFFFF, 0xFFFFFFFF, 0x8000001)


def apply_edits(base: bytes, edits: list[Edit]) -> bytes:
    data = bytearray(base)
    for op, where, value in edits:
        pos = where % max(1, len(data))
        if op == "flip" and data:
            data[pos] ^= value or 1
        elif op == "set" and data:
            data[pos] = (0, 0xFF, 0x7F, 0x80, 1)[value % 5]
        elif op == "insert":
            data[pos:pos] = bytes([value]) * (1 + value % 12)
        elif op == "delete" and data:
            del data[pos : pos + 1 + value % 12]
        elif op == "truncate":
            del data[pos:]
        elif op == "length" and len(data) >= pos + 4:
            data[pos : pos + 4] = _LENGTHS[value % len(_LENGTHS)].to_bytes(4, "big")
    return bytes(data)


def misbehaving(target: int, edits: list[Edit] | None) -> type[Transport]:
    """A Transport that replaces its first kex message numbered ``target`` by an edited
    copy (NEWKEYS included; its keys still switch as if it had been sent)."""

    class Mutant(Transport):
        done = False

        def send_kex(self, payload: bytes) -> None:
            if payload[0] == target and not self.done and edits is not None:
                self.done = True
                with contextlib.suppress(InvalidArgument):
                    self._write(apply_edits(payload, edits))
                return
            super().send_kex(payload)

    return Mutant


CLIENT_KEX = (messages.KEXINIT, messages.KEX_ECDH_INIT, messages.KEX_DH_GEX_REQUEST,
              messages.KEX_DH_GEX_INIT, messages.NEWKEYS)
SERVER_KEX = (messages.KEXINIT, messages.KEX_ECDH_REPLY, messages.KEX_DH_GEX_GROUP,
              messages.KEX_DH_GEX_REPLY, messages.NEWKEYS)


@FAST
@given(st.sampled_from([Role.CLIENT, Role.SERVER]), st.sampled_from(KEX_NAMES),
       st.integers(0, 4), EDITS)
def test_key_exchange_messages(role: Role, kex: str, which: int, edits: list[Edit]) -> None:
    """``role`` is the side under test; the peer mutates one of its kex messages."""
    peer_role = Role.SERVER if role is Role.CLIENT else Role.CLIENT
    target = (SERVER_KEX if peer_role is Role.SERVER else CLIENT_KEX)[which]

    async def body(watch: Watch) -> None:
        r1, w1, r2, w2 = await tcp_pair()
        victim = make(role, r1, w1, kex=kex)
        peer = make(peer_role, r2, w2, misbehaving(target, edits), kex=kex)
        peer_task = asyncio.create_task(peer.handshake())
        victim_task = asyncio.create_task(victim.handshake())
        await asyncio.wait([victim_task], timeout=0.3)
        peer.disconnect()
        peer_task.cancel()
        await settle(victim_task)
        with contextlib.suppress(BaseException):
            await peer_task
        assert_clean(victim)
        victim.disconnect()
        await asyncio.gather(victim.wait_closed(), peer.wait_closed())

    run(body)


@pytest.mark.parametrize("kex", KEX_NAMES)
@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
def test_harness_without_mutation_connects(role: Role, kex: str) -> None:
    """The same set-up with nothing mutated completes: the mutations above really land
    in a working key exchange."""

    async def body(watch: Watch) -> None:
        r1, w1, r2, w2 = await tcp_pair()
        peer_role = Role.SERVER if role is Role.CLIENT else Role.CLIENT
        victim = make(role, r1, w1, kex=kex)
        peer = make(peer_role, r2, w2, misbehaving(messages.NEWKEYS, None), kex=kex)
        async with asyncio.timeout(END_TIMEOUT):
            await asyncio.gather(victim.handshake(), peer.handshake())
        assert victim.kex is not None and victim.kex.algorithms is not None
        assert victim.kex.algorithms.kex == kex
        victim.disconnect()
        peer.disconnect()
        await asyncio.gather(victim.wait_closed(), peer.wait_closed())

    run(body)


# -- after NEWKEYS: encrypted, mutated messages of the state's kind --------------------------


async def keyed_pair() -> tuple[Transport, Transport]:
    """A client and a server transport after a good key exchange."""
    r1, w1, r2, w2 = await tcp_pair()
    client, server = make(Role.CLIENT, r1, w1), make(Role.SERVER, r2, w2)
    await asyncio.gather(client.handshake(), server.handshake())
    return client, server


def inject(peer: Transport, payload: bytes) -> None:
    """Frame and encrypt ``payload`` with the peer's keys, bypassing its own checks."""
    with contextlib.suppress(InvalidArgument, SshError):
        peer._write(payload)


def _w() -> Writer:
    return Writer()


SERVICE = [
    _w().byte(messages.SERVICE_REQUEST).string("ssh-userauth").getvalue(),
    _w().byte(messages.SERVICE_ACCEPT).string("ssh-userauth").getvalue(),
    _w().byte(messages.EXT_INFO).uint32(1).string("server-sig-algs").string("ssh-ed25519")
    .getvalue(),
    _w().byte(messages.PING).string(b"x").getvalue(),
    _w().byte(messages.DISCONNECT).uint32(11).string("bye").string("").getvalue(),
    _w().byte(messages.DEBUG).boolean(True).string("d").string("").getvalue(),
]
_PK = USER_KEY.public.blob()
USERAUTH_REQUESTS = [
    _w().byte(messages.USERAUTH_REQUEST).string("u").string("ssh-connection").string("none")
    .getvalue(),
    _w().byte(messages.USERAUTH_REQUEST).string("u").string("ssh-connection")
    .string("publickey").boolean(False).string("ssh-ed25519").string(_PK).getvalue(),
    _w().byte(messages.USERAUTH_REQUEST).string("u").string("ssh-connection")
    .string("publickey").boolean(True).string("ssh-ed25519").string(_PK)
    .string(_w().string("ssh-ed25519").string(bytes(64)).getvalue()).getvalue(),
    _w().byte(messages.USERAUTH_REQUEST).string("u").string("ssh-connection")
    .string("password").boolean(False).string("pw").getvalue(),
    _w().byte(messages.USERAUTH_REQUEST).string("u").string("ssh-connection")
    .string("keyboard-interactive").string("").string("").getvalue(),
]
USERAUTH_REPLIES = [
    _w().byte(messages.USERAUTH_FAILURE).name_list(["publickey", "password"]).boolean(False)
    .getvalue(),
    _w().byte(messages.USERAUTH_SUCCESS).getvalue(),
    _w().byte(messages.USERAUTH_BANNER).string("hello\n").string("").getvalue(),
    _w().byte(messages.USERAUTH_PK_OK).string("ssh-ed25519").string(_PK).getvalue(),
    _w().byte(messages.USERAUTH_INFO_REQUEST).string("n").string("i").string("")
    .uint32(1).string("Password: ").boolean(False).getvalue(),
]
CHANNEL = [
    _w().byte(messages.CHANNEL_OPEN).string("session").uint32(5).uint32(65536).uint32(32768)
    .getvalue(),
    _w().byte(messages.CHANNEL_OPEN_CONFIRMATION).uint32(0).uint32(5).uint32(65536)
    .uint32(32768).getvalue(),
    _w().byte(messages.CHANNEL_OPEN_FAILURE).uint32(0).uint32(1).string("no").string("")
    .getvalue(),
    _w().byte(messages.CHANNEL_WINDOW_ADJUST).uint32(0).uint32(0xFFFFFFFF).getvalue(),
    _w().byte(messages.CHANNEL_DATA).uint32(0).string(b"data").getvalue(),
    _w().byte(messages.CHANNEL_EXTENDED_DATA).uint32(0).uint32(1).string(b"err").getvalue(),
    _w().byte(messages.CHANNEL_EOF).uint32(0).getvalue(),
    _w().byte(messages.CHANNEL_CLOSE).uint32(0).getvalue(),
    _w().byte(messages.CHANNEL_REQUEST).uint32(0).string("exit-status").boolean(False)
    .uint32(3).getvalue(),
    _w().byte(messages.CHANNEL_REQUEST).uint32(0).string("exec").boolean(True)
    .string("true").getvalue(),
    _w().byte(messages.CHANNEL_SUCCESS).uint32(0).getvalue(),
    _w().byte(messages.CHANNEL_FAILURE).uint32(0).getvalue(),
    _w().byte(messages.GLOBAL_REQUEST).string("keepalive@openssh.com").boolean(True)
    .getvalue(),
    _w().byte(messages.REQUEST_SUCCESS).getvalue(),
    _w().byte(messages.REQUEST_FAILURE).getvalue(),
]


def hostile(samples: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    """One to three messages: mutated from ``samples``, or just random bytes."""
    return st.lists(st.one_of(mutated_from(samples), st.sampled_from(samples),
                              st.binary(min_size=1, max_size=80)), min_size=1, max_size=3)


@dataclass
class Scene:
    """The side under test, its peer, and the operation (if any) the victim is running."""

    victim: Transport
    peer: Transport
    op: Awaitable[object] | None = None
    extra: list[object] = field(default_factory=list)


async def service_scene(role: Role) -> Scene:
    client, server = await keyed_pair()
    if role is Role.CLIENT:
        return Scene(client, server, asyncio.ensure_future(client.request_service("ssh-userauth")))
    return Scene(server, client)


async def userauth_scene(role: Role, tmp: Path) -> Scene:
    from protocol.auth import authenticate
    from protocol.server_auth import UserAuthServer
    from protocol.sshd_config import ServerConfig

    client, server = await keyed_pair()
    if role is Role.CLIENT:
        server.subscribe([messages.USERAUTH_REQUEST])  # the peer: silent but for our junk
        op = asyncio.ensure_future(authenticate(client, "u", keys=[USER_KEY], password="pw"))
        return Scene(client, server, op)
    keys = tmp / "authorized_keys"
    keys.write_text(USER_KEY.public.openssh() + "\n")
    config = ServerConfig(authorized_keys_files=(str(keys),), max_auth_tries=3)
    auth = UserAuthServer(server, config, "127.0.0.1", 1, [HOST_KEY.public])
    client.send(_w().byte(messages.SERVICE_REQUEST).string("ssh-userauth").getvalue())
    return Scene(server, client, asyncio.ensure_future(auth.run()))


async def channel_scene(role: Role) -> Scene:
    from protocol.channels import Channel, ConnectionLayer

    client, server = await keyed_pair()
    client.authenticated = server.authenticated = True  # as after USERAUTH_SUCCESS
    layers = ConnectionLayer(client), ConnectionLayer(server)
    layers[1].open_handlers["session"] = \
        lambda r: Channel(layers[1], layers[1].allocate(), "session")
    channel = await layers[0].open_session()
    victim, peer = (client, server) if role is Role.CLIENT else (server, client)
    op = asyncio.ensure_future(channel.read_all()) if role is Role.CLIENT else None
    return Scene(victim, peer, op, [layers, channel])


STATES = {"service": SERVICE, "userauth": USERAUTH_REQUESTS, "channel": CHANNEL}


@FAST
@given(st.sampled_from([Role.CLIENT, Role.SERVER]), st.sampled_from(list(STATES)),
       st.data())
def test_after_key_exchange(tmp_path_factory: pytest.TempPathFactory, role: Role, state: str,
                            data: st.DataObject) -> None:
    samples = STATES[state]
    if state == "userauth" and role is Role.CLIENT:
        samples = USERAUTH_REPLIES
    payloads = data.draw(hostile(samples), label="injected")
    assume(all(payloads))
    tmp = tmp_path_factory.mktemp("fuzzauth") if state == "userauth" else Path()

    async def body(watch: Watch) -> None:
        async with asyncio.timeout(10):
            if state == "service":
                scene = await service_scene(role)
            elif state == "userauth":
                scene = await userauth_scene(role, tmp)
            else:
                scene = await channel_scene(role)
        for payload in payloads:
            inject(scene.peer, payload)
        await asyncio.sleep(LINGER)
        scene.peer.disconnect()
        await settle(scene.op)
        assert_clean(scene.victim)
        scene.victim.disconnect()
        async with asyncio.timeout(END_TIMEOUT):
            await asyncio.gather(scene.victim.wait_closed(), scene.peer.wait_closed())

    run(body)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([Role.CLIENT, Role.SERVER]), st.binary(min_size=1, max_size=300))
def test_raw_bytes_into_the_encrypted_stream(role: Role, junk: bytes) -> None:
    """Garbage where ciphertext should be: a MAC or length error, a bounded buffer."""

    async def body(watch: Watch) -> None:
        client, server = await keyed_pair()
        victim, peer = (client, server) if role is Role.CLIENT else (server, client)
        peer._writer.write(junk)
        await asyncio.sleep(LINGER)
        peer.disconnect()
        async with asyncio.timeout(END_TIMEOUT):
            await victim.wait_closed()
        assert_clean(victim)
        assert victim._in.buffered <= MAX_PACKET + 1024

    run(body)
