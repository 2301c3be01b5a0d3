"""Serve any ``Agent`` on a Unix socket, many clients at once.

One thread per client connection: a slow request (an RSA signature, a confirmation
prompt) holds up only its own client, and cryptography releases the GIL while it
signs, so RSA signatures for several clients use every core. A frame longer than
256 KiB or a connection that ends mid-frame is closed; a frame that does not decode,
or any failure while serving it, is answered with SSH_AGENT_FAILURE. Nothing a client
sends can stop the server or disturb another client.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable

from agent import messages as m
from agent.errors import AgentExtensionFailure
from agent.interface import Agent, ConnectionAgent
from keytools.errors import SshError

Log = Callable[[str], None]

FAILURE_REPLY = m.Failure().encode()
#: Connections served at once; more are closed at once (ssh-agent is bounded by fds).
MAX_CONNECTIONS = 1024
#: How often the server wakes to expire keys and watch its parent, at most.
TICK = 1.0


class _Ucred(ctypes.Structure):
    _fields_ = (("pid", ctypes.c_int32), ("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32))


def peer_uid(sock: socket.socket) -> int | None:
    """The peer's effective uid (SO_PEERCRED), or None where it cannot be read."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, ctypes.sizeof(_Ucred))
    except (OSError, AttributeError):
        return None
    if len(raw) < ctypes.sizeof(_Ucred):
        return None
    return int(_Ucred.from_buffer_copy(raw).uid)


def set_non_dumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0): no core dumps, no ptrace by the same user."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(4, 0, 0, 0, 0)) == 0  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        return False


def bind_socket(path: str, backlog: int = 128) -> socket.socket:
    """A listening Unix socket at ``path``, created with mode 0600."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    sock.listen(backlog)
    return sock


def _dispatch(view: Agent, request: m.Request) -> bytes:
    if isinstance(request, m.SignRequest):
        # A KeyRing view looks the blob up directly; other agents get a decoded key.
        sign_blob = getattr(view, "sign_blob", None)
        if sign_blob is not None:
            sig: bytes = sign_blob(request.key_blob, request.data, request.flags)
        else:
            sig = view.sign(request.key, request.data, request.flags)
        return m.SignResponse(sig).encode()
    if isinstance(request, m.RequestIdentities):
        return m.IdentitiesAnswer(tuple(view.list())).encode()
    if isinstance(request, m.AddIdentity):
        view.add(request.key, request.comment, request.constraints)
    elif isinstance(request, m.RemoveIdentity):
        remove_blob = getattr(view, "remove_blob", None)
        if remove_blob is not None:
            remove_blob(request.key_blob)
        else:
            view.remove(request.key)
    elif isinstance(request, m.RemoveAllIdentities):
        view.remove_all()
    elif isinstance(request, m.Lock):
        view.lock(request.passphrase)
    elif isinstance(request, m.Unlock):
        view.unlock(request.passphrase)
    elif isinstance(request, m.AddSmartcardKey):
        view.add_smartcard(request.provider, request.pin, request.constraints)
    elif isinstance(request, m.RemoveSmartcardKey):
        view.remove_smartcard(request.provider, request.pin)
    elif isinstance(request, m.Extension):
        contents = view.extension(request.name, request.contents)
        return m.ExtensionResponse(contents).encode() if contents else m.Success().encode()
    else:
        return FAILURE_REPLY
    return m.Success().encode()


def handle_message(view: Agent, body: bytes, log: Log | None = None) -> bytes:
    """The reply to one request body; never raises."""
    try:
        request = m.decode_request(body)
    except SshError as exc:
        if log:
            log(f"malformed request: {exc}")
        return FAILURE_REPLY
    if log:
        log(f"request {type(request).__name__}")
    try:
        return _dispatch(view, request)
    except AgentExtensionFailure:
        return m.ExtensionFailure().encode()
    except SshError as exc:
        if log:
            log(f"{type(request).__name__}: {exc}")
        return FAILURE_REPLY
    except Exception as exc:  # a bug in one request must not take the agent down
        if log:
            log(f"{type(request).__name__}: internal error: {exc!r}")
        return FAILURE_REPLY


def serve_connection(view: Agent, conn: socket.socket, log: Log | None = None) -> None:
    """Answer requests on ``conn`` until it closes or sends an invalid frame."""
    with conn, conn.makefile("rb", buffering=65536) as rfile:
        while True:
            header = rfile.read(4)
            if len(header) < 4:
                return
            length = int.from_bytes(header, "big")
            if length == 0 or length > m.MAX_MESSAGE:
                if log:
                    log(f"closing connection: message length {length}")
                return
            body = rfile.read(length)
            if len(body) < length:
                return
            reply = handle_message(view, body, log)
            conn.sendall(len(reply).to_bytes(4, "big") + reply)


class AgentServer:
    """Accepts clients on a listening socket and serves ``agent`` to each."""

    def __init__(self, agent: Agent, listener: socket.socket, *, check_uid: bool = True,
                 log: Log | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        self.agent = agent
        self.listener = listener
        self.check_uid = check_uid
        self.log = log
        self.max_connections = max_connections
        self._active = 0
        self._count_lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_w, False)
        self._stopped = threading.Event()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (safe from a signal handler or another thread)."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    def _view(self) -> Agent:
        if isinstance(self.agent, ConnectionAgent):
            return self.agent.connection()
        return self.agent

    def _client(self, conn: socket.socket) -> None:
        try:
            serve_connection(self._view(), conn, self.log)
        except OSError as exc:
            if self.log:
                self.log(f"connection error: {exc}")
        finally:
            with self._count_lock:
                self._active -= 1

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        conn.setblocking(True)
        uid = peer_uid(conn)
        if self.check_uid and uid is not None and uid != 0 and uid != os.getuid():
            if self.log:
                self.log(f"uid mismatch: peer euid {uid} != uid {os.getuid()}")
            conn.close()
            return
        with self._count_lock:
            if self._active >= self.max_connections:
                conn.close()
                return
            self._active += 1
        threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _tick(self) -> float:
        reap = getattr(self.agent, "reap", None)
        if reap is None:
            return TICK
        next_death: float | None = reap()
        if next_death is None:
            return TICK
        return max(0.01, min(TICK, next_death - time.monotonic()))

    def serve_forever(self, watch: Callable[[], bool] | None = None) -> None:
        """Serve until ``shutdown``, or until ``watch()`` returns False on a tick."""
        self.listener.setblocking(False)
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            sel.register(self._stop_r, selectors.EVENT_READ)
            while not self._stopped.is_set():
                timeout = self._tick()
                for key, _ in sel.select(timeout):
                    if key.fileobj is self.listener:
                        self._accept()
                if watch is not None and not watch():
                    break
        os.close(self._stop_r)
        os.close(self._stop_w)
