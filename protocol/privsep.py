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

The pieces live in their own modules, re-exported here: the socketpair framing and the
hand-over in protocol.privsep_channel, host key signing through the monitor in
protocol.privsep_sign, the relay transports of both sides in protocol.privsep_relay, and
the privsep user and chroot in protocol.login.
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
from typing import TYPE_CHECKING, Any

from keytools.errors import ConnectionClosed, SshError
from keytools.public import PublicKey
from protocol import errors
from protocol.login import (
    CHROOT_DIR,
    PRIVSEP_USERS,
    ConnectionInfo,
    become_user,
    drop_to_unprivileged,
    login_directory,
    prepare_chroot,
    privsep_user,
)
from protocol.penalty import EXIT_AUTH_ATTEMPTED, EXIT_CHILD_CRASH, EXIT_LOGIN_GRACE
from protocol.privsep_channel import (
    MAX_FRAME,
    MAX_HANDOVER,
    PAYLOAD,
    RELAY_READ,
    SIGN,
    SIGNED,
    FrameReader,
    frame,
    payload_frame,
    read_frame,
    receive_handover,
    send_handover,
    split_payload,
)
from protocol.privsep_relay import NetTransport, RelayTransport, forward_down
from protocol.privsep_sign import (
    MonitorSigner,
    MonitorState,
    PublicOnly,
    SignChannel,
    serve_signatures,
)
from protocol.transport import Role, Transport

if TYPE_CHECKING:
    from protocol.server import Server
    from protocol.server_auth import Authorization

#: the split-out pieces, still importable from here
__all__ = [
    "CHROOT_DIR", "HANDOVER_TIMEOUT", "MAX_FRAME", "MAX_HANDOVER", "PAYLOAD",
    "PRIVSEP_USERS", "RELAY_LIMIT", "RELAY_READ", "SIGN", "SIGNED", "FrameReader",
    "MonitorSigner", "MonitorState", "NetTransport", "PublicOnly", "RelayTransport",
    "SignChannel", "forward_down", "frame", "network_child", "payload_frame", "preload",
    "prepare_chroot", "privsep_user", "read_frame", "receive_handover", "run_connection",
    "send_handover", "serve_signatures", "split_payload",
]

log = logging.getLogger("pyssh.sshd")

#: how long the network child may wait for a key exchange to finish before it hands over
HANDOVER_TIMEOUT = 120.0
#: StreamReader buffer limit on the relay sockets (reading pauses at twice this)
RELAY_LIMIT = 1024 * 1024


# -- set-up ---------------------------------------------------------------------------


def preload() -> None:
    """Import everything the network child may need: after chroot nothing more can be
    imported (keytools, protocol and cryptography import lazily inside functions)."""
    import keytools
    import protocol

    # (importing every module has no side effects; this covers protocol.privsep_*)
    for package in (protocol, keytools):
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


# -- the network child ----------------------------------------------------------------


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
    channel = SignChannel(sign_r, sign_w)
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
    relay = loop.create_task(guarded(forward_down(transport, ctrl_r, authenticated)))

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

# -- the monitor ----------------------------------------------------------------------


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
    channel = SignChannel(sign_r, sign_w)
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
