"""Strict key exchange (kex-strict-*-v00@openssh.com, the Terrapin fix), both roles.

With strict kex negotiated, any message out of place in the initial key exchange is
fatal: an IGNORE (or DEBUG, UNIMPLEMENTED, EXT_INFO, a service request) slipped in before
NEWKEYS, before the peer's KEXINIT, or between the kex messages. Without it (one side
not offering the marker) the transport-generic messages are tolerated as RFC 4253 says.
In-process, one side is a Transport that injects (so its own sequence numbers stay
right). Against the real OpenSSH, a man-in-the-middle proxy on 127.0.0.1 inserts a
plaintext IGNORE before one side's NEWKEYS, the Terrapin attack's first step: real ssh
and real sshd must refuse it from pysshd/pyssh's side and our code from theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keytools.errors import ProtocolError, SshError
from keytools.keyfile import load_private
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.client import accept_any_host_key, connect
from protocol.errors import DisconnectReceived
from protocol.kex import KexInit, Preferences
from protocol.packet import PacketWriter
from protocol.transport import Role, Transport, TransportConfig
from tests.helpers import run, tool_path
from tests.interop.pysshd import USER, PysshdServer, keygen, pysshd_env, start_pysshd
from tests.interop.sshd import SshdServer, sshd_path, start_sshd

TIMEOUT = 20
HOST_KEY = generate("ed25519")

IGNORE = Writer().byte(messages.IGNORE).string(b"terrapin").getvalue()
DEBUG = Writer().byte(messages.DEBUG).boolean(False).string("hi").string("").getvalue()
UNIMPLEMENTED = Writer().byte(messages.UNIMPLEMENTED).uint32(7).getvalue()
EXT_INFO = Writer().byte(messages.EXT_INFO).uint32(0).getvalue()
SERVICE_REQUEST = Writer().byte(messages.SERVICE_REQUEST).string("ssh-userauth").getvalue()
GENERIC = {"IGNORE": IGNORE, "DEBUG": DEBUG, "UNIMPLEMENTED": UNIMPLEMENTED}


def injector(before: int, payload: bytes, *, first_only: bool = True) -> type[Transport]:
    """A Transport that sends ``payload`` right before its first kex message ``before``."""

    class Injector(Transport):
        injected = False

        def send_kex(self, data: bytes) -> None:
            if data[0] == before and not (first_only and self.injected):
                self.injected = True
                self._write(payload)
            super().send_kex(data)

    return Injector


@dataclass
class Outcome:
    client: Transport
    server: Transport
    client_error: SshError | None
    server_error: SshError | None


async def handshake(client_cls: type[Transport] = Transport,
                    server_cls: type[Transport] = Transport, *, client_strict: bool = True,
                    server_strict: bool = True) -> Outcome:
    """Our client and server transports over 127.0.0.1; both handshakes run to the end."""
    server_ready: asyncio.Future[Transport] = asyncio.get_running_loop().create_future()
    server_done = asyncio.Event()
    errors: dict[str, SshError | None] = {"client": None, "server": None}

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = server_cls(reader, writer, Role.SERVER,
                            TransportConfig(strict_kex=server_strict), host_keys=[HOST_KEY])
        server_ready.set_result(server)
        try:
            await server.handshake()
        except SshError as exc:
            errors["server"] = exc
        finally:
            server_done.set()

    async def accept(key: PublicKey) -> None:
        return None

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = client_cls(reader, writer, Role.CLIENT, TransportConfig(strict_kex=client_strict),
                        host_key_check=accept)
    async with asyncio.timeout(TIMEOUT):
        try:
            await client.handshake()
        except SshError as exc:
            errors["client"] = exc
        server = await server_ready
        await server_done.wait()
        # A failure on one side reaches the other as its DISCONNECT, or as a closed socket.
        for _ in range(100):
            if (client.error is None) == (server.error is None):
                break
            await asyncio.sleep(0.01)
    outcome = Outcome(client, server, errors["client"] or client.error,
                      errors["server"] or server.error)
    listener.close()
    return outcome


async def close(o: Outcome) -> None:
    o.client.disconnect()
    o.server.disconnect()
    await asyncio.gather(o.client.wait_closed(), o.server.wait_closed())


def assert_strict_violation(victim: SshError | None, injector_side: SshError | None) -> None:
    """The receiver ends with a strict-kex ProtocolError; the injector hears why."""
    assert isinstance(victim, ProtocolError), victim
    assert "strict KEX violation" in str(victim)
    assert isinstance(injector_side, DisconnectReceived), injector_side
    assert injector_side.reason == 2 and "strict KEX violation" in injector_side.description


# Injection points: before NEWKEYS, before KEXINIT (so it is not packet 0), and in the
# middle of the exchange (before the ECDH init / reply).
POINTS = {
    "before-newkeys": (messages.NEWKEYS, messages.NEWKEYS),
    "before-kexinit": (messages.KEXINIT, messages.KEXINIT),
    "mid-kex": (messages.KEX_ECDH_INIT, messages.KEX_ECDH_REPLY),
}


@pytest.mark.parametrize("message", list(GENERIC))
@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("role", ["server", "client"])
def test_strict_kex_makes_out_of_place_messages_fatal(role: str, point: str,
                                                      message: str) -> None:
    client_msg, server_msg = POINTS[point]

    async def main() -> None:
        if role == "server":  # the server injects, our client must refuse
            o = await handshake(server_cls=injector(server_msg, GENERIC[message]))
            assert_strict_violation(o.client_error, o.server_error)
        else:  # the client injects, our server must refuse
            o = await handshake(client_cls=injector(client_msg, GENERIC[message]))
            assert_strict_violation(o.server_error, o.client_error)
        await close(o)

    asyncio.run(main())


@pytest.mark.parametrize("message", list(GENERIC))
@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize(("role", "strict_side"), [
    ("server", "client"), ("server", "server"), ("client", "client"), ("client", "server"),
])
def test_without_strict_kex_generic_messages_are_tolerated(
        role: str, strict_side: str, point: str, message: str) -> None:
    """Either side not offering strict kex: IGNORE/DEBUG/UNIMPLEMENTED anywhere in the
    initial exchange are fine, and the connection works afterwards."""
    client_msg, server_msg = POINTS[point]

    async def main() -> None:
        kwargs = {"client_strict": strict_side != "client",
                  "server_strict": strict_side != "server"}
        if role == "server":
            o = await handshake(server_cls=injector(server_msg, GENERIC[message]), **kwargs)
        else:
            o = await handshake(client_cls=injector(client_msg, GENERIC[message]), **kwargs)
        assert (o.client_error, o.server_error) == (None, None)
        assert o.client.kex is not None and not o.client.kex.strict
        assert o.server.kex is not None and not o.server.kex.strict
        await o.client.request_service("ssh-userauth")  # keys and sequence numbers agree
        await o.client.rekey()
        await close(o)

    asyncio.run(main())


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("payload", [EXT_INFO, SERVICE_REQUEST], ids=["ext-info", "service"])
def test_non_generic_messages_before_newkeys_are_always_fatal(payload: bytes,
                                                              strict: bool) -> None:
    async def main() -> None:
        o = await handshake(client_cls=injector(messages.NEWKEYS, payload),
                            client_strict=strict)
        assert isinstance(o.server_error, ProtocolError), o.server_error
        assert isinstance(o.client_error, DisconnectReceived)
        await close(o)

    asyncio.run(main())


@pytest.mark.parametrize("role", ["server", "client"])
def test_second_kexinit_or_early_newkeys_is_fatal(role: str) -> None:
    """A KEXINIT during the initial exchange, or NEWKEYS before the exchange's reply."""

    async def main() -> None:
        if role == "server":
            again = KexInit.build(Preferences()).payload
            o = await handshake(server_cls=injector(messages.KEX_ECDH_REPLY, again))
            assert isinstance(o.client_error, ProtocolError), o.client_error
        else:
            early = injector(messages.KEX_ECDH_INIT, bytes([messages.NEWKEYS]))
            o = await handshake(client_cls=early)
            assert isinstance(o.server_error, ProtocolError), o.server_error
        await close(o)

    asyncio.run(main())


