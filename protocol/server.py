"""One pysshd connection: transport, user authentication under LoginGraceTime, sessions.

``Server.run_connection`` serves an accepted socket in the process the listener
(protocol.listener) forked for it: as root with privilege separation (protocol.privsep:
an unprivileged network child, the monitor, the user's own process), otherwise in this
process for the current user. ``start``/``close`` still run an in-process asyncio accept
loop (one task per connection), which tests use. Nothing is shared between connections
but the configuration and the host keys, so a stalled or hostile client holds up only
its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence

from keytools.errors import ConnectionClosed, SshError
from protocol import errors
from protocol.channels import ConnectionLayer
from protocol.host_keys import server_transport_config
from protocol.login import ConnectionInfo
from protocol.penalty import EXIT_AUTH_ATTEMPTED, EXIT_LOGIN_GRACE
from protocol.server_auth import Authorization, TooManyFailures, UserAuthServer
from protocol.server_session import ServerSession, session_opener
from protocol.signer import Signer
from protocol.sshd_config import ServerConfig
from protocol.transport import Role, Transport

log = logging.getLogger("pyssh.sshd")


def _address(sockaddr: object) -> tuple[str, int]:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host = str(sockaddr[0])
        return host.removeprefix("::ffff:") if "." in host else host, int(sockaddr[1])
    return "UNKNOWN", 0


class Server:
    def __init__(self, config: ServerConfig, host_keys: Sequence[Signer]) -> None:
        self.config = config
        self.transport_config = server_transport_config(config)
        self.host_keys = list(host_keys)
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._userauth: UserAuthServer | None = None
        #: how the last pre-auth phase ended: an exit status of protocol.penalty
        self.exit_status = 255
        #: called once a connection has authenticated (the listener's startup pipe)
        self.on_authenticated: Callable[[], None] | None = None

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

    async def _preauth(self, transport: Transport, address: str, port: int,
                       handshake: bool = True) -> Authorization:
        if handshake:
            await transport.handshake()
        auth = UserAuthServer(transport, self.config, address, port,
                              [k.public for k in self.host_keys])
        self._userauth = auth
        return await auth.run()

    async def authenticate(self, transport: Transport, address: str, port: int, *,
                           handshake: bool = True) -> Authorization | None:
        """Version exchange and key exchange (unless another process ran them), then
        user authentication, all under LoginGraceTime. None when the connection ends
        before authentication; ``exit_status`` then says how (protocol.penalty)."""
        grace = self.config.login_grace_time or None
        self.exit_status = 255
        self._userauth = None
        try:
            return await asyncio.wait_for(self._preauth(transport, address, port, handshake),
                                          grace)
        except TimeoutError:
            log.info("Timeout before authentication for %s port %d", address, port)
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR,
                                 "Timeout before authentication")
            self.exit_status = EXIT_LOGIN_GRACE
        except TooManyFailures as exc:
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR, exc.message)
        except SshError as exc:
            # over a privsep relay the network child logs the closed connection
            if handshake or not isinstance(exc, ConnectionClosed):
                log.info("Connection closed by %s port %d [preauth]: %s", address, port, exc)
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR, exc.message)
        if self.exit_status == 255 and self._userauth is not None \
                and getattr(self._userauth, "failures", 0) > 0:
            self.exit_status = EXIT_AUTH_ATTEMPTED
        await transport.wait_closed()
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        """One connection in this process (unprivileged mode); returns the exit status a
        connection process reports to the listener."""
        address, port = _address(writer.get_extra_info("peername"))
        local, local_port = _address(writer.get_extra_info("sockname"))
        log.debug("Connection from %s port %d on %s port %d", address, port, local, local_port)
        transport = Transport(reader, writer, Role.SERVER, self.transport_config,
                              host_keys=self.host_keys)
        auth = await self.authenticate(transport, address, port)
        if auth is None:
            return self.exit_status
        if self.on_authenticated is not None:
            self.on_authenticated()
        await self.serve(transport, auth, ConnectionInfo(address, port, local, local_port))
        return 0

    async def serve(self, transport: Transport, auth: Authorization,
                    conn: ConnectionInfo) -> None:
        """The connection protocol for an authenticated user, until the connection ends.
        In root mode this runs in the user's own process, over the transport the
        network child handed over (protocol.privsep).
        Hooks for the connection layer (forwarding, keepalives) belong here."""
        layer = ConnectionLayer(transport)
        connection = conn.ssh_connection
        sessions: list[ServerSession] = []
        layer.open_handlers["session"] = session_opener(layer, auth, self.config,
                                                        connection, sessions)
        from protocol.forward_server import install_server_forwarding  # port forwarding
        install_server_forwarding(layer, auth, self.config)
        try:
            await transport.wait_closed()
        finally:
            for session in sessions:
                if session.task is not None and not session.task.done():
                    session.task.cancel()
            log.info("Disconnected from user %s %s port %d", auth.user, conn.client_address,
                     conn.client_port)

    def run_connection(self, sock: socket.socket,
                       on_authenticated: Callable[[], None] | None = None) -> int:
        """Serve one accepted connection in this (forked) process: with privilege
        separation when we are root, in-process otherwise. Returns the exit status."""
        address, port = _address(sock.getpeername())
        local, local_port = _address(sock.getsockname())
        conn = ConnectionInfo(address, port, local, local_port)
        if os.geteuid() == 0:
            from protocol.privsep import run_connection

            return run_connection(self, sock, conn, on_authenticated)
        self.on_authenticated = on_authenticated

        async def main() -> int:
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                return await self.handle(reader, writer)
            finally:
                writer.close()

        return asyncio.run(main())
