"""The connection protocol (RFC 4254): channels with flow control, and session channels.

``ConnectionLayer`` owns the channel numbers and routes messages 80..100 to ``Channel``
objects; handlers run synchronously inside the transport's reader, so a channel's buffers
only ever hold what its advertised window allowed the peer to send. Reading data gives
window back to the peer once half of it is used, as OpenSSH does.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from collections.abc import Awaitable, Callable

from keytools.errors import ConnectionClosed, ProtocolError, SshError
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.errors import ChannelOpenFailed, ChannelRequestFailed
from protocol.transport import Transport

#: OpenSSH's CHAN_SES_WINDOW_DEFAULT and CHAN_SES_PACKET_DEFAULT.
WINDOW_DEFAULT = 64 * 32 * 1024
PACKET_DEFAULT = 32 * 1024
#: the most data we put in one packet, whatever the peer's maximum packet size
MAX_CHUNK = 128 * 1024
EXTENDED_STDERR = 1
OPEN_ADMINISTRATIVELY_PROHIBITED = 1
_U32 = 0xFFFFFFFF
CHANNEL_MESSAGES = range(messages.GLOBAL_REQUEST, messages.CHANNEL_FAILURE + 1)

#: answer to a GLOBAL_REQUEST: the REQUEST_SUCCESS data, or None for REQUEST_FAILURE
GlobalReply = bytes | None
GlobalHandler = Callable[[Reader], "GlobalReply | Awaitable[GlobalReply]"]
OpenHandler = Callable[[Reader], "Channel | Awaitable[Channel | None] | None"]


class _Stream:
    """Received bytes of one stream (data or stderr) waiting for the application."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0


