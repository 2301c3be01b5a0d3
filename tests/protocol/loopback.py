"""Our client transport against our server transport over 127.0.0.1 (for tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from keytools.errors import SshError
from keytools.public import PublicKey
from protocol.signer import Signer
from protocol.transport import Role, Transport, TransportConfig

TIMEOUT = 30


@dataclass
class Loopback:
    client: Transport
    server: Transport
    seen_keys: list[PublicKey] = field(default_factory=list)
    listener: asyncio.Server | None = None

    async def close(self) -> None:
        self.client.disconnect()
        self.server.disconnect()
        await asyncio.gather(self.client.wait_closed(), self.server.wait_closed())
        if self.listener is not None:
            self.listener.close()
            await self.listener.wait_closed()


async def loopback(
    host_keys: Sequence[Signer], *, client_config: TransportConfig | None = None,
    server_config: TransportConfig | None = None, server_cls: type[Transport] = Transport,
    accept: bool = True,
) -> tuple[Loopback | None, SshError | None, SshError | None]:
    """Handshake both ends; (loopback, client error, server error)."""
    server_done: asyncio.Future[Transport] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = server_cls(reader, writer, Role.SERVER, server_config, host_keys=host_keys)
        with contextlib.suppress(SshError):
            await server.handshake()
        server_done.set_result(server)

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    seen: list[PublicKey] = []

    async def check(key: PublicKey) -> None:
        seen.append(key)
        if not accept:
            from protocol.errors import HostKeyNotVerified

            raise HostKeyNotVerified()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Transport(reader, writer, Role.CLIENT, client_config, host_key_check=check)
    client_error: SshError | None = None
    async with asyncio.timeout(TIMEOUT):
        try:
            await client.handshake()
        except SshError as exc:
            client_error = exc
        server = await server_done
        if client_error is not None or server.error is not None:
            await asyncio.sleep(0.05)  # let the other side read the DISCONNECT
            errors = client.error, server.error
            client.disconnect()
            server.disconnect()
            listener.close()
            return None, errors[0], errors[1]
    return Loopback(client, server, seen, listener), None, None
