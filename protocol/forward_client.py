"""pyssh's forwarding: -L, -R, -D, -W and -A, as ssh.c's ssh_init_forwarding() and
ssh_init_stdio_forwarding() set them up, with ssh's messages.

``ClientForwarding.start`` binds the local listeners (-L/-D), sends the tcpip-forward
requests (-R) and waits for their replies, so "Allocated port N" and the failure
warnings come before the session starts; with ExitOnForwardFailure a failure ends pyssh
(exit 255). Listeners close when the connection does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Awaitable

from keytools.errors import SshError
from keytools.wire import Reader, Writer
from protocol.agent_forward import enable_agent_forwarding, refuse_agent_channels
from protocol.channels import Channel, ConnectionLayer
from protocol.errors import ChannelOpenFailed
from protocol.forward_spec import Forward, ForwardOptions, forward_options
from protocol.forwarding import (
    CHUNK,
    BindFailed,
    RelayChannel,
    StreamOpenFailed,
    bind_host,
    connect_target,
    listen_tcp,
    listen_unix,
    open_direct_streamlocal,
    open_direct_tcpip,
    peer_of,
    relay,
)
from protocol.ssh_log import Log

EXIT_FAILURE = 255
OPEN_CONNECT_FAILED = 2


class ForwardFailed(SshError):
    """ExitOnForwardFailure: a forward could not be set up (message already logged)."""


class ClientForwarding:
    """The forwards of one connection."""

    def __init__(self, layer: ConnectionLayer, options: ForwardOptions, log: Log) -> None:
        self.layer = layer
        self.options = options
        self.log = log
        self.servers: list[asyncio.Server] = []
        self.unix_paths: list[str] = []
        #: -R forwards by the listen port the server uses (the allocated one for port 0)
        self.remote: list[tuple[Forward, int]] = []
        self._tasks: set[asyncio.Future[None]] = set()
        layer.transport.on_close(lambda _exc: self.close())

    # -- setting up -----------------------------------------------------------------

    async def start(self, agent_socket: str | None, forward_agent: bool) -> None:
        """Everything but -W; ForwardFailed under ExitOnForwardFailure."""
        if forward_agent:
            self.log.debug("Requesting authentication agent forwarding.")
            enable_agent_forwarding(self.layer, agent_socket)
        else:
            refuse_agent_channels(self.layer, self.log.error)
        opts = self.options
        if opts.remote:
            self.layer.open_handlers["forwarded-tcpip"] = self._forwarded_tcpip
            self.layer.open_handlers["forwarded-streamlocal@openssh.com"] = \
                self._forwarded_streamlocal
        ok = 0
        for forward in opts.local:
            self.log.debug(f"Local connections to {_listen(forward)} forwarded to remote "
                           f"address {_target(forward)}")
            ok += await self._listen(forward)
        if opts.local and ok != len(opts.local) and opts.exit_on_forward_failure:
            self.log.fatal("Could not request local forwarding.")
            raise ForwardFailed("Could not request local forwarding.")
        if opts.local and ok == 0:
            self.log.error("Could not request local forwarding.")
        replies = [self._request_remote(f) for f in opts.remote]
        for done in await asyncio.gather(*replies):
            if not done and opts.exit_on_forward_failure:
                raise ForwardFailed("remote port forwarding failed")

    def _report(self, message: str, last: bool) -> None:
        if last:
            self.log.error(message)
        else:
            self.log.verbose(message)

    async def _listen(self, forward: Forward) -> int:
        handler = self._socks if forward.dynamic else self._local
        if forward.listen_path is not None:
            try:
                server = await listen_unix(forward.listen_path,
                                           lambda r, w: handler(forward, r, w))
            except OSError as exc:
                self.log.error(f"bind [{forward.listen_path}]: {exc.strerror}")
                self.log.error("channel_setup_fwd_listener_streamlocal: cannot listen to "
                               f"path: {forward.listen_path}")
                return 0
            self.servers.append(server)
            self.unix_paths.append(forward.listen_path)
            self.layer.allocate()
            return 1
        addr, wildcard = bind_host(forward.listen_host, is_client=True,
                                   gateway_ports=int(self.options.gateway_ports))
        try:
            servers, _port = await listen_tcp(addr, wildcard, forward.listen_port,
                                              lambda r, w: handler(forward, r, w),
                                              report=self._report)
        except BindFailed as exc:
            self.log.error(f"channel_setup_fwd_listener_tcpip: {exc.message}")
            return 0
        self.servers.extend(servers)
        for _server in servers:  # ssh numbers its listeners as channels: so do we
            self.layer.allocate()
        return 1

    async def _request_remote(self, forward: Forward) -> bool:
        """tcpip-forward (or streamlocal-forward@openssh.com); ssh's messages on reply."""
        if forward.listen_path is not None:
            name = "streamlocal-forward@openssh.com"
            data = Writer().string(forward.listen_path).getvalue()
        else:
            host = forward.listen_host
            bind = "localhost" if host is None else ("" if host in ("", "*") else host)
            name = "tcpip-forward"
            data = Writer().string(bind).uint32(forward.listen_port).getvalue()
        self.log.debug(f"Remote connections from {_listen(forward)} forwarded to local "
                       f"address {_target(forward)}")
        try:
            answer = await self.layer.global_request(name, data)
        except SshError:
            return False
        port = forward.listen_port
        if answer is not None and forward.listen_path is None and port == 0:
            try:
                port = Reader(answer).uint32()
            except SshError:
                answer = None
            else:
                self.log.info(f"Allocated port {port} for remote forward to "
                              f"{forward.connect_host}:{forward.connect_port}")
        if answer is None:
            what = f"listen path {forward.listen_path}" if forward.listen_path is not None \
                else f"listen port {forward.listen_port}"
            if self.options.exit_on_forward_failure:
                self.log.fatal(f"Error: remote port forwarding failed for {what}")
            else:
                self.log.info(f"Warning: remote port forwarding failed for {what}")
            return False
        self.remote.append((forward, port))
        return True

    # -- connections ----------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, forward: Forward, host: str, port: int,
                    originator: tuple[str, int]) -> Channel | None:
        try:
            if forward.connect_path is not None:
                return await open_direct_streamlocal(self.layer, forward.connect_path)
            return await open_direct_tcpip(self.layer, host, port, originator)
        except StreamOpenFailed as exc:
            self.log.info(f"channel {exc.local_id}: {exc.message}")
        except SshError:
            pass
        return None

    async def _local(self, forward: Forward, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        origin = peer_of(writer)
        self.log.debug(f"Connection to port {forward.listen_port} forwarding to "
                       f"{_target(forward)} port {forward.connect_port} requested.")
        channel = await self._open(forward, forward.connect_host or "", forward.connect_port,
                                   origin if origin[0] else ("127.0.0.1", 0))
        if channel is None:
            writer.close()
            return
        await relay(channel, reader, writer)

    async def _socks(self, forward: Forward, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        from protocol.socks import SocksError, negotiate, reply

        try:
            request = await negotiate(reader, writer)
        except SocksError as exc:
            self.log.debug(str(exc))
            writer.close()
            return
        channel = await self._open(Forward(), request.host, request.port, peer_of(writer))
        reply(writer, request, channel is not None)
        if channel is None:
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()
            return
        await relay(channel, reader, writer)

    def _find_remote(self, address: str, port: int) -> Forward | None:
        matches = [f for f, p in self.remote if p == port and f.listen_path is None]
        for forward in matches:
            if forward.listen_host == address:
                return forward
        return matches[0] if matches else None

    def _forwarded_tcpip(self, r: Reader) -> Channel | Awaitable[Channel | None] | None:
        address, port = r.text(), r.uint32()
        origin, origin_port = r.text(), r.uint32()
        forward = self._find_remote(address, port)
        if forward is None:
            self.log.error(f"WARNING: Server requests forwarding for unknown listen_port "
                           f"{port}")
            return None
        self.log.debug(f"client_request_forwarded_tcpip: listen {address} port {port}, "
                       f"originator {origin} port {origin_port}")
        return self._connector(forward, "forwarded-tcpip")

    def _forwarded_streamlocal(self, r: Reader) -> Channel | Awaitable[Channel | None] | None:
        path = r.text()
        for forward, _port in self.remote:
            if forward.listen_path == path:
                return self._connector(forward, "forwarded-streamlocal@openssh.com")
        return None

    def _connector(self, forward: Forward, kind: str) -> Awaitable[Channel | None] | Channel:
        """The channel for a remote connection: connect to the target first (refusing
        the open with "connect failed" if that fails), or run SOCKS over it (-R port)."""
        if forward.dynamic:
            return RelayChannel(self.layer, kind, self._remote_socks)

        async def connect() -> Channel | None:
            reader, writer = await connect_target(forward.connect_host, forward.connect_port,
                                                  forward.connect_path)

            async def start(channel: RelayChannel) -> None:
                await relay(channel, reader, writer)

            return RelayChannel(self.layer, kind, start)

        return connect()

    async def _remote_socks(self, channel: RelayChannel) -> None:
        """-R with only a port: pyssh is the SOCKS server for the remote side's clients,
        speaking SOCKS over the channel (through a socket pair) and connecting locally."""
        from protocol.socks import SocksError, negotiate, reply

        ours, theirs = socket.socketpair()
        r1, w1 = await asyncio.open_connection(sock=ours, limit=CHUNK * 4)
        r2, w2 = await asyncio.open_connection(sock=theirs, limit=CHUNK * 4)
        pump = asyncio.ensure_future(relay(channel, r1, w1))
        try:
            request = await negotiate(r2, w2)
            target = await connect_target(request.host, request.port)
        except (SocksError, ChannelOpenFailed):
            w2.close()
            await pump
            return
        reply(w2, request, True)
        await asyncio.gather(_pipe(r2, target[1]), _pipe(target[0], w2))
        await pump

    # -- -W ---------------------------------------------------------------------------

    async def run_stdio(self) -> int:
        """ssh -W: stdin/stdout become a direct-tcpip (or streamlocal) channel."""
        host, port = self.options.stdio_host or "", self.options.stdio_port
        self.log.debug(f"stdio forwarding: {host}:{port}")
        target = Forward(connect_host=host, connect_port=port,
                         connect_path=host if port < 0 else None)
        channel = await self._open(target, host, port, ("127.0.0.1", 65535))
        if channel is None:
            self.log.fatal("stdio forwarding failed")
            return EXIT_FAILURE
        await stdio_relay(channel)
        return 0

    def close(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()
        for path in self.unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.unix_paths.clear()
        for task in list(self._tasks):
            task.cancel()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def stdio_relay(channel: Channel, in_fd: int = 0, out_fd: int = 1) -> None:
    """Copy ``in_fd`` to the channel and the channel to ``out_fd`` (blocking file
    descriptors: a thread reads, writes go through the default executor)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)

    def reader() -> None:
        while True:
            try:
                chunk = os.read(in_fd, CHUNK)
            except OSError:
                chunk = b""
            try:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception:
                return
            if not chunk:
                return

    async def up() -> None:
        try:
            while chunk := await queue.get():
                await channel.write(chunk)
            channel.send_eof()
        except SshError:
            return

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view):]

    async def down() -> None:
        broken = False
        while data := await channel.read():
            if broken:
                continue
            try:
                await loop.run_in_executor(None, write_all, data)
            except OSError:
                broken = True
                channel.close()

    threading.Thread(target=reader, name="pyssh-stdio", daemon=True).start()
    feeder = asyncio.ensure_future(up())
    try:
        await down()
        await channel.wait_closed()
    finally:
        feeder.cancel()


def _listen(f: Forward) -> str:
    if f.listen_path is not None:
        return f.listen_path
    return f"{f.listen_host or 'LOCALHOST'}:{f.listen_port}"


def _target(f: Forward) -> str:
    if f.dynamic:
        return "socks"
    if f.connect_path is not None:
        return f.connect_path
    return f"{f.connect_host}:{f.connect_port}"


def agent_socket_for(value: str | None, default: str | None) -> tuple[bool, str | None]:
    """ForwardAgent's value -> (forward?, socket): yes uses SSH_AUTH_SOCK, a path or
    $VAR names another socket (ssh 8.2+)."""
    if value is None or value.lower() in ("no", "false"):
        return False, None
    if value.lower() in ("yes", "true"):
        return True, default
    if value.startswith("$"):
        return True, os.environ.get(value[1:])
    return True, os.path.expanduser(value)


async def run_forwarding(layer: ConnectionLayer, values: dict[str, list[str]],
                         log: Log, *, agent: tuple[bool, str | None] | None = None,
                         ) -> int | None:
    """The hook ssh_main calls once authenticated, with the resolved ssh_config values:
    set up every forward (``agent``: ``ssh_login.forward_agent_target``'s answer); an
    exit status when pyssh should stop here (-W done, or
    ExitOnForwardFailure), else None."""
    options = forward_options(values)
    forwarding = ClientForwarding(layer, options, log)
    if agent is None:  # (callers without a Resolved: ForwardAgent's raw value)
        agent = agent_socket_for(values.get("forwardagent", ["no"])[0],
                                 os.environ.get("SSH_AUTH_SOCK"))
    try:
        await forwarding.start(agent[1], agent[0])
    except ForwardFailed:
        return EXIT_FAILURE
    if options.stdio_host is not None:
        return await forwarding.run_stdio()
    return None


__all__ = ["ClientForwarding", "ForwardFailed", "agent_socket_for", "run_forwarding",
           "stdio_relay"]