class Channel:
    def __init__(self, layer: ConnectionLayer, local_id: int, kind: str) -> None:
        self.layer = layer
        self.local_id = local_id
        self.kind = kind
        self.remote_id = 0
        self.send_window = 0
        self.remote_max_packet = 0
        self.window_size = layer.window
        self.recv_window = layer.window
        self.max_packet = layer.max_packet
        self._consumed = 0
        self._streams = {0: _Stream(), EXTENDED_STDERR: _Stream()}
        self._changed = asyncio.Event()
        self._replies: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.eof_received = False
        self.eof_sent = False
        self.close_sent = False
        self.closed = asyncio.Event()
        self.error: SshError | None = None

    # -- application side -------------------------------------------------------------

    def _send(self, w: Writer) -> None:
        self.layer.transport.send(w.getvalue())

    def _msg(self, msg: int) -> Writer:
        return Writer().byte(msg).uint32(self.remote_id)

    async def write(self, data: bytes, stream: int = 0) -> None:
        """Send ``data``, waiting for window from the peer as needed."""
        view = memoryview(data)
        while view:
            if self.error is not None:
                raise self.error
            if self.close_sent or self.eof_sent:
                raise ConnectionClosed(f"channel {self.local_id}: write after EOF or close")
            n = min(len(view), self.send_window, self.remote_max_packet, MAX_CHUNK)
            if n <= 0:
                self._changed.clear()
                await self._changed.wait()
                continue
            w = self._msg(messages.CHANNEL_EXTENDED_DATA).uint32(stream) if stream \
                else self._msg(messages.CHANNEL_DATA)
            self._send(w.string(view[:n]))
            self.send_window -= n
            view = view[n:]
            await self.layer.transport.drain()

    async def read(self, stream: int = 0) -> bytes:
        """The next received chunk; b"" once the peer sent EOF (or closed)."""
        buf = self._streams[stream]
        while not buf.chunks:
            if self.eof_received:
                return b""
            if self.error is not None:
                raise self.error
            if self.closed.is_set():
                return b""
            self._changed.clear()
            await self._changed.wait()
        chunk = buf.chunks.popleft()
        buf.size -= len(chunk)
        self._consumed += len(chunk)
        if self._consumed >= self.window_size // 2 and not self.close_sent:
            self._send(self._msg(messages.CHANNEL_WINDOW_ADJUST).uint32(self._consumed))
            self.recv_window += self._consumed
            self._consumed = 0
        return chunk

    async def read_all(self, stream: int = 0) -> bytes:
        parts = []
        while chunk := await self.read(stream):
            parts.append(chunk)
        return b"".join(parts)

    def send_eof(self) -> None:
        if not self.eof_sent and not self.close_sent and self.error is None:
            self.eof_sent = True
            self._send(self._msg(messages.CHANNEL_EOF))

    def close(self) -> None:
        if not self.close_sent and self.error is None:
            self.close_sent = True
            self._send(self._msg(messages.CHANNEL_CLOSE))

    async def wait_closed(self) -> None:
        await self.closed.wait()
        if self.error is not None and not self.close_sent:
            raise self.error

    async def request(self, name: str, data: bytes = b"", want_reply: bool = True) -> bool:
        """A channel request; with ``want_reply``, whether the peer said SUCCESS."""
        if self.error is not None:
            raise self.error
        self._send(self._msg(messages.CHANNEL_REQUEST).string(name).boolean(want_reply).raw(data))
        if not want_reply:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._replies.append(fut)
        return await fut

    # -- peer side --------------------------------------------------------------------

    def on_request(self, name: str, r: Reader) -> bool:
        """A request from the peer; return whether it succeeded. Subclasses extend."""
        return False

    def _data(self, stream: int, data: bytes) -> None:
        if self.eof_received:
            raise ProtocolError(f"channel {self.local_id}: data after EOF")
        if len(data) > self.recv_window or len(data) > self.max_packet:
            raise ProtocolError(f"channel {self.local_id}: rcvd too much data")
        self.recv_window -= len(data)
        buf = self._streams.get(stream)
        if buf is None or self.close_sent:  # unknown stream, or we are closing: drop it
            self._consumed += len(data)
            return
        if data:
            buf.chunks.append(data)
            buf.size += len(data)
            self._changed.set()

    def _dispatch(self, msg: int, r: Reader) -> None:
        if msg == messages.CHANNEL_WINDOW_ADJUST:
            self.send_window = min(self.send_window + r.uint32(), _U32)
            self._changed.set()
        elif msg == messages.CHANNEL_DATA:
            self._data(0, r.string())
        elif msg == messages.CHANNEL_EXTENDED_DATA:
            stream = r.uint32()
            self._data(stream, r.string())
        elif msg == messages.CHANNEL_EOF:
            self.eof_received = True
            self._changed.set()
        elif msg == messages.CHANNEL_CLOSE:
            self.close()
            self.layer.release(self)
            self.closed.set()
            self._changed.set()
        elif msg == messages.CHANNEL_REQUEST:
            name = r.ascii()
            want_reply = r.boolean()
            ok = self.on_request(name, r)
            if want_reply and not self.close_sent:
                self._send(self._msg(messages.CHANNEL_SUCCESS if ok else messages.CHANNEL_FAILURE))
        elif msg in (messages.CHANNEL_SUCCESS, messages.CHANNEL_FAILURE):
            if not self._replies:
                raise ProtocolError(f"channel {self.local_id}: unexpected reply")
            self._replies.popleft().set_result(msg == messages.CHANNEL_SUCCESS)

    def opened(self) -> None:
        """Called once a channel the peer opened is confirmed; subclasses start work here."""

    def fail(self, exc: SshError) -> None:
        self.error = exc
        for fut in self._replies:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()
        self._replies.clear()
        self.closed.set()
        self._changed.set()


class SessionChannel(Channel):
    """A "session" channel: exec, and the exit status or signal that ends it."""

    def __init__(self, layer: ConnectionLayer, local_id: int) -> None:
        super().__init__(layer, local_id, "session")
        self.exit_status: int | None = None
        #: (signal name without SIG, core dumped, error message)
        self.exit_signal: tuple[str, bool, str] | None = None

    async def exec(self, command: str | bytes) -> None:
        if not await self.request("exec", Writer().string(command).getvalue()):
            raise ChannelRequestFailed("exec", self.local_id)

    def on_request(self, name: str, r: Reader) -> bool:
        if name == "exit-status":
            self.exit_status = r.uint32()
            return True
        if name == "exit-signal":
            signame, core, text = r.ascii(), r.boolean(), r.string().decode("utf-8", "replace")
            self.exit_signal = (signame, core, text)
            return True
        return name == "eow@openssh.com"


