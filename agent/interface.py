"""The one agent interface, served by the daemon and implemented by the key store and
the socket client alike (the shape of Go's x/crypto/ssh/agent ``Agent``).

Forwarding, tests and the client stack all talk to an ``Agent``; whether the keys live in
this process (``agent.keyring.KeyRing``) or behind a socket (``agent.client.AgentClient``)
does not matter to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from keytools.public import PublicKey


@dataclass(frozen=True)
class Identity:
    """A key the agent holds, as REQUEST_IDENTITIES lists it (a certificate for cert keys)."""

    key: PublicKey
    comment: str


@dataclass(frozen=True)
class HopKey:
    """One host key of a destination-constraint hop; ``is_ca`` for a host CA key."""

    key: PublicKey
    is_ca: bool = False


@dataclass(frozen=True)
class Hop:
    """One end of a hop: ``user`` (may be empty), ``hostname`` and its host keys.

    An empty hostname with no keys in a ``from`` hop means "the host running the agent".
    """

    user: str = ""
    hostname: str = ""
    keys: tuple[HopKey, ...] = ()


@dataclass(frozen=True)
class DestinationConstraint:
    """A permitted hop ``from_hop`` -> ``to_hop`` (ssh-add -h, restrict-destination-v00)."""

    from_hop: Hop
    to_hop: Hop


@dataclass(frozen=True)
class Constraints:
    """Limits attached to a key when it is added (ADD_ID_CONSTRAINED and friends).

    ``lifetime`` in seconds; ``max_signatures`` (OpenSSH's maxsign); ``destinations`` are
    restrict-destination-v00@openssh.com hops; ``associated_certs`` and ``certs_only`` are
    associated-certs-v00@openssh.com (smartcard keys only); ``sk_provider`` is
    sk-provider@openssh.com (FIDO keys, refused by this agent).
    """

    lifetime: int | None = None
    confirm: bool = False
    max_signatures: int | None = None
    destinations: tuple[DestinationConstraint, ...] = ()
    associated_certs: tuple[PublicKey, ...] = ()
    certs_only: bool = False
    sk_provider: str | None = None

    @property
    def empty(self) -> bool:
        return self == Constraints()


@runtime_checkable
class Agent(Protocol):
    """What any agent does. Every failure raises ``agent.errors.AgentError`` (or a
    subclass); a broken connection raises ``AgentConnectionError``."""

    def list(self) -> list[Identity]:
        """The identities held, in the order they were added."""
        ...

    def sign(self, key: PublicKey, data: bytes, flags: int = 0) -> bytes:
        """An SSH signature blob over ``data``; ``flags`` are SSH_AGENT_RSA_SHA2_256/512."""
        ...

    def add(self, key: PrivateKey, comment: str,
            constraints: Constraints = Constraints()) -> None:
        """Add (or replace) a private key; a certified key carries its certificate."""
        ...

    def remove(self, key: PublicKey) -> None:
        ...

    def remove_all(self) -> None:
        ...

    def lock(self, passphrase: bytes) -> None:
        ...

    def unlock(self, passphrase: bytes) -> None:
        ...

    def extension(self, name: str, contents: bytes) -> bytes:
        """Run an extension request; the reply's contents after the message number
        (b"" for a plain SUCCESS)."""
        ...

    def add_smartcard(self, provider: str, pin: str,
                      constraints: Constraints = Constraints()) -> None:
        ...

    def remove_smartcard(self, provider: str, pin: str) -> None:
        ...


@runtime_checkable
class ConnectionAgent(Protocol):
    """An agent that keeps per-connection state (session-bind@openssh.com bindings):
    the daemon asks it for one ``Agent`` view per client connection."""

    def connection(self) -> Agent:
        ...


@runtime_checkable
class SmartcardBackend(Protocol):
    """Loads a PKCS#11 provider's keys for ``KeyRing`` (implemented in agent.pkcs11).

    ``load`` returns (key, comment) pairs whose ``sign`` runs on the token; an empty
    comment is replaced by the provider path. It raises an SshError (e.g. AgentError)
    when the provider cannot be loaded or is already loaded. ``unload`` forgets the
    provider (AgentError if it was not loaded).
    """

    def load(self, provider: str, pin: str) -> list[tuple[PrivateKey, str]]:
        ...

    def unload(self, provider: str) -> None:
        ...
