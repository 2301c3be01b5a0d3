"""The transports on either end of the pre-authentication relay.

``NetTransport`` (network child) runs the real SSH transport with the client and sends
each decrypted message >= 50 up to the monitor; ``forward_down`` writes the monitor's
replies out to the client. ``RelayTransport`` (monitor) looks like a transport to the
authentication code but only exchanges payloads with the network child, so the monitor
never parses a packet, a cipher or a key exchange itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, cast

from keytools.errors import ConnectionClosed, FeatureUnsupported, InvalidFormat, SshError
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.privsep_channel import PAYLOAD, FrameReader, payload_frame, split_payload
from protocol.privsep_sign import MonitorState
from protocol.transport import Role, Transport

if TYPE_CHECKING:
    from protocol.kex import KexEngine

log = logging.getLogger("pyssh.sshd")


class NetTransport(Transport):
    """The transport in the network child: before authentication, messages >= 50 go up
    the relay to the monitor instead of to local handlers, each with its sequence
    number. One decoded after the server's USERAUTH_SUCCESS (possible only while a key
    exchange finishes before the hand-over) is kept for the user's process."""

    to_monitor: asyncio.StreamWriter

    async def _dispatch(self, seq: int, payload: bytes) -> None:
        kex = self.kex
        if payload[0] >= 50 and kex is not None and kex.completed > 0 \
                and not kex.peer_in_kex:
            if self.authenticated:
                self._replay.append((seq, payload))
                return
            self.to_monitor.write(payload_frame(seq, payload))
            await self.to_monitor.drain()
            return
        await super()._dispatch(seq, payload)


async def forward_down(transport: Transport, reader: asyncio.StreamReader,
                       authenticated: asyncio.Event) -> None:
    """Payloads from the monitor out to the client."""
    frames = FrameReader(reader)
    while True:
        item = await frames.next()
        if item is None:
            return
        kind, body = item
        if kind != PAYLOAD:
            raise InvalidFormat(f"unexpected relay frame {kind}")
        _, payload = split_payload(body)
        if payload[0] == messages.DISCONNECT:
            r = Reader(payload)
            r.byte()
            transport.disconnect(r.uint32(), r.string().decode("utf-8", "replace"))
            return
        transport.send(payload)
        if payload[0] == messages.USERAUTH_SUCCESS:
            # from here on the client may send compressed packets: decode none of them
            transport.request_stop()
            authenticated.set()
            return  # the monitor has nothing more to say to the client
        await transport.drain()



class _Algorithms:
    def __init__(self, state: MonitorState) -> None:
        self._state = state
        self.compression_c2s = "none"
        self.compression_s2c = "none"

    @property
    def host_key(self) -> str:
        return self._state.host_key_algorithm


class _RelayKex:
    """The few KexEngine attributes the layers above a transport read."""

    sending_blocked = False
    in_progress = False
    peer_in_kex = False
    completed = 1
    strict = True

    def __init__(self, state: MonitorState) -> None:
        self._state = state
        self.algorithms = _Algorithms(state)

    @property
    def session_id(self) -> bytes | None:
        return self._state.session_id


class RelayTransport(Transport):
    """The transport as the monitor sees it before authentication: payloads to and from
    the network child over a socketpair. Key exchange happens elsewhere, so rekey is
    refused here (the network child rekeys on its own)."""

    #: (server address, port) the client connected to: read by protocol/server_auth.py
    local_endpoint: tuple[str, int] | None = None

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 state: MonitorState, *, authenticated: bool = False) -> None:
        super().__init__(reader, writer, Role.SERVER)
        self.state = state
        self.kex = cast("KexEngine", _RelayKex(state))
        self.authenticated = authenticated

    @property
    def session_id(self) -> bytes:
        if self.state.session_id is None:
            raise FeatureUnsupported("no session identifier yet")
        return self.state.session_id

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def handshake(self) -> None:
        raise FeatureUnsupported("the network child runs the handshake")

    async def rekey(self) -> None:
        raise FeatureUnsupported("the network child runs key exchanges")

    def _maybe_rekey(self) -> None:
        return

    def _write(self, payload: bytes) -> None:
        self._writer.write(payload_frame(0, payload))

    async def _read_loop(self) -> None:
        frames = FrameReader(self._reader)
        try:
            while True:
                item = await frames.next()
                if item is None:
                    raise ConnectionClosed()
                kind, body = item
                if kind != PAYLOAD:
                    raise InvalidFormat(f"unexpected relay frame {kind}")
                seq, payload = split_payload(body)
                await self._deliver(seq, payload)
        except SshError as exc:
            log.debug("relay to the network child closed: %s", exc)
            self._fail(exc, notify=not isinstance(exc, ConnectionClosed))
        except (ConnectionError, OSError) as exc:
            log.debug("relay to the network child failed: %s", exc)
            self._fail(ConnectionClosed(str(exc)), notify=False)
        except asyncio.CancelledError:
            self._fail(ConnectionClosed(), notify=False)
            raise

    async def _deliver(self, seq: int, payload: bytes) -> None:
        msg = payload[0]
        if msg == messages.USERAUTH_REQUEST and not self.authenticated:
            with contextlib.suppress(SshError):
                r = Reader(payload)
                r.byte()
                r.string()
                r.string()
                if r.string() != b"none":  # sshd's "none" probe is not an attempt
                    self.state.auth_attempts += 1
        handler = self._handlers.get(msg)
        if handler is not None:
            handler(payload)
            return
        queue = self._queues.get(msg)
        if queue is not None:
            await queue.put(payload)
            return
        self._write(Writer().byte(messages.UNIMPLEMENTED).uint32(seq).getvalue())