class ConnectionLayer:
    def __init__(self, transport: Transport, *, window: int = WINDOW_DEFAULT,
                 max_packet: int = PACKET_DEFAULT) -> None:
        self.transport = transport
        self.window = window
        self.max_packet = max_packet
        self._channels: dict[int, Channel] = {}
        self._opening: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._global_replies: collections.deque[asyncio.Future[bytes | None]] = \
            collections.deque()
        #: channel type -> handler deciding about a CHANNEL_OPEN from the peer: a Channel
        #: (made with ``allocate()``) to confirm, None to refuse ("administratively
        #: prohibited"), or a coroutine deciding later (e.g. after a TCP connect); raising
        #: ChannelOpenFailed refuses with that reason and text.
        self.open_handlers: dict[str, OpenHandler] = {}
        self._pending_opens: set[asyncio.Future[Channel | None]] = set()
        #: requests (name, data) sent without want_reply on every "session" channel we
        #: open, first thing (auth-agent-req@openssh.com for agent forwarding)
        self.session_requests: list[tuple[str, bytes]] = []
        #: request name -> handler answering a GLOBAL_REQUEST from the peer: bytes (possibly
        #: empty) for SUCCESS with that data, None for FAILURE; may be a coroutine. Replies
        #: go out in request order, as RFC 4254 section 4 requires.
        self.global_handlers: dict[str, GlobalHandler] = {}
        self._global_answers: collections.deque[tuple[bool, asyncio.Future[GlobalReply]]] = \
            collections.deque()
        transport.set_handler(CHANNEL_MESSAGES, self._on_message)
        transport.on_close(self._on_close)

    def allocate(self) -> int:
        """A free local channel number, for a Channel an open handler is about to return."""
        while self._next_id in self._channels:
            self._next_id = (self._next_id + 1) & _U32
        local_id = self._next_id
        self._next_id = (self._next_id + 1) & _U32
        return local_id

    _allocate = allocate

    def release(self, channel: Channel) -> None:
        self._channels.pop(channel.local_id, None)

    async def open_channel(self, channel: Channel, extra: bytes = b"") -> Channel:
        """Send CHANNEL_OPEN for ``channel`` and wait for the peer's answer."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._channels[channel.local_id] = channel
        self._opening[channel.local_id] = fut
        self.transport.send(
            Writer().byte(messages.CHANNEL_OPEN).string(channel.kind).uint32(channel.local_id)
            .uint32(channel.window_size).uint32(channel.max_packet).raw(extra).getvalue()
        )
        try:
            await fut
        finally:
            self._opening.pop(channel.local_id, None)
        if channel.kind == "session":
            for name, data in self.session_requests:
                await channel.request(name, data, want_reply=False)
        return channel

    async def open_session(self) -> SessionChannel:
        channel = SessionChannel(self, self.allocate())
        await self.open_channel(channel)
        return channel

    async def global_request(self, name: str, data: bytes = b"",
                             want_reply: bool = True) -> bytes | None:
        """A global request; the REQUEST_SUCCESS data, or None on failure (or no reply)."""
        self.transport.send(Writer().byte(messages.GLOBAL_REQUEST).string(name)
                            .boolean(want_reply).raw(data).getvalue())
        if not want_reply:
            return None
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._global_replies.append(fut)
        return await fut

    def _on_message(self, payload: bytes) -> None:
        if not self.transport.authenticated:
            raise ProtocolError("connection message before authentication")
        r = Reader(payload)
        msg = r.byte()
        if msg == messages.GLOBAL_REQUEST:
            self._on_global_request(r)
            return
        if msg in (messages.REQUEST_SUCCESS, messages.REQUEST_FAILURE):
            if not self._global_replies:
                raise ProtocolError("unexpected global request reply")
            self._global_replies.popleft().set_result(
                r.rest() if msg == messages.REQUEST_SUCCESS else None)
            return
        if msg == messages.CHANNEL_OPEN:
            self._on_open(r)
            return
        channel = self._channels.get(r.uint32())
        if channel is None:
            raise ProtocolError(f"message {msg} for unknown channel")
        if msg == messages.CHANNEL_OPEN_CONFIRMATION:
            self._on_confirmation(channel, r)
        elif msg == messages.CHANNEL_OPEN_FAILURE:
            self._on_open_failure(channel, r)
        elif channel.local_id in self._opening:
            raise ProtocolError(f"message {msg} for a channel not yet open")
        else:
            channel._dispatch(msg, r)

    def _on_global_request(self, r: Reader) -> None:
        name = r.ascii()
        want_reply = r.boolean()
        handler = self.global_handlers.get(name)
        fut: asyncio.Future[GlobalReply] = asyncio.get_running_loop().create_future()
        if handler is None:
            fut.set_result(None)
        else:
            try:
                result = handler(r)
            except SshError:
                result = None
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(lambda t: self._global_done(t, fut))
            else:
                fut.set_result(result)
        self._global_answers.append((want_reply, fut))
        fut.add_done_callback(lambda _f: self._send_global_answers())

    @staticmethod
    def _global_done(task: asyncio.Future[GlobalReply], fut: asyncio.Future[GlobalReply]) -> None:
        if fut.done():
            return
        if task.cancelled() or task.exception() is not None:
            fut.set_result(None)
        else:
            fut.set_result(task.result())

    def _send_global_answers(self) -> None:
        """Send finished replies from the front of the queue, keeping request order."""
        while self._global_answers and self._global_answers[0][1].done():
            want_reply, fut = self._global_answers.popleft()
            if not want_reply or self.transport.error is not None:
                continue
            data = fut.result()
            if data is None:
                self.transport.send(bytes((messages.REQUEST_FAILURE,)))
            else:
                self.transport.send(bytes((messages.REQUEST_SUCCESS,)) + data)

    def _on_confirmation(self, channel: Channel, r: Reader) -> None:
        fut = self._opening.get(channel.local_id)
        if fut is None or fut.done():
            raise ProtocolError("unexpected CHANNEL_OPEN_CONFIRMATION")
        channel.remote_id = r.uint32()
        channel.send_window = r.uint32()
        channel.remote_max_packet = r.uint32()
        # Open from now on: data may follow in the same read, before the opener resumes.
        self._opening.pop(channel.local_id, None)
        fut.set_result(None)

    def _on_open_failure(self, channel: Channel, r: Reader) -> None:
        fut = self._opening.get(channel.local_id)
        if fut is None or fut.done():
            raise ProtocolError("unexpected CHANNEL_OPEN_FAILURE")
        reason = r.uint32()
        text = r.string().decode("utf-8", "replace")
        self.release(channel)
        fut.set_exception(ChannelOpenFailed(reason, text))

    def _on_open(self, r: Reader) -> None:
        kind = r.ascii()
        sender, window, max_packet = r.uint32(), r.uint32(), r.uint32()
        handler = self.open_handlers.get(kind)
        try:
            result = handler(r) if handler is not None else None
        except ChannelOpenFailed as exc:
            self._open_refused(sender, exc.reason, exc.description)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._pending_opens.add(task)
            task.add_done_callback(
                lambda t: self._open_decided(t, sender, window, max_packet))
            return
        self._open_answer(result, sender, window, max_packet)

    def _open_decided(self, task: asyncio.Future[Channel | None], sender: int, window: int,
                      max_packet: int) -> None:
        self._pending_opens.discard(task)
        if task.cancelled() or self.transport.error is not None:
            return
        exc = task.exception()
        if isinstance(exc, ChannelOpenFailed):
            self._open_refused(sender, exc.reason, exc.description)
        elif exc is not None:
            self._open_refused(sender, OPEN_ADMINISTRATIVELY_PROHIBITED, "open failed")
        else:
            self._open_answer(task.result(), sender, window, max_packet)

    def _open_refused(self, sender: int, reason: int, text: str) -> None:
        self.transport.send(
            Writer().byte(messages.CHANNEL_OPEN_FAILURE).uint32(sender)
            .uint32(reason).string(text).string("").getvalue())

    def _open_answer(self, channel: Channel | None, sender: int, window: int,
                     max_packet: int) -> None:
        if channel is None:
            self._open_refused(sender, OPEN_ADMINISTRATIVELY_PROHIBITED, "open failed")
            return
        channel.remote_id, channel.send_window, channel.remote_max_packet = \
            sender, window, max_packet
        self._channels[channel.local_id] = channel
        self.transport.send(
            Writer().byte(messages.CHANNEL_OPEN_CONFIRMATION).uint32(sender)
            .uint32(channel.local_id).uint32(channel.window_size).uint32(channel.max_packet)
            .getvalue())
        channel.opened()

    def _on_close(self, exc: SshError) -> None:
        for fut in self._opening.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()
        for gfut in self._global_replies:
            if not gfut.done():
                gfut.set_exception(exc)
                gfut.exception()
        for task in list(self._pending_opens):
            task.cancel()
        for _want, afut in self._global_answers:
            if not afut.done():
                afut.cancel()
        self._global_answers.clear()
        for channel in list(self._channels.values()):
            channel.fail(exc)
