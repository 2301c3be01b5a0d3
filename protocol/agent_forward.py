"""Agent forwarding, both roles (PROTOCOL.agent: auth-agent-req@openssh.com and
auth-agent@openssh.com channels).

Client: after ``auth-agent-req@openssh.com`` on the session, each auth-agent@openssh.com
channel the server opens is relayed to our agent's unix socket, byte for byte (as ssh
does: the agent protocol passes through unread). A server that opens one without being
asked gets ssh's break-in warning and a refusal.

Server: ``serve_forwarded_agent`` makes the socket the session's SSH_AUTH_SOCK points at,
in a private 0700 directory; each local connection to it becomes an auth-agent@openssh.com
channel to the client. One socket per connection, removed when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable

from keytools.errors import SshError
from keytools.wire import Reader
from protocol.channels import Channel, ConnectionLayer
from protocol.errors import ChannelOpenFailed
from protocol.forwarding import RelayChannel, connect_target, open_stream_channel, relay

AGENT_CHANNEL = "auth-agent@openssh.com"
AGENT_REQUEST = "auth-agent-req@openssh.com"
OPEN_ADMINISTRATIVELY_PROHIBITED = 1

# -- client -----------------------------------------------------------------------------


def enable_agent_forwarding(layer: ConnectionLayer, socket_path: str | None) -> None:
    """Ask for agent forwarding on every session opened from now on, and answer the
    server's agent channels by connecting to ``socket_path`` (None: refuse them)."""
    layer.session_requests.append((AGENT_REQUEST, b""))

    def opener(r: Reader) -> Channel | None:
        if socket_path is None:
            return None

        async def start(channel: RelayChannel) -> None:
            try:
                reader, writer = await connect_target(None, 0, socket_path)
            except ChannelOpenFailed:
                channel.close()
                return
            await relay(channel, reader, writer)

        return RelayChannel(layer, AGENT_CHANNEL, start)

    layer.open_handlers[AGENT_CHANNEL] = opener


def refuse_agent_channels(layer: ConnectionLayer, warn: Callable[[str], None]) -> None:
    """ForwardAgent no: a server opening an agent channel anyway is warned about."""
    def opener(r: Reader) -> Channel | None:
        warn("Warning: ssh server tried agent forwarding.")
        warn("Warning: this is probably a break-in attempt by a malicious server.")
        return None

    layer.open_handlers[AGENT_CHANNEL] = opener


# -- server -----------------------------------------------------------------------------

_sockets: weakref.WeakKeyDictionary[ConnectionLayer, str] = weakref.WeakKeyDictionary()


async def serve_forwarded_agent(layer: ConnectionLayer, uid: int, gid: int) -> str:
    """The path of a listening socket relaying to the client's agent (created on the first
    call for this connection; later calls return the same path)."""
    existing = _sockets.get(layer)
    if existing is not None:
        return existing
    directory = tempfile.mkdtemp(prefix="ssh-", dir="/tmp")
    path = os.path.join(directory, f"agent.{os.getpid()}")
    tasks: set[asyncio.Task[None]] = set()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            channel = await open_stream_channel(layer, AGENT_CHANNEL)
        except SshError:
            writer.close()
            return
        await relay(channel, reader, writer)

    def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(accepted(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_connection, path)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        os.umask(old)
    try:
        if os.geteuid() == 0 and (uid, gid) != (0, 0):
            os.chown(directory, uid, gid)
            os.chown(path, uid, gid)
        os.chmod(directory, 0o700)
    except OSError:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise

    def cleanup(_exc: SshError | None = None) -> None:
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(directory)

    layer.transport.on_close(cleanup)
    if layer.transport.error is not None:
        cleanup()
    _sockets[layer] = path
    return path


__all__ = ["AGENT_CHANNEL", "AGENT_REQUEST", "enable_agent_forwarding",
           "refuse_agent_channels", "serve_forwarded_agent"]
