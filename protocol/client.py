"""The library entry point for a client: ``connect()`` and a ``Connection`` that runs
commands and opens sessions (asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import NamedTuple

from keytools.errors import ConnectionClosed, ConnectionTimeout
from keytools.public import PublicKey
from protocol.auth import AuthOptions, AuthResult, AuthUI, authenticate
from protocol.channels import EXTENDED_STDERR, ConnectionLayer, SessionChannel
from protocol.errors import ConnectFailed, HostKeyNotVerified
from protocol.signer import Signer
from protocol.transport import Role, Transport, TransportConfig

#: Decide about a server's host key: (host, port, key) -> accept?
HostKeyCheck = Callable[[str, int, PublicKey], bool | Awaitable[bool]]
STREAM_LIMIT = 1 << 20


class HandshakeTimeout(ConnectionTimeout):
    """Connected, but the server's version line and key exchange did not finish in time
    (ssh: "Connection timed out during banner exchange")."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port


def accept_any_host_key(host: str, port: int, key: PublicKey) -> bool:
    """A HostKeyCheck that trusts every key: for tests only (it defeats host checking)."""
    return True


class RunResult(NamedTuple):
    #: the remote exit status, or None if the command ended without one (a signal)
    exit_status: int | None
    stdout: bytes
    stderr: bytes


class Connection:
    """An authenticated connection."""

    def __init__(self, transport: Transport, host: str, port: int, auth: AuthResult,
                 channels: ConnectionLayer | None = None) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.auth = auth
        self.channels = channels or ConnectionLayer(transport)
        self._on_close: Callable[[], Awaitable[None]] | None = None

    async def open_session(self) -> SessionChannel:
        return await self.channels.open_session()

    async def run(self, command: str | bytes, *, input: bytes = b"") -> RunResult:
        """Run ``command``, send ``input`` then EOF, and collect its output and status."""
        session = await self.open_session()
        await session.exec(command)

        async def feed() -> None:
            # Concurrently with reading: a command like cat stops reading its input
            # while its output waits to be read.
            try:
                if input:
                    await session.write(input)
                session.send_eof()
            except ConnectionClosed:
                if session.error is not None:
                    raise  # the connection died; a command that exited early is fine

        _, stdout, stderr = await asyncio.gather(
            feed(), session.read_all(), session.read_all(EXTENDED_STDERR)
        )
        await session.wait_closed()
        return RunResult(session.exit_status, stdout, stderr)

    async def close(self) -> None:
        try:
            await self.transport.close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                await on_close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


#: Called after the key exchange, before authentication, for the keys to offer (ssh's
#: pubkey_prepare: agent connections are bound to the session then, see agent_keys).
KeyProvider = Callable[[Transport], Sequence[Signer] | Awaitable[Sequence[Signer]]]
#: An already-open byte stream to run SSH over (ProxyCommand's pipes, a -W channel).
StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_stream(host: str, port: int, *, sock: socket.socket | None = None,
                      local_address: str | None = None) -> StreamPair:
    """A TCP connection (or ``sock``), as asyncio streams; ConnectFailed in ssh's words."""
    try:
        if sock is not None:
            return await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)
        local = None if local_address is None else (local_address, 0)
        return await asyncio.open_connection(host, port, limit=STREAM_LIMIT, local_addr=local)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConnectFailed(host, port, reason) from None


async def connect(
    host: str, port: int = 22, *, username: str, known_host_check: HostKeyCheck,
    keys: Sequence[Signer] = (), password: str | None = None,
    config: TransportConfig | None = None, timeout: float | None = 30.0,
    streams: StreamPair | None = None, sock: socket.socket | None = None,
    local_address: str | None = None, auth_options: AuthOptions | None = None,
    ui: AuthUI | None = None, key_provider: KeyProvider | None = None,
    on_close: Callable[[], Awaitable[None]] | None = None,
    setup: Callable[[ConnectionLayer], None] | None = None,
) -> Connection:
    """Connect, check the host key, authenticate; ``timeout`` bounds all of it.

    The transport runs over ``streams`` (an open reader/writer pair, e.g. a
    ProxyCommand's stdout/stdin), over ``sock``, or over a new TCP connection to
    host:port (from ``local_address`` if given). ``key_provider`` supplies the keys
    after the key exchange (in addition to ``keys``); ``on_close`` runs when the
    connection is closed or fails (to stop a proxy process). The connection layer exists
    before authentication ends (a server may send global requests right after success,
    e.g. hostkeys-00@openssh.com); ``setup`` may install handlers on it then."""

    async def check(key: PublicKey) -> None:
        verdict = known_host_check(host, port, key)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if not verdict:
            raise HostKeyNotVerified()

    transport: Transport | None = None
    layer: ConnectionLayer | None = None

    async def login(transport: Transport) -> AuthResult:
        nonlocal layer
        layer = ConnectionLayer(transport)
        if setup is not None:
            setup(layer)
        signers = list(keys)
        if key_provider is not None:
            provided = key_provider(transport)
            if inspect.isawaitable(provided):
                provided = await provided
            signers += provided
        return await authenticate(transport, username, keys=signers, password=password,
                                  options=auth_options, ui=ui)

    connected = False
    try:
        async with asyncio.timeout(timeout):
            if streams is None:
                streams = await open_stream(host, port, sock=sock, local_address=local_address)
            connected = True
            reader, writer = streams
            transport = Transport(reader, writer, Role.CLIENT, config, host_key_check=check)
            await transport.handshake()
            if ui is None:  # nobody is asked anything: the timeout bounds it all
                auth = await login(transport)
        if ui is not None:  # as ssh's ConnectTimeout, not while a person types
            auth = await login(transport)
    except TimeoutError:
        await _abandon(transport, on_close)
        if connected:
            raise HandshakeTimeout(host, port) from None
        raise ConnectionTimeout() from None
    except BaseException:
        await _abandon(transport, on_close)
        raise
    conn = Connection(transport, host, port, auth, layer)
    conn._on_close = on_close
    return conn


async def _abandon(transport: Transport | None,
                   on_close: Callable[[], Awaitable[None]] | None = None) -> None:
    """Say goodbye (if the connection still works) and wait for the reader to end."""
    try:
        if transport is not None:
            transport.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await transport.wait_closed()
    finally:
        if on_close is not None:
            await on_close()
