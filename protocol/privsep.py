"""Privilege separation for pysshd in root mode: a monitor, a network child, a user child.

The listener forks one process per connection: the **monitor** (root). It forks:

1. the **network child** (``[net]``), which chroots to /run/sshd, drops every group and
   becomes the ``sshd`` user (``nobody`` if there is none) before it reads a byte from the
   client. It runs everything that parses hostile input before authentication: the
   version exchange, the key exchange, packet decryption, MAC checks and the transport
   messages. It holds no private key: a host key signature is a request to the monitor
   (``SIGN``: key index, algorithm, data; the monitor signs only hash-sized data, and the
   first one fixes the session identifier, as OpenSSH's mm_answer_sign does). It passes
   each decrypted message >= 50 up to the monitor as (sequence number, payload).
2. after authentication, the **user child**, which calls ``login.become_user`` (groups,
   gid, uid of the user) and then owns the connection: as OpenSSH's post-auth process
   imports the pre-auth child's key state, it receives the client socket and the
   transport state from the network child and runs the transport itself (encryption,
   MACs, compression, rekeys) and the connection protocol (channels, sessions,
   forwarding), all as the user.

The hand-over. When the monitor's USERAUTH_SUCCESS goes out, the network child decodes
no further packet (``Transport.request_stop``; a key exchange in progress is finished
first), stops reading the socket, flushes what it has queued and exports the transport
state (``Transport.export_state``: versions, session identifier, strict-kex and ext-info
flags, negotiated algorithms, and per direction the keys, the cipher position (AES-GCM
invocation counter, AES-CTR keystream offset), sequence number and rekey counters, plus
the bytes received but not yet decoded). zlib@openssh.com starts at USERAUTH_SUCCESS and
the hand-over happens before any compressed packet, so no zlib state crosses; a state
that would need one is refused. It sends the state with the client socket and its
signature socket (SCM_RIGHTS) over the data socketpair, whose other end the user child
inherited from the monitor, and exits; the monitor reaps it. The user child checks that
the state's session identifier is the one the monitor fixed, then resumes the transport
(``Transport.resume``); its rekeys ask the monitor for the host key signature over the
same SIGN channel. The network child's state is as trusted as its relayed messages were
before (it could already have injected any of those); the user child parses it with the
bounds-checked wire codec, as the user, never as root.

The monitor itself runs user authentication (server_auth.UserAuthServer) over a
``RelayTransport``: it sees only MAC-checked, decrypted USERAUTH messages, parsed with the
bounds-checked wire codec, and it is the only process that reads authorized_keys,
TrustedUserCAKeys, RevokedKeys, passwd/shadow, and that verifies the user's signature (over
the session identifier it fixed itself, so a compromised network child cannot replay or
invent an authentication). After authentication it stays as root only to answer rekey
signatures and to reap its children.

Not separated (documented gaps): the monitor parses the USERAUTH messages (OpenSSH parses
them in the network child); there is no seccomp sandbox; the children are forked, not
re-executed, so while they drop every reference to the host private keys (OpenSSL clears
key memory it frees) copies of key bytes made by Python while loading may survive in
their heap; without root (unprivileged mode) there is no separation at all, only one
process per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import pkgutil
import pwd
import signal
import socket
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from keytools.errors import ConnectionClosed, FeatureUnsupported, InvalidFormat, SshError
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol import errors, messages
from protocol.login import ConnectionInfo, become_user, drop_to_unprivileged, login_directory
from protocol.penalty import EXIT_AUTH_ATTEMPTED, EXIT_CHILD_CRASH, EXIT_LOGIN_GRACE
from protocol.signer import Signer, sign_with
from protocol.transport import Role, Transport

if TYPE_CHECKING:
    from protocol.kex import KexEngine
    from protocol.server import Server
    from protocol.server_auth import Authorization

log = logging.getLogger("pyssh.sshd")

CHROOT_DIR = "/run/sshd"
PRIVSEP_USERS = ("sshd", "nobody")
#: frame kinds on the socketpairs between the three processes
PAYLOAD = 1
SIGN = 2
SIGNED = 3
#: a frame carries at most one packet's payload plus a little
MAX_FRAME = 512 * 1024
_HASH_SIZES = (20, 32, 48, 64)
RELAY_READ = 256 * 1024
#: the largest transport state a hand-over may carry (undecoded bytes included)
MAX_HANDOVER = 16 * 1024 * 1024
#: how long the network child may wait for a key exchange to finish before it hands over
HANDOVER_TIMEOUT = 120.0
#: StreamReader buffer limit on the relay sockets (reading pauses at twice this)
RELAY_LIMIT = 1024 * 1024


def frame(kind: int, body: bytes) -> bytes:
    return Writer().uint32(len(body) + 1).byte(kind).getvalue() + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next (kind, body), or None at a clean end of stream."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionClosed("relay closed inside a frame") from None
        return None
    length = Reader(head).uint32()
    if not 1 <= length <= MAX_FRAME:
        raise InvalidFormat(f"relay frame of {length} bytes")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("relay closed inside a frame") from None
    return body[0], body[1:]


class FrameReader:
    """Frames from a stream, parsed out of large reads (one await per read, not per
    frame: bulk data crosses the relay in many frames per system call)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self._buf = bytearray()
        self._pos = 0

    async def next(self) -> tuple[int, bytes] | None:
        """The next (kind, body), or None at a clean end of stream."""
        while True:
            avail = len(self._buf) - self._pos
            if avail >= 4:
                length = Reader(bytes(self._buf[self._pos : self._pos + 4])).uint32()
                if not 1 <= length <= MAX_FRAME:
                    raise InvalidFormat(f"relay frame of {length} bytes")
                if avail >= 4 + length:
                    start = self._pos + 4
                    self._pos = start + length
                    return self._buf[start], bytes(self._buf[start + 1 : self._pos])
            data = await self.reader.read(RELAY_READ)
            if not data:
                if avail:
                    raise ConnectionClosed("relay closed inside a frame")
                return None
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += data


