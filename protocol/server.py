"""pysshd's accept loop: one asyncio task per connection, unprivileged, current user only.

Each connection runs the shared ``Transport`` in server role, then ``UserAuthServer``,
both under LoginGraceTime, then the connection protocol with session channels. Nothing
is shared between connections but the configuration and the host keys, so a stalled
or hostile client holds up only its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence

from keytools.errors import SshError
from keytools.private import PrivateKey
from protocol import errors
from protocol.channels import ConnectionLayer
from protocol.server_auth import Authorization, TooManyFailures, UserAuthServer
from protocol.server_session import ServerSession, session_opener
from protocol.sshd_config import ServerConfig
from protocol.transport import Role, Transport, TransportConfig

log = logging.getLogger("pyssh.sshd")


def _address(sockaddr: object) -> tuple[str, int]:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host = str(sockaddr[0])
        return host.removeprefix("::ffff:") if "." in host else host, int(sockaddr[1])
    return "UNKNOWN", 0


class Server:
    def __init__(self, config: ServerConfig, host_keys: Sequence[PrivateKey]) -> None:
        self.config = config
        self.host_keys = list(host_keys)
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind every listener; fatal ("Cannot bind any address.") only if none binds."""
        for host, port in self.config.listeners():
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                server = await asyncio.start_server(
                    self._accept, host, port, family=family, reuse_address=True)
            except OSError as exc:
                log.error("Bind to port %d on %s failed: %s.", port, host,
                          exc.strerror or exc)
                continue
            self._servers.append(server)
            log.info("Server listening on %s port %d.", host, port)
        if not self._servers:
            raise SshError("Cannot bind any address.")

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self.handle(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _preauth(self, transport: Transport, address: str, port: int) -> Authorization:
        await transport.handshake()
        auth = UserAuthServer(transport, self.config, address, port,
                              [k.public for k in self.host_keys])
        return await auth.run()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address, port = _address(writer.get_extra_info("peername"))
        local, local_port = _address(writer.get_extra_info("sockname"))
        log.debug("Connection from %s port %d on %s port %d", address, port, local, local_port)
        transport = Transport(reader, writer, Role.SERVER, TransportConfig(),
                              host_keys=self.host_keys)
        grace = self.config.login_grace_time or None
        try:
            auth = await asyncio.wait_for(self._preauth(transport, address, port), grace)
        except TimeoutError:
            log.info("Timeout before authentication for %s port %d", address, port)
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR,
                                 "Timeout before authentication")
            await transport.wait_closed()
            return
        except TooManyFailures as exc:
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR, exc.message)
            await transport.wait_closed()
            return
        except SshError as exc:
            log.info("Connection closed by %s port %d [preauth]: %s", address, port, exc)
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR, exc.message)
            await transport.wait_closed()
            return
        layer = ConnectionLayer(transport)
        connection = f"{address} {port} {local} {local_port}"
        sessions: list[ServerSession] = []
        layer.open_handlers["session"] = session_opener(layer, auth, self.config.accept_env,
                                                        connection, sessions)
        try:
            await transport.wait_closed()
        finally:
            for session in sessions:
                if session.task is not None and not session.task.done():
                    session.task.cancel()
            log.info("Disconnected from user %s %s port %d", auth.user, address, port)
