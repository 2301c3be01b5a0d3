"""Host key signatures across the privsep processes (OpenSSH's mm_answer_sign()).

The private host keys stay in the monitor; the network child and, after the hand-over,
the user's process hold only ``MonitorSigner``s, which ask the monitor over the
signature socket. The monitor signs only hash-sized data, and the first signature fixes
the session identifier in ``MonitorState``, so a compromised child cannot make it sign
anything else or replay another session's authentication.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from keytools.errors import ConnectionClosed, FeatureUnsupported, InvalidFormat, SshError
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol.privsep_channel import SIGN, SIGNED, frame, read_frame
from protocol.signer import Signer, sign_with

log = logging.getLogger("pyssh.sshd")

_HASH_SIZES = (20, 32, 48, 64)


class SignChannel:
    """The network child's side of the signature socket: one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()

    async def sign(self, index: int, algorithm: str, data: bytes) -> bytes:
        async with self.lock:
            self.writer.write(frame(SIGN, Writer().uint32(index).string(algorithm)
                                    .string(data).getvalue()))
            await self.writer.drain()
            answer = await read_frame(self.reader)
        if answer is None or answer[0] != SIGNED:
            raise ConnectionClosed("monitor closed the signature channel")
        signature = Reader(answer[1]).string()
        if not signature:
            raise SshError("host key signature refused by the monitor")
        return signature


@dataclass(frozen=True)
class MonitorSigner:
    """A host key whose private half stays in the monitor."""

    key: PublicKey
    index: int
    channel: SignChannel

    @property
    def public(self) -> PublicKey:
        return self.key

    async def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        return await self.channel.sign(self.index, algorithm or "", data)


@dataclass(frozen=True)
class PublicOnly:
    """A host key demoted to its public half (the user child may list host keys but
    never sign with them)."""

    key: PublicKey

    @property
    def public(self) -> PublicKey:
        return self.key

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        raise FeatureUnsupported("host keys sign only in the monitor")


@dataclass
class MonitorState:
    """What the monitor knows for itself: the session identifier it signed first."""

    session_id: bytes | None = None
    host_key_algorithm: str = ""
    auth_attempts: int = 0


async def serve_signatures(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           keys: Sequence[Signer], state: MonitorState) -> None:
    """mm_answer_sign(): host key signatures over exchange hashes only."""
    while True:
        item = await read_frame(reader)
        if item is None:
            return
        kind, body = item
        if kind != SIGN:
            raise InvalidFormat(f"unexpected monitor request {kind}")
        r = Reader(body)
        index = r.uint32()
        algorithm = r.ascii()
        data = r.string()
        r.end()
        signature = b""
        if index < len(keys) and len(data) in _HASH_SIZES:
            if state.session_id is None:
                state.session_id = data
            state.host_key_algorithm = algorithm
            try:
                signature = await sign_with(keys[index], data, algorithm)
            except SshError as exc:
                log.error("host key signature failed: %s", exc)
        else:
            log.error("monitor: refused signature request (key %d, %d bytes)", index,
                      len(data))
        writer.write(frame(SIGNED, Writer().string(signature).getvalue()))
        await writer.drain()