# -- the real OpenSSH, through a proxy that injects ------------------------------------------


class InjectingProxy:
    """127.0.0.1 proxy to ``upstream``; in the ``toward`` direction ("client" or
    "server") it inserts a plaintext IGNORE packet before the first NEWKEYS."""

    def __init__(self, upstream: int, toward: str) -> None:
        self.upstream = upstream
        self.toward = toward
        self.injected = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, c_reader: asyncio.StreamReader,
                      c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        pumps = [
            self._pump(s_reader, c_writer, inject=self.toward == "client"),
            self._pump(c_reader, s_writer, inject=self.toward == "server"),
        ]
        with contextlib.suppress(Exception):
            await asyncio.gather(*pumps)
        for w in (c_writer, s_writer):
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    inject: bool) -> None:
        try:
            if inject:
                writer.write(await reader.readuntil(b"\n"))  # the identification line
                while True:
                    head = await reader.readexactly(4)
                    body = await reader.readexactly(Reader(head).uint32())
                    packet = Reader(body)
                    packet.byte()  # padding length
                    if packet.byte() == messages.NEWKEYS:
                        writer.write(PacketWriter().encode(IGNORE))
                        self.injected = True
                        writer.write(head + body)
                        break
                    writer.write(head + body)
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SshdServer,
                                                                        PysshdServer,
                                                                        PrivateKey]]:
    d = tmp_path_factory.mktemp("terrapin")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "host")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", d / "id")
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    sshd = start_sshd(d / "sshd", f"AuthorizedKeysFile {d / 'authorized_keys'}\n",
                      host_key=d / "host")
    try:
        pysshd = start_pysshd(d, f"HostKey {d / 'host'}\n"
                                 f"AuthorizedKeysFile {d / 'authorized_keys'}\n")
    except BaseException:
        sshd.stop()
        raise
    try:
        yield sshd, pysshd, load_private(str(d / "id"), None)[0]
    finally:
        pysshd.stop()
        sshd.stop()