def payload_frame(seq: int, payload: bytes) -> bytes:
    return frame(PAYLOAD, Writer().uint32(seq).getvalue() + payload)


def _split_payload(body: bytes) -> tuple[int, bytes]:
    r = Reader(body)
    seq = r.uint32()
    payload = r.rest()
    if not payload:
        raise InvalidFormat("empty relayed payload")
    return seq, payload


# -- set-up ---------------------------------------------------------------------------


def preload() -> None:
    """Import everything the network child may need: after chroot nothing more can be
    imported (keytools, protocol and cryptography import lazily inside functions)."""
    import keytools
    import protocol

    for package in (protocol, keytools):  # (importing every module has no side effects)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            with contextlib.suppress(Exception):
                importlib.import_module(info.name)
    import cryptography

    for info in pkgutil.walk_packages(cryptography.__path__, "cryptography."):
        with contextlib.suppress(Exception):
            importlib.import_module(info.name)
    for name in ("zlib", "hmac", "secrets", "concurrent.futures.thread", "encodings.idna",
                 "asyncio.unix_events", "asyncio.selector_events"):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def privsep_user() -> pwd.struct_passwd | None:
    for name in PRIVSEP_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return None


def prepare_chroot() -> str | None:
    """/run/sshd, created 0755 root if missing; None if it cannot be used."""
    try:
        os.makedirs(CHROOT_DIR, mode=0o755, exist_ok=True)
        st = os.stat(CHROOT_DIR)
    except OSError as exc:
        log.error("Missing privilege separation directory: %s: %s", CHROOT_DIR, exc.strerror)
        return None
    if st.st_uid != 0 or st.st_mode & 0o022:
        log.error("%s must be owned by root and not group or world-writable.", CHROOT_DIR)
        return None
    return CHROOT_DIR


# -- the network child ----------------------------------------------------------------


class _SignChannel:
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
    channel: _SignChannel

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


