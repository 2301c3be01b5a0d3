"""The agent client: the ``Agent`` interface over a Unix socket (SSH_AUTH_SOCK).

One request at a time per connection (a lock serialises threads sharing a client);
replies longer than 256 KiB or not matching the request are communication errors.
"""

from __future__ import annotations

import builtins
import os
import socket
import threading
from types import TracebackType
from typing import TypeVar

from agent import messages as m
from agent.errors import (
    AgentCommunicationError,
    AgentConnectionError,
    AgentError,
    AgentExtensionFailure,
    AgentSocketError,
)
from agent.interface import Constraints, Identity
from agent.signflags import ALGORITHM_FLAGS as ALGORITHM_FLAGS
from agent.signflags import sign_flags as sign_flags
from keytools.errors import SshError
from keytools.private import PrivateKey
from keytools.public import PublicKey

R = TypeVar("R")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    parts: list[bytes] = []
    while n:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise AgentCommunicationError()
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


class AgentClient:
    """A connection to a running agent; implements ``agent.interface.Agent``."""

    def __init__(self, path: str | None = None, *, timeout: float | None = None) -> None:
        if path is None:
            path = os.environ.get("SSH_AUTH_SOCK") or None
        if not path:
            raise AgentConnectionError()
        self.path = path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise AgentSocketError(exc.strerror or str(exc)) from None
        self._sock: socket.socket | None = sock
        self._lock = threading.Lock()

    # --- plumbing ----------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def request(self, message: m.Request) -> m.Response:
        """Send one request and read its reply (any reply type)."""
        body = message.encode()
        with self._lock:
            sock = self._sock
            if sock is None:
                raise AgentCommunicationError()
            try:
                sock.sendall(m.frame(body))
                length = int.from_bytes(_recv_exact(sock, 4), "big")
                if length > m.MAX_MESSAGE:
                    raise AgentCommunicationError()
                reply = _recv_exact(sock, length)
            except OSError:
                raise AgentCommunicationError() from None
        try:
            return m.decode_response(reply)
        except SshError:
            raise AgentCommunicationError() from None

    def _expect(self, message: m.Request, kind: type[R]) -> R:
        reply = self.request(message)
        if isinstance(reply, kind):
            return reply
        if isinstance(reply, m.Failure):
            raise AgentError()
        raise AgentCommunicationError()

    def _simple(self, message: m.Request) -> None:
        self._expect(message, m.Success)

    # --- the Agent interface -----------------------------------------------------

    def list(self) -> list[Identity]:
        return list(self._expect(m.RequestIdentities(), m.IdentitiesAnswer).identities)

    def sign(self, key: PublicKey, data: bytes, flags: int = 0) -> bytes:
        reply = self._expect(m.SignRequest(key.blob(), data, flags), m.SignResponse)
        return reply.signature

    def add(self, key: PrivateKey, comment: str,
            constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self._simple(m.AddIdentity(key, comment, constraints))

    def remove(self, key: PublicKey) -> None:
        self._simple(m.RemoveIdentity(key.blob()))

    def remove_all(self) -> None:
        self._simple(m.RemoveAllIdentities())

    def lock(self, passphrase: bytes) -> None:
        self._simple(m.Lock(passphrase))

    def unlock(self, passphrase: bytes) -> None:
        self._simple(m.Unlock(passphrase))

    def extension(self, name: str, contents: bytes) -> bytes:
        """Contents of the reply after its number; AgentError if the agent does not
        know the extension (FAILURE), AgentExtensionFailure if it failed."""
        reply = self.request(m.Extension(name, contents))
        if isinstance(reply, m.Success):
            return b""
        if isinstance(reply, m.ExtensionResponse):
            return reply.contents
        if isinstance(reply, m.ExtensionFailure):
            raise AgentExtensionFailure()
        if isinstance(reply, m.Failure):
            raise AgentError()
        raise AgentCommunicationError()

    def add_smartcard(self, provider: str, pin: str,
                      constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self._simple(m.AddSmartcardKey(provider, pin, constraints))

    def remove_smartcard(self, provider: str, pin: str) -> None:
        self._simple(m.RemoveSmartcardKey(provider, pin))

    # --- conveniences --------------------------------------------------------------

    def query_extensions(self) -> builtins.list[str]:
        """The extensions the agent supports (``query``); AgentError if it has none."""
        contents = self.extension(m.EXT_QUERY, b"")
        try:
            return m.decode_query_reply(contents)
        except SshError:
            raise AgentCommunicationError() from None

    def session_bind(self, bind: m.SessionBind) -> None:
        """Bind this connection to an SSH session (session-bind@openssh.com)."""
        self.extension(m.EXT_SESSION_BIND, bind.encode())

    def sign_with_algorithm(self, key: PublicKey, data: bytes,
                            algorithm: str | None = None) -> bytes:
        """Sign, asking for ``algorithm`` (rsa-sha2-256/512 become the flags)."""
        return self.sign(key, data, sign_flags(algorithm))


def connect_agent(path: str | None = None, *, timeout: float | None = None) -> AgentClient:
    """A client for ``path`` or $SSH_AUTH_SOCK; AgentConnectionError if there is none."""
    return AgentClient(path, timeout=timeout)
