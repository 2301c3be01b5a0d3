"""Keys pykeygen uses but keytools cannot reach: a key held by an agent, keys on a token.

Imports run protocol -> agent -> keytools, so keytools never talks to an agent or loads
a PKCS#11 library itself. Whoever starts pykeygen passes a ``KeySources`` in
(``agent.keygen`` is the installed command); ``python -m keytools.cli.pykeygen`` has
none, and then -U, -D and signing with an agent's key say so instead of working.

Each source raises an SshError whose text is OpenSSH's ssherr wording for the failure
(``agent not present``, ``agent refused operation``, ``error in libcrypto``); lines
OpenSSH logs on the way (``C_Login failed: 160``) the source writes to stderr itself,
when they happen, as OpenSSH's error() does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import SshError

if TYPE_CHECKING:
    from keytools.public import PublicKey

#: signs ``data``, asking for an algorithm name (None: the key's own); an SSH signature blob
Signer = Callable[[bytes, "str | None"], bytes]


class KeySourceError(SshError):
    """A source failed (its lines are already logged); the text is the ssherr wording."""

    default_message = "error in libcrypto"


class AgentUnavailable(KeySourceError):
    """No agent could be reached (ssh_get_authentication_socket failed); the text is
    "agent not present" or the connect() strerror."""

    default_message = "agent not present"


class AgentListFailed(KeySourceError):
    """The agent was reached but would not list its keys (ssh_fetch_identitylist)."""

    default_message = "communication with agent failed"


@dataclass(frozen=True)
class TokenKey:
    """One public key a PKCS#11 provider offers, its label, and how to sign with it
    (the signer logs in on first use, asking for the PIN if none was given)."""

    key: PublicKey
    comment: str
    sign: Signer


#: public key -> a signer that asks the agent; raises AgentUnavailable, AgentListFailed,
#: or KeyNotFound when the agent holds no key with that public half
AgentSignerLookup = Callable[["PublicKey"], Signer]
#: (provider library, PIN or None) -> its keys; KeySourceError when none can be read
TokenKeyLister = Callable[[str, "str | None"], list[TokenKey]]


@dataclass(frozen=True)
class KeySources:
    """What the running program can reach besides files; None means "not in this build"."""

    agent_signer: AgentSignerLookup | None = None
    pkcs11_keys: TokenKeyLister | None = None


def unavailable(what: str) -> str:
    """The message for an operation whose source this build lacks."""
    from keytools.cli.output import PROGNAME

    return (f"{PROGNAME}: {what} is not implemented yet in keytools.cli.pykeygen alone "
            "(it needs the agent package: run the pykeygen command, agent.keygen)")
