"""The library entry point for a client: ``connect()`` and a ``Connection`` that runs
commands and opens sessions (asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import NamedTuple

from keytools.errors import ConnectionClosed, ConnectionTimeout, SshError
from keytools.public import PublicKey
from protocol.auth import AuthResult, authenticate
from protocol.channels import EXTENDED_STDERR, ConnectionLayer, SessionChannel
from protocol.errors import ConnectFailed, HostKeyNotVerified
from protocol.signer import Signer
from protocol.transport import Role, Transport, TransportConfig

#: Decide about a server's host key: (host, port, key) -> accept?
HostKeyCheck = Callable[[str, int, PublicKey], bool | Awaitable[bool]]
STREAM_LIMIT = 1 << 20


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

    def __init__(self, transport: Transport, host: str, port: int, auth: AuthResult) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.auth = auth
        self.channels = ConnectionLayer(transport)

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
        await self.transport.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


async def connect(
    host: str, port: int = 22, *, username: str, known_host_check: HostKeyCheck,
    keys: Sequence[Signer] = (), password: str | None = None,
    config: TransportConfig | None = None, timeout: float | None = 30.0,
) -> Connection:
    """Connect, check the host key, authenticate; ``timeout`` bounds all of it."""

    async def check(key: PublicKey) -> None:
        verdict = known_host_check(host, port, key)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if not verdict:
            raise HostKeyNotVerified()

    transport: Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ConnectFailed(host, port, reason) from None
            transport = Transport(reader, writer, Role.CLIENT, config, host_key_check=check)
            await transport.handshake()
            auth = await authenticate(transport, username, keys=keys, password=password)
    except TimeoutError:
        await _abandon(transport)
        raise ConnectionTimeout() from None
    except SshError:
        await _abandon(transport)
        raise
    return Connection(transport, host, port, auth)


async def _abandon(transport: Transport | None) -> None:
    """Say goodbye (if the connection still works) and wait for the reader to end."""
    if transport is not None:
        transport.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await transport.wait_closed()
