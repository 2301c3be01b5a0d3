"""Forwarding plumbing shared by both roles: channels that carry a byte stream, the relay
between such a channel and a socket, and listeners bound as ssh's channels.c binds them.

The client (protocol/forward_client.py) and the server (protocol/forward_server.py) are
built from these pieces, so -L on one side and tcpip-forward on the other are the same
code: a listener whose accepted connections become channels, and an open handler whose
channels become connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Sequence

from keytools.errors import SshError
from keytools.wire import Writer
from protocol.channels import Channel, ConnectionLayer
from protocol.errors import ChannelOpenFailed

CHUNK = 64 * 1024
OPEN_CONNECT_FAILED = 2
#: the originator ssh claims for channels with no socket (-W): "127.0.0.1", 65535
STDIO_ORIGINATOR = ("127.0.0.1", 65535)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RelayChannel(Channel):
    """A channel the peer opened; ``start`` runs once it is confirmed."""

    def __init__(self, layer: ConnectionLayer, kind: str,
                 start: Callable[[RelayChannel], Awaitable[None]]) -> None:
        super().__init__(layer, layer.allocate(), kind)
        self._start = start
        self.task: asyncio.Task[None] | None = None

    def opened(self) -> None:
        self.task = asyncio.ensure_future(self._start(self))


async def relay(channel: Channel, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Copy both ways until both sides sent EOF (or either broke), then close both."""
    async def up() -> None:
        try:
            while data := await reader.read(CHUNK):
                await channel.write(data)
            channel.send_eof()
        except (OSError, SshError):
            channel.close()

    async def down() -> None:
        try:
            while data := await channel.read():
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, SshError):
            channel.close()

    up_task = asyncio.ensure_future(up())
    closed = asyncio.ensure_future(channel.closed.wait())
    try:
        await down()
        await asyncio.wait({up_task, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        up_task.cancel()
        closed.cancel()
        channel.close()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


class StreamOpenFailed(ChannelOpenFailed):
    """The peer refused our channel ``local_id`` (ssh: "channel N: open failed: ...")."""

    def __init__(self, reason: int, description: str, local_id: int) -> None:
        super().__init__(reason, description)
        self.local_id = local_id


async def open_stream_channel(layer: ConnectionLayer, kind: str, extra: bytes = b"") -> Channel:
    """Open a channel of ``kind`` (StreamOpenFailed if the peer refuses)."""
    channel = Channel(layer, layer.allocate(), kind)
    try:
        return await layer.open_channel(channel, extra)
    except ChannelOpenFailed as exc:
        raise StreamOpenFailed(exc.reason, exc.description, channel.local_id) from None


async def open_direct_tcpip(layer: ConnectionLayer, host: str, port: int,
                            originator: tuple[str, int] = STDIO_ORIGINATOR) -> Channel:
    extra = Writer().string(host).uint32(port).string(originator[0]).uint32(originator[1])
    return await open_stream_channel(layer, "direct-tcpip", extra.getvalue())


async def open_direct_streamlocal(layer: ConnectionLayer, path: str) -> Channel:
    extra = Writer().string(path).string("").uint32(0)
    return await open_stream_channel(layer, "direct-streamlocal@openssh.com", extra.getvalue())


def peer_of(writer: asyncio.StreamWriter) -> tuple[str, int]:
    """The (address, port) of an accepted TCP connection; ("", 0) for unix sockets."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return "", 0


async def connect_target(host: str | None, port: int,
                         path: str | None = None) -> tuple[asyncio.StreamReader,
                                                           asyncio.StreamWriter]:
    """Connect to a forward's target; ChannelOpenFailed "connect failed" with strerror."""
    try:
        if path is not None:
            return await asyncio.open_unix_connection(path, limit=CHUNK * 4)
        assert host is not None
        return await asyncio.open_connection(host, port, limit=CHUNK * 4)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if isinstance(exc, socket.gaierror):
            reason = "Name or service not known" if exc.errno == socket.EAI_NONAME \
                else str(exc.strerror)
        raise ChannelOpenFailed(OPEN_CONNECT_FAILED, reason) from None


def bind_host(listen: str | None, *, gateway_ports: int, is_client: bool,
              notify: Callable[[str], None] | None = None) -> tuple[str | None, bool]:
    """channel_fwd_bind_addr(): (address or None for the loopback, wildcard?).

    ``gateway_ports``: 0 no, 1 yes, 2 clientspecified (server only)."""
    addr: str | None = None
    wildcard = False
    if listen is None:
        wildcard = bool(gateway_ports)
    elif gateway_ports or is_client:
        if listen in ("", "*") or (not is_client and gateway_ports == 1):
            wildcard = True
            if notify is not None and listen not in ("", "0.0.0.0", "*"):
                notify(f"Forwarding listen address \"{listen}\" overridden by server "
                       "GatewayPorts")
        elif listen != "localhost" or listen in ("127.0.0.1", "::1"):
            addr = listen
    elif listen in ("127.0.0.1", "::1"):
        addr = listen
    return addr, wildcard


def guarded(handler: Handler) -> Handler:
    """A connection handler that never ends with an exception (asyncio would print a
    traceback) and closes its socket when cancelled (pyssh exiting)."""
    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.CancelledError, Exception):
            writer.close()

    return run


class BindFailed(SshError):
    """No address of a forward could be bound (the errors were reported already)."""


async def listen_tcp(addr: str | None, wildcard: bool, port: int, handler: Handler, *,
                     report: Callable[[str, bool], None]) -> tuple[list[asyncio.Server], int]:
    """channel_setup_fwd_listener_tcpip(): bind every address of ``addr`` (the loopback
    when None, all when ``wildcard``); port 0 takes the port of the first bind for the
    rest. ``report(message, last)`` gets ssh's "bind [a]:p: reason" lines. Returns the
    servers and the port; BindFailed if nothing bound."""
    flags = socket.AI_PASSIVE if wildcard else 0
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(None if wildcard or addr is None else addr, port,
                                       family=socket.AF_UNSPEC, type=socket.SOCK_STREAM,
                                       flags=flags)
    except socket.gaierror as exc:
        report(f"getaddrinfo: {exc.strerror}", True)
        raise BindFailed(f"cannot listen to port: {port}") from None
    servers: list[asyncio.Server] = []
    allocated = port
    for n, (family, kind, proto, _canon, sockaddr) in enumerate(infos):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host = str(sockaddr[0])
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, allocated, *sockaddr[2:]))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            report(f"bind [{host}]:{allocated}: {exc.strerror or exc}", n == len(infos) - 1)
            continue
        if allocated == 0:
            allocated = sock.getsockname()[1]
        servers.append(await asyncio.start_server(guarded(handler), sock=sock,
                                                  limit=CHUNK * 4))
    if not servers:
        raise BindFailed(f"cannot listen to port: {port}")
    return servers, allocated


async def listen_unix(path: str, handler: Handler, *, unlink: bool = False,
                      mask: int = 0o177) -> asyncio.Server:
    """A unix-socket listener (StreamLocalBindMask 0177, StreamLocalBindUnlink)."""
    if unlink:
        with contextlib.suppress(OSError):
            os.unlink(path)
    old = os.umask(mask)
    try:
        return await asyncio.start_unix_server(guarded(handler), path, limit=CHUNK * 4)
    finally:
        os.umask(old)


async def close_servers(servers: Sequence[asyncio.Server]) -> None:
    for server in servers:
        server.close()
    for server in servers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


__all__ = ["CHUNK", "OPEN_CONNECT_FAILED", "BindFailed", "RelayChannel", "StreamOpenFailed",
           "bind_host", "close_servers", "connect_target", "listen_tcp", "listen_unix",
           "open_direct_streamlocal", "open_direct_tcpip", "open_stream_channel", "peer_of",
           "relay"]
