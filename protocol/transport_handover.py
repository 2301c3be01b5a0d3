"""Handing a running transport to another process (privsep, after authentication).

The network child stops its transport at a packet boundary outside a key exchange,
flushes it and serialises its state; the user's process rebuilds a transport from those
bytes over the same socket and runs it from there, rekeys included. ``Transport`` keeps
thin methods (``request_stop``, ``stop_reading``, ``export_state``, ``resume``) calling
these; the stop itself is honoured by its reader loop, which owns the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from keytools.errors import FeatureUnsupported, ProtocolError
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol.compression import Compressor, Decompressor
from protocol.kex import KexEngine
from protocol.kex.hostkey import algorithms_for_key
from protocol.kex.kexinit import Algorithms
from protocol.signer import Signer
from protocol.version import PeerVersion

if TYPE_CHECKING:
    from protocol.transport import Transport

#: the version of ``export_state``'s format
STATE_FORMAT = 1


def request_stop(t: Transport) -> None:
    """Decode no packet after the current one unless a key exchange needs it (called
    right after sending USERAUTH_SUCCESS, so nothing compressed is decoded here)."""
    if t.error is not None:
        raise t.error
    if t._stopping is None:
        t._stopping = asyncio.get_running_loop().create_future()
        if t._inbound is not None:
            t._inbound._wake()


async def stop_reading(t: Transport) -> None:
    """Stop decoding at the next packet boundary outside a key exchange (one in
    progress is finished first) and read nothing more from the socket; then wait
    until everything queued for sending has reached the socket. Afterwards
    ``export_state`` describes the connection exactly."""
    t.request_stop()  # through the method, as a subclass may extend it
    assert t._stopping is not None
    await t._wait(t._stopping)
    out = t._writer.transport
    if isinstance(out, asyncio.WriteTransport):
        out.set_write_buffer_limits(high=0)  # drain() now waits for an empty buffer
    await t.drain()


def export_state(t: Transport) -> bytes:
    """The transport's state after ``stop_reading``: versions, session identifier,
    negotiated algorithms, each direction's keys, cipher position, sequence number
    and rekey counters, bytes received but not decoded (``resume`` undoes it)."""
    kex = t.kex
    if t._stopping is None or not t._stopping.done() or kex is None \
            or kex.in_progress or kex.session_id is None or kex.algorithms is None \
            or t.peer is None:
        raise FeatureUnsupported("transport state exported while it is running")
    algs = kex.algorithms
    w = Writer().uint32(STATE_FORMAT).string(t.role.value).string(t.local_version)
    w.string(t.peer.line).string(t.peer.software).string(t.peer.comments)
    w.string(kex.session_id).boolean(kex.strict).boolean(kex.peer_ext_info)
    w.uint32(kex.completed)
    for name in (algs.kex, algs.host_key, algs.cipher_c2s, algs.cipher_s2c,
                 algs.mac_c2s or "", algs.mac_s2c or "", algs.compression_c2s,
                 algs.compression_s2c):
        w.string(name)
    w.boolean(t.authenticated)
    w.uint32(len(t.peer_extensions))
    for ext, value in t.peer_extensions.items():
        w.string(ext).string(value)
    t._out.export_state(w)
    t._in.export_state(w)
    w.uint32(len(t._replay))
    for seq, payload in t._replay:
        w.uint32(seq).string(payload)
    return w.getvalue()


def open_state(state: bytes) -> tuple[Reader, str]:
    """Start reading ``export_state``'s bytes: the reader positioned after the role,
    and the role's name (the transport must be built for it before ``restore_state``)."""
    r = Reader(state)
    if r.uint32() != STATE_FORMAT:
        raise ProtocolError("unknown transport state format")
    return r, r.ascii()


def restore_state(
    t: Transport, r: Reader, host_keys: Sequence[Signer],
    host_key_check: Callable[[PublicKey], Awaitable[None]] | None,
) -> None:
    """Load the rest of the state into a fresh ``t``: a key engine already keyed, the
    packet layers at their positions, and the messages still to be dispatched."""
    t.local_version, line, software, comments = (
        r.string().decode("utf-8", "surrogateescape") for _ in range(4))
    t.peer = PeerVersion(line, software, comments)
    client_v, server_v = ((t.local_version, t.peer.line) if t.is_client
                          else (t.peer.line, t.local_version))
    kex = KexEngine(
        client=t.is_client, prefs=t.config.algorithms, hooks=t, client_version=client_v,
        server_version=server_v, host_keys=host_keys, verify_host_key=host_key_check,
        strict=t.config.strict_kex, ext_info=t.config.ext_info,
    )
    kex.session_id = r.string()
    kex.strict = r.boolean()
    kex.peer_ext_info = r.boolean()
    kex.completed = r.uint32()
    names = [r.ascii() for _ in range(8)]
    kex.algorithms = Algorithms(names[0], names[1], names[2], names[3], names[4] or None,
                                names[5] or None, names[6], names[7])
    if not t.is_client:
        for signer in host_keys:
            if kex.algorithms.host_key in algorithms_for_key(signer.public):
                kex.host_key = signer.public
                break
    t.kex = kex
    t.authenticated = r.boolean()
    for _ in range(min(r.uint32(), 1024)):
        ext = r.ascii()
        t.peer_extensions[ext] = r.string()
    if t._out.restore_state(r):
        t._out.compressor = Compressor()
    if t._in.restore_state(r):
        t._in.decompressor = Decompressor()
    count = r.uint32()
    for _ in range(count):
        seq = r.uint32()
        t._replay.append((seq, r.string()))
    r.end()
