"""The SSH transport over an asyncio stream, for the client and the server role alike.

One reader task decodes packets in order and awaits each message's handler before
decoding the next (so keys switch exactly at NEWKEYS). Key exchange messages go to the
``KexEngine``; transport messages (DISCONNECT, IGNORE, DEBUG, UNIMPLEMENTED, service
requests, EXT_INFO, ping@openssh.com) are handled here; everything else goes to the
layer above, registered with ``set_handler`` (synchronous callbacks, e.g. channels) or
``subscribe`` (a queue a coroutine reads, e.g. user authentication). A protocol error
ends the connection with a DISCONNECT and wakes every waiter with the error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from keytools.errors import (
    ConnectionClosed,
    ConnectionCorrupt,
    FeatureUnsupported,
    MacInvalid,
    NegotiationFailed,
    ProtocolError,
    SshError,
)
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol import errors, messages, transport_handover
from protocol.ciphers import Protection, default_rekey_bytes
from protocol.compression import ZLIB_DELAYED, Compressor, Decompressor
from protocol.kex import KexEngine, Preferences
from protocol.packet import PacketReader, PacketWriter
from protocol.signer import Signer
from protocol.transport_inbound import _Inbound, _take_over
from protocol.version import SOFTWARE_VERSION, PeerVersion, VersionReader, local_version

log = logging.getLogger("pyssh.transport")

#: OpenSSH rekeys before 2^31 packets so sequence numbers never wrap under one key.
MAX_PACKETS_PER_KEY = 1 << 31
#: What a server advertises in EXT_INFO by default (sshd 9.x's list, minus ssh-rsa/DSA).
DEFAULT_SERVER_SIG_ALGS = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-512", "rsa-sha2-256",
)

MessageHandler = Callable[[bytes], None]
T = TypeVar("T")


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True)
class TransportConfig:
    algorithms: Preferences = field(default_factory=Preferences)
    software_version: str = SOFTWARE_VERSION
    #: rekey after this many bytes in either direction (None: the cipher's safe default)
    rekey_bytes: int | None = None
    rekey_seconds: float | None = None
    strict_kex: bool = True
    ext_info: bool = True
    #: server role: the services a client may request
    services: frozenset[str] = frozenset({"ssh-userauth"})
    server_sig_algs: tuple[str, ...] = DEFAULT_SERVER_SIG_ALGS


class MessageQueue:
    """Messages for one coroutine-driven layer; ``get`` raises once the transport died."""

    def __init__(self, size: int = 16) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(size)
        self._error: SshError | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def put(self, payload: bytes) -> None:
        await self._queue.put(payload)

    def fail(self, exc: SshError) -> None:
        self._error = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> bytes:
        while True:
            if not self._queue.empty():
                return self._queue.get_nowait()
            if self._error is not None:
                raise self._error
            loop = asyncio.get_running_loop()
            getter = loop.create_task(self._queue.get())
            self._waiter = loop.create_future()
            try:
                await asyncio.wait((getter, self._waiter), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiter = None
            if getter.done():
                return getter.result()
            getter.cancel()


def _disconnect_reason(exc: SshError) -> int:
    if isinstance(exc, MacInvalid):
        return errors.DISCONNECT_MAC_ERROR
    if isinstance(exc, NegotiationFailed):
        return errors.DISCONNECT_KEY_EXCHANGE_FAILED
    if isinstance(exc, errors.HostKeyNotVerified):
        return errors.DISCONNECT_HOST_KEY_NOT_VERIFIABLE
    if isinstance(exc, errors.ServiceNotAvailable):
        return errors.DISCONNECT_SERVICE_NOT_AVAILABLE
    return errors.DISCONNECT_PROTOCOL_ERROR


class Transport:
    """One SSH connection's transport layer. Call ``handshake`` first."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: Role,
        config: TransportConfig | None = None, *, host_keys: Sequence[Signer] = (),
        host_key_check: Callable[[PublicKey], Awaitable[None]] | None = None,
    ) -> None:
        self.role = role
        self.config = config or TransportConfig()
        self._reader = reader
        self._writer = writer
        self._host_keys = host_keys
        self._host_key_check = host_key_check
        self.local_version = local_version(self.config.software_version)
        self.peer: PeerVersion | None = None
        self.kex: KexEngine | None = None
        #: name -> value of the peer's EXT_INFO extensions
        self.peer_extensions: dict[str, bytes] = {}
        self.authenticated = False
        #: the peer's latest DEBUG messages (bounded: a peer may send any number)
        self.debug_messages: collections.deque[str] = collections.deque(maxlen=64)
        #: sequence numbers the peer answered with UNIMPLEMENTED (the latest few)
        self.unimplemented: collections.deque[int] = collections.deque(maxlen=16)
        self._in = PacketReader()
        self._out = PacketWriter()
        self._inbound: _Inbound | None = None
        self._held: list[bytes] = []  # non-kex messages sent during a key exchange
        self._handlers: dict[int, MessageHandler] = {}
        self._queues: dict[int, MessageQueue] = {}
        self._service_waiter: asyncio.Future[None] | None = None
        self._pongs: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._kex_done: asyncio.Future[None] | None = None
        self._close_callbacks: list[Callable[[SshError], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._keyed_at = time.monotonic()
        self.error: SshError | None = None
        #: set while the reader is asked to stop at the next packet boundary (hand-over)
        self._stopping: asyncio.Future[None] | None = None
        #: decoded messages the layer above has not seen yet: dispatched first by the
        #: reader (a hand-over may carry some)
        self._replay: list[tuple[int, bytes]] = []

    @property
    def is_client(self) -> bool:
        return self.role is Role.CLIENT

    @property
    def session_id(self) -> bytes:
        if self.kex is None or self.kex.session_id is None:
            raise ProtocolError("no key exchange yet")
        return self.kex.session_id

    @property
    def server_sig_algs(self) -> tuple[str, ...] | None:
        """The server's server-sig-algs extension, or None if it sent none."""
        value = self.peer_extensions.get("server-sig-algs")
        if value is None:
            return None
        return tuple(value.decode("ascii", "replace").split(","))

    # -- start-up -------------------------------------------------------------------

    async def handshake(self) -> None:
        """Exchange identification strings and run the first key exchange."""
        self._inbound = _take_over(self._reader, self._writer, self._in)
        self._writer.write(self.local_version.encode("utf-8") + b"\r\n")
        versions = VersionReader(server=not self.is_client)
        try:
            while self.peer is None:
                if not self._in.buffered:
                    if self._inbound.error is not None:
                        raise self._inbound.error
                    if self._inbound.eof:
                        raise ConnectionClosed("Connection closed by remote host")
                    await self._inbound.wait()
                    continue
                self.peer = versions.feed(self._in.take_buffered())
        except SshError as exc:
            self._fail(exc, notify=False)
            raise
        except OSError as exc:
            closed = ConnectionClosed(exc.strerror or str(exc))
            self._fail(closed, notify=False)
            raise closed from exc
        self._in.feed(versions.leftover)
        client_v, server_v = (
            (self.local_version, self.peer.line) if self.is_client
            else (self.peer.line, self.local_version)
        )
        self.kex = KexEngine(
            client=self.is_client, prefs=self.config.algorithms, hooks=self,
            client_version=client_v, server_version=server_v, host_keys=self._host_keys,
            verify_host_key=self._host_key_check, strict=self.config.strict_kex,
            ext_info=self.config.ext_info,
        )
        self._kex_done = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read_loop())
        self.kex.start()
        await self._wait(self._kex_done)

    # -- KexHooks ---------------------------------------------------------------------

    def send_kex(self, payload: bytes) -> None:
        self._write(payload)

    def install_outgoing(self, protection: Protection, reset_seq: bool) -> None:
        self._out.set_protection(protection)
        if reset_seq:
            self._out.seq = 0
        if self.authenticated:
            self._start_compression(outgoing=True)
        if self.kex is not None and self.kex.completed == 0 and not self.is_client \
                and self.kex.peer_ext_info and self.config.ext_info:
            self._write(self._ext_info())
        held, self._held = self._held, []
        for payload in held:
            self._send_now(payload)

    def install_incoming(self, protection: Protection, reset_seq: bool) -> None:
        self._in.set_protection(protection)
        if reset_seq:
            self._in.seq = 0
        if self.authenticated:
            self._start_compression(incoming=True)

    def _start_compression(self, *, outgoing: bool = False, incoming: bool = False) -> None:
        """A fresh zlib stream in each given direction that negotiated zlib@openssh.com
        (OpenSSH starts one at authentication and again at every later NEWKEYS)."""
        algs = self.kex.algorithms if self.kex is not None else None
        if algs is None:
            return
        c2s = algs.compression_c2s == ZLIB_DELAYED
        s2c = algs.compression_s2c == ZLIB_DELAYED
        out_on, in_on = (c2s, s2c) if self.is_client else (s2c, c2s)
        if outgoing:
            self._out.compressor = Compressor() if out_on else None
            self._out.compressed = 0
        if incoming:
            self._in.decompressor = Decompressor() if in_on else None
            self._in.decompressed = 0

    def kex_complete(self, first: bool) -> None:
        self._keyed_at = time.monotonic()
        if self._kex_done is not None and not self._kex_done.done():
            self._kex_done.set_result(None)

    # -- sending --------------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        """Queue one message for sending (held back while our key exchange runs)."""
        if self.error is not None:
            raise self.error
        msg = payload[0]
        if self.kex is not None and self.kex.sending_blocked \
                and not messages.is_transport_generic(msg):
            self._held.append(payload)
            return
        self._send_now(payload)
        self._maybe_rekey()

    def _send_now(self, payload: bytes) -> None:
        self._write(payload)
        if payload[0] == messages.USERAUTH_SUCCESS and not self.is_client \
                and not self.authenticated:
            # zlib@openssh.com starts right after the server's USERAUTH_SUCCESS.
            self.authenticated = True
            self._start_compression(outgoing=True, incoming=True)

    def _write(self, payload: bytes) -> None:
        self._writer.write(self._out.encode(payload))

    async def drain(self) -> None:
        """Wait until the socket buffer is below its high-water mark."""
        if self.error is not None:
            raise self.error
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            closed = ConnectionClosed(exc.strerror or str(exc))
            self._fail(closed, notify=False)
            raise closed from exc

    def _maybe_rekey(self) -> None:
        kex = self.kex
        if kex is None or kex.completed == 0 or kex.in_progress or self._stopping is not None:
            return
        limit = self.config.rekey_bytes or default_rekey_bytes(self._out.protection.block_size)
        due = (
            self._out.bytes >= limit or self._in.bytes >= limit
            or self._out.packets >= MAX_PACKETS_PER_KEY or self._in.packets >= MAX_PACKETS_PER_KEY
            or (self.config.rekey_seconds is not None
                and time.monotonic() - self._keyed_at >= self.config.rekey_seconds)
        )
        if due:
            kex.start()

    async def rekey(self) -> None:
        """Start a key re-exchange now and wait for it to finish."""
        assert self.kex is not None
        if self.error is not None:
            raise self.error
        self._kex_done = asyncio.get_running_loop().create_future()
        self.kex.start()
        await self._wait(self._kex_done)

    # -- upper layers ---------------------------------------------------------------

    def set_handler(self, numbers: Iterable[int], handler: MessageHandler) -> None:
        for n in numbers:
            self._handlers[n] = handler

    def subscribe(self, numbers: Iterable[int]) -> MessageQueue:
        queue = MessageQueue()
        if self.error is not None:
            queue.fail(self.error)
        for n in numbers:
            self._queues[n] = queue
        return queue

    def unsubscribe(self, numbers: Iterable[int]) -> None:
        for n in numbers:
            self._queues.pop(n, None)

    def on_close(self, callback: Callable[[SshError], None]) -> None:
        self._close_callbacks.append(callback)

    async def request_service(self, name: str) -> None:
        """Client role: SERVICE_REQUEST, then wait for SERVICE_ACCEPT."""
        self._service_waiter = asyncio.get_running_loop().create_future()
        self.send(Writer().byte(messages.SERVICE_REQUEST).string(name).getvalue())
        await self._wait(self._service_waiter)

    async def ping(self, data: bytes = b"") -> bytes:
        """Send ping@openssh.com and wait for its PONG (the server must advertise it)."""
        if "ping@openssh.com" not in self.peer_extensions:
            raise FeatureUnsupported()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pongs.append(fut)
        self.send(Writer().byte(messages.PING).string(data).getvalue())
        return await self._wait(fut)

    async def _wait(self, fut: asyncio.Future[T]) -> T:
        if self.error is not None and not fut.done():
            raise self.error
        return await fut

    # -- receiving ------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            inbound = self._inbound
            assert inbound is not None
            replay, self._replay = self._replay, []
            for seq, payload in replay:
                await self._dispatch(seq, payload)
            while True:
                if self._stopping is not None and self._in.at_boundary \
                        and (self.kex is None or not self.kex.in_progress):
                    inbound.stop()
                    if not self._stopping.done():
                        self._stopping.set_result(None)
                    return
                item = self._in.next()
                if item is None:
                    if inbound.eof:
                        if inbound.error is not None:
                            raise inbound.error
                        raise ConnectionClosed()
                    await inbound.wait()
                    continue
                await self._dispatch(*item)
                self._maybe_rekey()
        except SshError as exc:
            quiet = isinstance(exc, (ConnectionClosed, errors.DisconnectReceived))
            self._fail(exc, notify=not quiet)
        except (ConnectionError, OSError) as exc:
            self._fail(ConnectionClosed(str(exc)), notify=False)
        except asyncio.CancelledError:
            self._fail(ConnectionClosed(), notify=False)
            raise
        except Exception as exc:  # a bug: never leave waiters hanging
            log.exception("transport reader failed")
            self._fail(SshError(f"unexpected internal error: {exc!r}"), notify=True)

    async def _dispatch(self, seq: int, payload: bytes) -> None:
        msg = payload[0]
        kex = self.kex
        assert kex is not None
        if msg >= messages.GLOBAL_REQUEST and kex.completed and not kex.peer_in_kex:
            handler = self._handlers.get(msg)
            if handler is not None:  # the bulk of traffic: channel data, straight through
                handler(payload)
                return
        if kex.completed == 0 and seq == 0xFFFFFFFF:
            raise ProtocolError("incoming sequence number wrapped during initial key exchange")
        if messages.is_kex_message(msg):
            await kex.handle(seq, payload)
            return
        if kex.completed == 0 and msg != messages.DISCONNECT:
            if kex.strict and kex.peer_in_kex:
                raise ProtocolError(f"strict KEX violation: unexpected packet type {msg} "
                                    f"(seqnr {seq})")
            if not messages.is_transport_generic(msg):
                raise ProtocolError(f"unexpected message {msg} before key exchange")
        elif kex.peer_in_kex and not messages.is_transport_generic(msg):
            raise ProtocolError(f"unexpected message {msg} during key exchange")
        r = Reader(payload)
        r.byte()
        if msg == messages.DISCONNECT:
            reason = r.uint32()
            text = r.string().decode("utf-8", "replace")
            raise errors.DisconnectReceived(reason, text)
        if msg == messages.IGNORE:
            return
        if msg == messages.UNIMPLEMENTED:
            self.unimplemented.append(r.uint32())
            return
        if msg == messages.DEBUG:
            r.boolean()
            self.debug_messages.append(r.string().decode("utf-8", "replace"))
            return
        if msg == messages.SERVICE_REQUEST and not self.is_client:
            self._on_service_request(r.ascii())
            return
        if msg == messages.SERVICE_ACCEPT and self.is_client:
            r.ascii()
            if self._service_waiter is None or self._service_waiter.done():
                raise ProtocolError("unexpected SERVICE_ACCEPT")
            self._service_waiter.set_result(None)
            return
        if msg == messages.EXT_INFO:
            self._on_ext_info(r)
            return
        if msg == messages.PING:
            data = r.string()
            if self.authenticated and not kex.in_progress:
                self.send(Writer().byte(messages.PONG).string(data).getvalue())
            return
        if msg == messages.PONG:
            data = r.string()
            if self._pongs:
                self._pongs.popleft().set_result(data)
            return
        if msg == messages.USERAUTH_SUCCESS and self.is_client and not self.authenticated \
                and msg in self._queues:  # counts only while user authentication runs
            self.authenticated = True
            self._start_compression(outgoing=True, incoming=True)
        handler = self._handlers.get(msg)
        if handler is not None:
            handler(payload)
            return
        queue = self._queues.get(msg)
        if queue is not None:
            await queue.put(payload)
            return
        self._write(Writer().byte(messages.UNIMPLEMENTED).uint32(seq).getvalue())

    def _on_service_request(self, name: str) -> None:
        if name not in self.config.services:
            raise errors.ServiceNotAvailable(name)
        self.send(Writer().byte(messages.SERVICE_ACCEPT).string(name).getvalue())

    def _on_ext_info(self, r: Reader) -> None:
        count = r.uint32()
        extensions: dict[str, bytes] = {}
        for _ in range(min(count, 1024)):
            name = r.ascii()
            extensions[name] = r.string()
        r.end()
        self.peer_extensions.update(extensions)

    def _ext_info(self) -> bytes:
        ext = {
            "server-sig-algs": ",".join(self.config.server_sig_algs).encode("ascii"),
            "publickey-hostbound@openssh.com": b"0",
            "ping@openssh.com": b"0",
        }
        w = Writer().byte(messages.EXT_INFO).uint32(len(ext))
        for name, value in ext.items():
            w.string(name).string(value)
        return w.getvalue()

    # -- hand-over to another process (protocol.transport_handover) --------------------

    def request_stop(self) -> None:
        """Decode no packet after the current one unless a key exchange needs it."""
        transport_handover.request_stop(self)

    async def stop_reading(self) -> None:
        """Stop at the next packet boundary outside a key exchange, read nothing more
        and flush, so that ``export_state`` describes the connection exactly."""
        await transport_handover.stop_reading(self)

    def export_state(self) -> bytes:
        """The transport's state after ``stop_reading``, for ``resume`` in another process."""
        return transport_handover.export_state(self)

    @classmethod
    def resume(
        cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: bytes,
        config: TransportConfig | None = None, *, host_keys: Sequence[Signer] = (),
        host_key_check: Callable[[PublicKey], Awaitable[None]] | None = None,
    ) -> Transport:
        """A running transport over ``reader``/``writer`` (the same connection, now in
        this process) from ``export_state``'s bytes; rekeys run here from now on. Its
        reader task starts at the next await: install the handlers before that."""
        r, role = transport_handover.open_state(state)
        t = cls(reader, writer, Role(role), config, host_keys=host_keys,
                host_key_check=host_key_check)
        transport_handover.restore_state(t, r, host_keys, host_key_check)
        t._inbound = _take_over(reader, writer, t._in)
        t._task = asyncio.get_running_loop().create_task(t._read_loop())
        return t

    # -- ending ---------------------------------------------------------------------

    def _fail(self, exc: SshError, *, notify: bool) -> None:
        if self.error is not None:
            return
        self.error = exc
        if notify:
            try:
                text = exc.message if not isinstance(exc, MacInvalid) else "Packet corrupt"
                if isinstance(exc, ConnectionCorrupt):
                    text = "Packet corrupt"
                self._write(Writer().byte(messages.DISCONNECT).uint32(_disconnect_reason(exc))
                            .string(text).string("").getvalue())
            except Exception:  # the socket may already be gone
                pass
        self._writer.close()
        if self._inbound is not None:
            self._inbound.close()
        for fut in (self._kex_done, self._service_waiter, self._stopping, *self._pongs):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: nobody may be waiting any more
        self._pongs.clear()
        for queue in set(self._queues.values()):
            queue.fail(exc)
        for callback in self._close_callbacks:
            callback(exc)

    def disconnect(self, reason: int = errors.DISCONNECT_BY_APPLICATION,
                   description: str = "disconnected by user") -> None:
        """Send DISCONNECT and close; later operations raise ConnectionClosed."""
        if self.error is not None:
            return
        with contextlib.suppress(Exception):
            self._write(Writer().byte(messages.DISCONNECT).uint32(reason).string(description)
                        .string("").getvalue())
        self._fail(ConnectionClosed("disconnected by application"), notify=False)

    async def close(self) -> None:
        self.disconnect()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
