"""pysshd's side of port forwarding: direct-tcpip / direct-streamlocal channels (the
client's -L, -D, -W) and the tcpip-forward / streamlocal-forward global requests (-R),
decided as sshd's serverloop.c and channels.c decide them.

The key's authorized_keys options (no-port-forwarding, restrict, permitopen=,
permitlisten=) and the certificate's permit-port-forwarding come in the Authorization;
AllowTcpForwarding, AllowStreamLocalForwarding, DisableForwarding, GatewayPorts,
PermitOpen and PermitListen come from the configuration. A refused open gets
"administratively prohibited: open failed", a failed connect "connect failed: <reason>",
as from sshd. Listeners are closed when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable

from keytools.errors import SshError
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.channels import Channel, ConnectionLayer
from protocol.errors import ChannelOpenFailed
from protocol.forward_policy import ForwardPolicy, listen_permitted, open_permitted, policy_of
from protocol.forwarding import (
    BindFailed,
    RelayChannel,
    bind_host,
    connect_target,
    listen_tcp,
    listen_unix,
    open_stream_channel,
    peer_of,
    relay,
)
from protocol.server_auth import Authorization

log = logging.getLogger("pyssh.sshd")

OPEN_ADMINISTRATIVELY_PROHIBITED = 1
IPPORT_RESERVED = 1024


def agent_forwarding_allowed(auth: Authorization, config: object) -> bool:
    """Whether auth-agent-req@openssh.com may be honoured: AllowAgentForwarding,
    DisableForwarding, no-agent-forwarding / restrict, the certificate's extension."""
    return policy_of(config).agent() and auth.permit_agent_forwarding


def _prohibited() -> ChannelOpenFailed:
    return ChannelOpenFailed(OPEN_ADMINISTRATIVELY_PROHIBITED, "open failed")


