"""Reading the transport's socket: received bytes straight into the ``PacketReader``.

Separate from ``protocol.transport`` because it is asyncio plumbing rather than SSH:
taking over a StreamReader's socket (a ``BufferedProtocol`` in place of the stream's
protocol, with flow control and connection loss passed on), or feeding the packets from
a task for any other stream. ``Transport`` only calls ``_take_over`` and waits on the
result.
"""

from __future__ import annotations

import asyncio

from keytools.errors import FeatureUnsupported
from protocol.packet import PacketReader

READ_SIZE = 1 << 16
#: pause reading the socket while this much is received but not yet handled
RECV_HIGH_WATER = 4 << 20
#: the socket's write buffer level at which ``drain`` waits
SEND_HIGH_WATER = 1 << 20


class _Inbound(asyncio.BufferedProtocol):
    """Received bytes for the ``PacketReader``, with as few copies as the source allows.

    Over a socket it replaces the stream's protocol, so bytes land straight in the
    PacketReader's buffer (no StreamReader buffer, no copy per read); write flow control
    and connection loss are passed on to the stream protocol it replaced, so
    ``StreamWriter.drain`` and ``wait_closed`` keep working. Any other StreamReader (a
    ProxyCommand's pipe, a channel) is read by a task that feeds the PacketReader.
    """

    def __init__(self, packets: PacketReader, stream: asyncio.BaseProtocol | None = None,
                 transport: asyncio.BaseTransport | None = None) -> None:
        self._packets = packets
        self._stream = stream
        self._transport = transport
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Event | None = None  # set while a pumped reader may go on
        self._pump: asyncio.Task[None] | None = None
        self._paused = False
        self.eof = False
        self.error: Exception | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._packets.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._packets.buffer_updated(nbytes)
        self._received()

    def data_received(self, data: bytes) -> None:  # transports without buffered reads
        self._packets.feed(data)
        self._received()

    def _received(self) -> None:
        if not self._paused and self._packets.buffered > RECV_HIGH_WATER:
            self._paused = True
            if isinstance(self._transport, asyncio.ReadTransport):
                self._transport.pause_reading()
            elif self._room is not None:
                self._room.clear()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self._stream is not None:
            self._stream.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._stream is not None:
            self._stream.pause_writing()

    def resume_writing(self) -> None:
        if self._stream is not None:
            self._stream.resume_writing()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pump(self, reader: asyncio.StreamReader) -> None:
        """Feed from ``reader`` in a task (a source whose transport cannot be taken over)."""
        self._room = asyncio.Event()
        self._room.set()

        async def run() -> None:
            assert self._room is not None
            try:
                while data := await reader.read(READ_SIZE):
                    self.data_received(data)
                    await self._room.wait()
            except (ConnectionError, OSError) as exc:
                self.error = exc
            finally:
                self.eof = True
                self._wake()

        self._pump = asyncio.get_running_loop().create_task(run())

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()

    def stop(self) -> None:
        """Read nothing more from the socket (it is being handed to another process)."""
        if self._pump is not None:
            raise FeatureUnsupported("only a socket transport can be handed over")
        if isinstance(self._transport, asyncio.ReadTransport):
            self._transport.pause_reading()

    async def wait(self) -> None:
        """Until more bytes arrive (or EOF); resumes reading once the backlog is handled."""
        if self._paused and self._packets.buffered <= RECV_HIGH_WATER // 2:
            self._paused = False
            if isinstance(self._transport, asyncio.ReadTransport):
                self._transport.resume_reading()
            elif self._room is not None:
                self._room.set()
        if self.eof:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


def _take_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               packets: PacketReader) -> _Inbound:
    """Move the StreamReader's source to an ``_Inbound`` feeding ``packets``, keeping
    whatever the StreamReader had buffered already."""
    out = writer.transport
    if isinstance(out, asyncio.WriteTransport):
        out.set_write_buffer_limits(high=SEND_HIGH_WATER)
    source = getattr(reader, "_transport", None)
    stream = source.get_protocol() if isinstance(source, asyncio.ReadTransport) else None
    if source is None or not isinstance(stream, asyncio.StreamReaderProtocol) \
            or not isinstance(getattr(reader, "_buffer", None), bytearray) \
            or source.is_closing():
        inbound = _Inbound(packets)
        inbound.pump(reader)
        return inbound
    assert isinstance(source, asyncio.ReadTransport)
    inbound = _Inbound(packets, stream, source)
    pending: bytearray = reader._buffer  # type: ignore[attr-defined]
    if pending:
        packets.feed(pending)
        pending.clear()
    if reader.at_eof() or getattr(reader, "_eof", False):
        inbound.eof = True
    source.set_protocol(inbound)
    if not source.is_reading():
        source.resume_reading()  # the StreamReader may have paused it
    return inbound
