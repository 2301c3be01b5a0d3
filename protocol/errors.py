"""Errors that carry protocol detail (reason codes, method lists) beyond ssherr's words.

They subclass the keytools types, so ``except SshError`` still catches everything.
"""

from __future__ import annotations

from keytools.errors import Disconnected, ProtocolError, SshError

#: RFC 4253 section 11.1 reason codes.
DISCONNECT_HOST_NOT_ALLOWED_TO_CONNECT = 1
DISCONNECT_PROTOCOL_ERROR = 2
DISCONNECT_KEY_EXCHANGE_FAILED = 3
DISCONNECT_RESERVED = 4
DISCONNECT_MAC_ERROR = 5
DISCONNECT_COMPRESSION_ERROR = 6
DISCONNECT_SERVICE_NOT_AVAILABLE = 7
DISCONNECT_PROTOCOL_VERSION_NOT_SUPPORTED = 8
DISCONNECT_HOST_KEY_NOT_VERIFIABLE = 9
DISCONNECT_CONNECTION_LOST = 10
DISCONNECT_BY_APPLICATION = 11
DISCONNECT_TOO_MANY_CONNECTIONS = 12
DISCONNECT_AUTH_CANCELLED_BY_USER = 13
DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = 14
DISCONNECT_ILLEGAL_USER_NAME = 15


class DisconnectReceived(Disconnected):
    """The peer sent SSH_MSG_DISCONNECT (ssh: "Received disconnect from H port P:code: text")."""

    def __init__(self, reason: int, description: str) -> None:
        super().__init__(f"Received disconnect: {reason}: {description}")
        self.reason = reason
        self.description = description


class AuthenticationFailed(SshError):
    """Every method was tried; the message is ssh's "Permission denied (list)."."""

    def __init__(self, methods: tuple[str, ...] = ()) -> None:
        super().__init__(f"Permission denied ({','.join(methods)}).")
        self.methods = methods


class HostKeyNotVerified(SshError):
    """The host key check callback refused the server's key."""

    default_message = "Host key verification failed."


#: RFC 4254 section 5.1 channel open failure reasons, worded as ssh prints them.
OPEN_FAILURE_REASONS = {
    1: "administratively prohibited",
    2: "connect failed",
    3: "unknown channel type",
    4: "resource shortage",
}


class ChannelOpenFailed(SshError):
    """The peer refused a CHANNEL_OPEN; ssh prints "channel N: open failed: reason: text"."""

    def __init__(self, reason: int, description: str) -> None:
        word = OPEN_FAILURE_REASONS.get(reason, "unknown reason")
        super().__init__(f"open failed: {word}: {description}")
        self.reason = reason
        self.description = description


class ChannelRequestFailed(SshError):
    """A channel request with want-reply got SSH_MSG_CHANNEL_FAILURE (ssh: "exec request
    failed on channel 0")."""

    def __init__(self, request: str, channel: int) -> None:
        super().__init__(f"{request} request failed on channel {channel}")
        self.request = request
        self.channel = channel


class ConnectFailed(SshError):
    """The TCP connection could not be made (ssh: "connect to host H port P: reason")."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"connect to host {host} port {port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class ServiceNotAvailable(ProtocolError):
    """A SERVICE_REQUEST for a service this server does not run (DISCONNECT reason 7)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"requested service {service} not available")
        self.service = service