async def _forward_down(transport: Transport, reader: asyncio.StreamReader,
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
        _, payload = _split_payload(body)
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


# -- the hand-over after authentication -----------------------------------------------


def send_handover(data: socket.socket, fds: Sequence[int], state: bytes) -> None:
    """Pass the client socket and the signature socket (SCM_RIGHTS) with the transport
    state to the user's process (blocking: the network child has nothing else to do)."""
    data.setblocking(True)
    socket.send_fds(data, [Writer().uint32(len(state)).getvalue()], list(fds))
    data.sendall(state)


def _recv_exactly(data: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = data.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            raise ConnectionClosed("network child closed inside the hand-over")
        chunks += chunk
    return bytes(chunks)


def receive_handover(data: socket.socket) -> tuple[socket.socket, socket.socket, bytes]:
    """The user's process: (client socket, signature socket, transport state)."""
    data.setblocking(True)
    msg, fds, flags, _ = socket.recv_fds(data, 4, 2)
    socks = [socket.socket(fileno=fd) for fd in fds]
    try:
        if not msg:
            raise ConnectionClosed("connection ended before the hand-over")
        if len(socks) != 2 or flags & getattr(socket, "MSG_CTRUNC", 0):
            raise InvalidFormat("hand-over without its two sockets")
        head = msg + _recv_exactly(data, 4 - len(msg)) if len(msg) < 4 else msg
        length = Reader(head).uint32()
        if length > MAX_HANDOVER:
            raise InvalidFormat(f"hand-over state of {length} bytes")
        return socks[0], socks[1], _recv_exactly(data, length)
    except BaseException:
        for s in socks:
            s.close()
        raise


async def _hand_over(transport: Transport, data: socket.socket, sock: socket.socket,
                     signs: socket.socket, timeout: float) -> None:
    """Stop at a packet boundary (a key exchange in progress finishes first), flush, and
    pass the connection on; the network child then exits."""
    await asyncio.wait_for(transport.stop_reading(), timeout)
    state = transport.export_state()
    send_handover(data, (sock.fileno(), signs.fileno()), state)


async def network_child(server: Server, sock: socket.socket, ctrl: socket.socket,
                        signs: socket.socket, data: socket.socket, conn: ConnectionInfo,
                        host_keys: Sequence[PublicKey]) -> int:
    """The unprivileged process that speaks to the client until authentication, then
    hands the connection to the user's process; returns its exit status."""
    reader, writer = await asyncio.open_connection(sock=sock)
    ctrl_r, ctrl_w = await asyncio.open_connection(sock=ctrl, limit=RELAY_LIMIT)
    sign_r, sign_w = await asyncio.open_connection(sock=signs)
    channel = _SignChannel(sign_r, sign_w)
    signers = [MonitorSigner(key, i, channel) for i, key in enumerate(host_keys)]
    transport = NetTransport(reader, writer, Role.SERVER, server.transport_config,
                             host_keys=signers)
    transport.to_monitor = ctrl_w
    authenticated = asyncio.Event()

    async def guarded(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except (SshError, ConnectionError, OSError) as exc:
            transport._fail(exc if isinstance(exc, SshError) else ConnectionClosed(str(exc)),
                            notify=False)

    loop = asyncio.get_running_loop()
    relay = loop.create_task(guarded(_forward_down(transport, ctrl_r, authenticated)))

    closed = asyncio.Event()
    transport.on_close(lambda exc: closed.set())

    async def preauth() -> None:
        await transport.handshake()
        waiters = {loop.create_task(authenticated.wait()), loop.create_task(closed.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    grace = server.config.login_grace_time or None
    status = 0
    try:
        try:
            await asyncio.wait_for(preauth(), grace)
            if authenticated.is_set() and transport.error is None:
                await _hand_over(transport, data, sock, signs, grace or HANDOVER_TIMEOUT)
                return 0
        except TimeoutError:
            log.info("Timeout before authentication for %s port %d", conn.client_address,
                     conn.client_port)
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR,
                                 "Timeout before authentication")
            status = EXIT_LOGIN_GRACE
        except (SshError, OSError) as exc:
            text = exc.message if isinstance(exc, SshError) else str(exc)
            if not isinstance(exc, ConnectionClosed):
                log.info("Connection closed by %s port %d [preauth]: %s",
                         conn.client_address, conn.client_port, text)
            transport.disconnect(errors.DISCONNECT_PROTOCOL_ERROR, text)
            status = 255
        await transport.wait_closed()
    finally:
        relay.cancel()
        for w in (ctrl_w, sign_w):
            w.close()
    return status


# -- the monitor's view of the connection ---------------------------------------------


@dataclass
class MonitorState:
    """What the monitor knows for itself: the session identifier it signed first."""

    session_id: bytes | None = None
    host_key_algorithm: str = ""
    auth_attempts: int = 0


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
                seq, payload = _split_payload(body)
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


async def _monitor_preauth(server: Server, ctrl: socket.socket, signs: socket.socket,
                           state: MonitorState, conn: ConnectionInfo, net_pid: int
                           ) -> tuple[Authorization | None, bool]:
    """User authentication in the monitor; (authorization, grace exceeded)."""
    ctrl_r, ctrl_w = await asyncio.open_connection(sock=ctrl)
    # a duplicate: this loop's transport closes it, the monitor keeps ``signs`` for rekeys
    sign_r, sign_w = await asyncio.open_connection(sock=signs.dup())
    loop = asyncio.get_running_loop()
    signer = loop.create_task(serve_signatures(sign_r, sign_w, server.host_keys, state))
    relay = RelayTransport(ctrl_r, ctrl_w, state)
    # where the client connected to, for Match LocalAddress/LocalPort (the relay's own
    # socket is a socketpair)
    relay.local_endpoint = (conn.server_address, conn.server_port)
    relay.start()
    grace = server.config.login_grace_time
    try:
        # the network child enforces LoginGraceTime with a DISCONNECT; this is the backstop
        auth = await asyncio.wait_for(
            server.authenticate(relay, conn.client_address, conn.client_port,
                                handshake=False), grace + 5 if grace else None)
        if auth is not None:
            # wait until the network child has the reply queued, then stop reading (it
            # may already have handed the connection over and closed the relay)
            with contextlib.suppress(SshError):
                await relay.drain()
        return auth, server.exit_status == EXIT_LOGIN_GRACE
    except TimeoutError:
        log.info("Timeout before authentication for %s port %d", conn.client_address,
                 conn.client_port)
        with contextlib.suppress(ProcessLookupError):
            os.kill(net_pid, signal.SIGKILL)
        return None, True
    finally:
        signer.cancel()
        with contextlib.suppress(asyncio.CancelledError, SshError, OSError):
            await signer
        sign_w.close()
        if relay._task is not None:
            relay._task.cancel()


async def _monitor_postauth(signs: socket.socket, server: Server, state: MonitorState,
                            net_pid: int) -> None:
    """Rekey signatures for the user's process; the network child, which exits at the
    hand-over, is reaped as soon as it does."""
    from protocol.server_child import wait_status

    reaper = asyncio.get_running_loop().create_task(wait_status(net_pid))
    sign_r, sign_w = await asyncio.open_connection(sock=signs)
    try:
        with contextlib.suppress(SshError, ConnectionError, OSError):
            await serve_signatures(sign_r, sign_w, server.host_keys, state)
    finally:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError, ChildProcessError, OSError):
            await reaper


async def _user_child(server: Server, data: socket.socket, auth: Authorization,
                      state: MonitorState, conn: ConnectionInfo) -> None:
    """The user's process: take the connection over from the network child and run the
    connection protocol on it, rekeys included (signatures still come from the monitor)."""
    client, signs, blob = receive_handover(data)
    data.close()
    reader, writer = await asyncio.open_connection(sock=client)
    sign_r, sign_w = await asyncio.open_connection(sock=signs)
    channel = _SignChannel(sign_r, sign_w)
    signers = [MonitorSigner(k.public, i, channel) for i, k in enumerate(server.host_keys)]
    transport = Transport.resume(reader, writer, blob, server.transport_config,
                                 host_keys=signers)
    # the monitor fixed the session identifier itself; the state must agree with it
    if transport.role is not Role.SERVER or not transport.authenticated \
            or state.session_id is None or transport.session_id != state.session_id:
        transport._fail(ConnectionClosed("bad hand-over"), notify=False)
        raise SshError("hand-over from the network child does not match the session")
    try:
        await server.serve(transport, auth, conn)
    finally:
        sign_w.close()


def _child_exit(code: int) -> None:
    logging.shutdown()
    os._exit(code)


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def run_connection(server: Server, sock: socket.socket, conn: ConnectionInfo,
                   on_authenticated: Callable[[], None] | None = None) -> int:
    """Serve one connection with privilege separation (we are root); the exit status
    tells the listener how pre-authentication ended (see protocol.penalty)."""
    unpriv = privsep_user()
    chroot_dir = prepare_chroot()
    ctrl_m, ctrl_c = socket.socketpair()
    sign_m, sign_c = socket.socketpair()
    data_m, data_c = socket.socketpair()
    net_pid = os.fork()
    if net_pid == 0:
        code = EXIT_CHILD_CRASH
        try:
            for s in (ctrl_m, sign_m, data_m):
                s.close()
            if unpriv is None:
                raise SshError("Privilege separation user sshd does not exist")
            # demote_sensitive_data(), as far as Python allows: drop our references to
            # the private keys (OpenSSL clears key memory it frees)
            publics = [k.public for k in server.host_keys]
            server.host_keys = []
            gc.collect()
            drop_to_unprivileged(unpriv, chroot_dir)
            code = asyncio.run(network_child(server, sock, ctrl_c, sign_c, data_c, conn,
                                             publics))
        except SshError as exc:
            log.error("%s", exc.message)
        except BaseException:  # a crash of the network child: the listener penalises it
            log.exception("network child crashed")
        _child_exit(code)
    for s in (sock, ctrl_c, sign_c, data_c):
        s.close()
    state = MonitorState()
    try:
        auth, grace_exceeded = asyncio.run(
            _monitor_preauth(server, ctrl_m, sign_m, state, conn, net_pid))
    except Exception:
        log.exception("monitor failed")
        auth, grace_exceeded = None, False
    if auth is None:
        ctrl_m.close()
        sign_m.close()
        status = _wait(net_pid)
        if grace_exceeded or (os.WIFEXITED(status)
                              and os.WEXITSTATUS(status) == EXIT_LOGIN_GRACE):
            return EXIT_LOGIN_GRACE
        if os.WIFSIGNALED(status) or (os.WIFEXITED(status)
                                      and os.WEXITSTATUS(status) == EXIT_CHILD_CRASH):
            return EXIT_CHILD_CRASH
        return EXIT_AUTH_ATTEMPTED if state.auth_attempts > 0 else 255
    ctrl_m.close()
    if on_authenticated is not None:
        on_authenticated()
    try:
        pw = pwd.getpwnam(auth.user)
    except KeyError:
        log.error("user %s vanished after authentication", auth.user)
        os.kill(net_pid, signal.SIGTERM)
        _wait(net_pid)
        return 255
    user_pid = os.fork()
    if user_pid == 0:
        code = 255
        try:
            sign_m.close()
            server.host_keys = [PublicOnly(k.public) for k in server.host_keys]
            gc.collect()
            become_user(pw)
            with contextlib.suppress(OSError):
                os.chdir(login_directory(pw))
            asyncio.run(_user_child(server, data_m, auth, state, conn))
            code = 0
        except SshError as exc:
            log.error("%s", exc.message)
        except BaseException:
            log.exception("session process failed")
        _child_exit(code)
    data_m.close()
    with contextlib.suppress(Exception):
        asyncio.run(_monitor_postauth(sign_m, server, state, net_pid))
    sign_m.close()
    _wait(net_pid)
    _wait(user_pid)
    return 0