class ServerForwarding:
    """The forwarding of one authenticated connection."""

    def __init__(self, layer: ConnectionLayer, auth: Authorization, policy: ForwardPolicy,
                 uid: int | None = None) -> None:
        self.layer = layer
        self.auth = auth
        self.policy = policy
        self.uid = os.getuid() if uid is None else uid
        #: (bind address as requested, port as requested) -> listeners, the port in use
        self.listeners: dict[tuple[str, int], tuple[list[asyncio.Server], int]] = {}
        self.unix: dict[str, asyncio.Server] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        layer.open_handlers["direct-tcpip"] = self._direct_tcpip
        layer.open_handlers["direct-streamlocal@openssh.com"] = self._direct_streamlocal
        layer.global_handlers["tcpip-forward"] = self._tcpip_forward
        layer.global_handlers["cancel-tcpip-forward"] = self._cancel_tcpip_forward
        layer.global_handlers["streamlocal-forward@openssh.com"] = self._streamlocal_forward
        layer.global_handlers["cancel-streamlocal-forward@openssh.com"] = \
            self._cancel_streamlocal_forward
        layer.transport.on_close(lambda _exc: self.close())

    # -- direct channels (-L / -D / -W) -------------------------------------------------

    def _direct_tcpip(self, r: Reader) -> Awaitable[Channel | None]:
        host, port = r.text(), r.uint32()
        origin, origin_port = r.text(), r.uint32()
        log.debug("server_request_direct_tcpip: originator %s port %d, target %s port %d",
                  origin, origin_port, host, port)
        if not (self.policy.tcp_local() and self.auth.permit_port_forwarding):
            log.info("refused local port forward: originator %s port %d, target %s port %d",
                     origin, origin_port, host, port)
            raise _prohibited()
        if not open_permitted(self.policy, self.auth.permit_open, host, port):
            log.info("Received request from %s port %d to connect to host %s port %d, "
                     "but the request was denied.", origin, origin_port, host, port)
            raise _prohibited()
        return self._connected("direct-tcpip", host, port, None)

    def _direct_streamlocal(self, r: Reader) -> Awaitable[Channel | None]:
        path = r.text()
        if not (self.policy.streamlocal_local() and self.auth.permit_port_forwarding):
            log.info("refused streamlocal port forward: originator %s port %d, target %s",
                     "", 0, path)
            raise _prohibited()
        if self.auth.permit_open or self.policy.permit_open is not None:
            raise _prohibited()  # sshd: PermitOpen lists make streamlocal opens refused
        return self._connected("direct-streamlocal@openssh.com", None, 0, path)

    async def _connected(self, kind: str, host: str | None, port: int,
                         path: str | None) -> Channel | None:
        reader, writer = await connect_target(host, port, path)

        async def start(channel: RelayChannel) -> None:
            await relay(channel, reader, writer)

        return RelayChannel(self.layer, kind, start)

    # -- remote forwards (-R) -----------------------------------------------------------

    def _debug(self, text: str) -> None:
        """SSH_MSG_DEBUG to the client (ssh shows it with -v)."""
        self.layer.transport.send(Writer().byte(messages.DEBUG).boolean(False).string(text)
                                  .string("").getvalue())

    def _remote_allowed(self) -> bool:
        if not (self.policy.tcp_remote() and self.auth.permit_port_forwarding):
            self._debug("Server has disabled port forwarding.")
            return False
        return True

    async def _tcpip_forward(self, r: Reader) -> bytes | None:
        address, port = r.text(), r.uint32()
        log.debug("server_input_global_request: tcpip-forward listen %s port %d", address,
                  port)
        if not self._remote_allowed() or port > 65535:
            return None
        if port != 0 and port < IPPORT_RESERVED and self.uid != 0:
            log.info("tcpip-forward for privileged port %d refused", port)
            return None
        if not listen_permitted(self.policy, self.auth.permit_listen, address, port):
            log.info("Received request from the client to listen on %s port %d, but the "
                     "request was denied.", address, port)
            return None
        addr, wildcard = bind_host(address, gateway_ports=self.policy.gateway_ports,
                                   is_client=False, notify=self._debug)

        def report(message: str, last: bool) -> None:
            (log.error if last else log.info)("%s", message)

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._forwarded(address, allocated, reader, writer)

        try:
            servers, allocated = await listen_tcp(addr, wildcard, port, accepted,
                                                  report=report)
        except BindFailed as exc:
            log.error("channel_setup_fwd_listener_tcpip: %s", exc)
            return None
        self.listeners[(address, port)] = (servers, allocated)
        if port == 0:
            self.listeners[(address, allocated)] = (servers, allocated)
            return Writer().uint32(allocated).getvalue()
        return b""

    async def _forwarded(self, address: str, port: int, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        origin, origin_port = peer_of(writer)
        extra = Writer().string(address).uint32(port).string(origin).uint32(origin_port)
        try:
            channel = await open_stream_channel(self.layer, "forwarded-tcpip",
                                                extra.getvalue())
        except SshError as exc:
            log.debug("forwarded-tcpip open failed: %s", exc)
            writer.close()
            return
        await relay(channel, reader, writer)

    def _cancel_tcpip_forward(self, r: Reader) -> bytes | None:
        address, port = r.text(), r.uint32()
        found = self.listeners.pop((address, port), None)
        if found is None:
            return None
        servers, _allocated = found
        for key, value in list(self.listeners.items()):
            if value[0] is servers:
                del self.listeners[key]
        for server in servers:
            server.close()
        return b""

    async def _streamlocal_forward(self, r: Reader) -> bytes | None:
        path = r.text()
        if not (self.policy.streamlocal_remote() and self.auth.permit_port_forwarding):
            self._debug("Server has disabled port forwarding.")
            return None
        if self.auth.permit_listen or self.policy.permit_listen is not None:
            return None

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            extra = Writer().string(path).string("").getvalue()
            try:
                channel = await open_stream_channel(
                    self.layer, "forwarded-streamlocal@openssh.com", extra)
            except SshError:
                writer.close()
                return
            await relay(channel, reader, writer)

        try:
            self.unix[path] = await listen_unix(path, accepted)
        except OSError as exc:
            log.error("channel_setup_fwd_listener_streamlocal: bind %s: %s", path,
                      exc.strerror)
            return None
        return b""

    def _cancel_streamlocal_forward(self, r: Reader) -> bytes | None:
        path = r.text()
        server = self.unix.pop(path, None)
        if server is None:
            return None
        server.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        return b""

    def close(self) -> None:
        for servers, _port in self.listeners.values():
            for server in servers:
                server.close()
        self.listeners.clear()
        for path, server in self.unix.items():
            server.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.unix.clear()


def install_server_forwarding(layer: ConnectionLayer, auth: Authorization,
                              config: object) -> ServerForwarding:
    """The hook pysshd's server.py calls for each authenticated connection."""
    return ServerForwarding(layer, auth, policy_of(config))


__all__ = ["ServerForwarding", "agent_forwarding_allowed", "install_server_forwarding"]