def _openssh_knows_strict_kex() -> bool:
    return b"kex-strict-s-v00@openssh.com" in Path(sshd_path()).read_bytes()


def real_ssh(port: int, directory: Path) -> tuple[int, str]:
    env = pysshd_env()
    env["HOME"] = str(directory)
    done = run([tool_path("ssh"), "-F", "/dev/null", "-p", str(port), "-i",
                str(directory / "id"), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=10", f"{USER}@127.0.0.1", "echo ok"], env=env, timeout=30)
    return done.returncode, done.stderr


@pytest.mark.parametrize("toward", ["client", "server"])
def test_real_ssh_and_pysshd_refuse_an_injected_ignore(
        servers: tuple[SshdServer, PysshdServer, PrivateKey], toward: str) -> None:
    if not _openssh_knows_strict_kex():
        pytest.skip("the installed OpenSSH predates strict kex")
    _, pysshd, _ = servers

    async def main() -> tuple[int, str, bool]:
        proxy = InjectingProxy(pysshd.port, toward)
        await proxy.start()
        try:
            code, err = await asyncio.to_thread(real_ssh, proxy.port, pysshd.directory)
        finally:
            await proxy.stop()
        return code, err, proxy.injected

    code, err, injected = asyncio.run(main())
    assert injected, err
    assert code == 255
    # Whichever end received the IGNORE names the violation (ssh says it or hears it).
    assert "strict KEX violation" in err or "strict KEX" in pysshd.log_text(), \
        err + pysshd.log_text()[-2000:]
    # The same without the proxy logs in.
    assert real_ssh(pysshd.port, pysshd.directory)[0] == 0


@pytest.mark.parametrize("toward", ["client", "server"])
def test_pyssh_and_real_sshd_refuse_an_injected_ignore(
        servers: tuple[SshdServer, PysshdServer, PrivateKey], toward: str) -> None:
    if not _openssh_knows_strict_kex():
        pytest.skip("the installed sshd predates strict kex")
    sshd, _, user = servers

    async def main() -> None:
        proxy = InjectingProxy(sshd.port, toward)
        await proxy.start()
        try:
            with pytest.raises(SshError) as info:
                await connect("127.0.0.1", proxy.port, username="root", keys=[user],
                              known_host_check=accept_any_host_key, timeout=TIMEOUT)
        finally:
            await proxy.stop()
        assert proxy.injected
        err = info.value
        if toward == "client":  # we received it
            assert isinstance(err, ProtocolError) and "strict KEX violation" in str(err)
        else:  # sshd received it and told us
            assert isinstance(err, DisconnectReceived) or "strict KEX" in sshd.log_text()
        assert "strict KEX" in str(err) or "strict KEX" in sshd.log_text()

    asyncio.run(main())
