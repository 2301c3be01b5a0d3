"""The pykeygen command: keytools' ssh-keygen, given the agent and PKCS#11 tokens.

keytools may not import agent (imports run protocol -> agent -> keytools), so the
agent-backed parts of ssh-keygen are handed to it here as ``KeySources``: ``-s -U`` and
``-Y sign`` sign through the agent at $SSH_AUTH_SOCK, ``-D`` reads a token with
python-pkcs11 (agent.keygen_pkcs11). Nothing is connected or loaded until an operation
asks, so ``pykeygen -l`` starts as fast as keytools alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keytools.cli.keysources import (
    AgentListFailed,
    AgentUnavailable,
    KeySourceError,
    KeySources,
    Signer,
)

if TYPE_CHECKING:
    from agent.client import AgentClient
    from agent.keygen_pkcs11 import TokenSource
    from keytools.cli.keysources import TokenKey
    from keytools.public import PublicKey


class AgentSource:
    """Finds a key in the agent and signs with it, over one connection (ssh-keygen's
    agent_fd); the agent is asked for its keys each time, as ssh-keygen asks once."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._client: AgentClient | None = None

    def _connect(self) -> AgentClient:
        """ssh_get_authentication_socket(): AgentUnavailable with its ssherr text."""
        from agent.client import AgentClient
        from agent.errors import AgentConnectionError

        if self._client is not None:
            return self._client
        path = self._path if self._path is not None else os.environ.get("SSH_AUTH_SOCK")
        if not path:
            raise AgentUnavailable()
        try:
            self._client = AgentClient(path)
        except AgentConnectionError as exc:
            raise AgentUnavailable(str(exc)) from None
        return self._client

    def __call__(self, public: PublicKey) -> Signer:
        """A signer for ``public`` if the agent holds a key with the same public half
        (sshkey_equal_public: a certificate matches its plain key)."""
        from agent.errors import AgentConnectionError, AgentError
        from keytools.errors import KeyNotFound

        client = self._connect()
        try:
            identities = client.list()
        except AgentConnectionError:
            raise AgentListFailed() from None
        except AgentError as exc:
            raise AgentListFailed(str(exc)) from None
        if not identities:
            raise AgentListFailed("agent contains no identities")
        if not any(ident.key.plain.same_key(public.plain) for ident in identities):
            raise KeyNotFound()

        def sign(data: bytes, algorithm: str | None) -> bytes:
            return self._sign(public, data, algorithm)

        return sign

    def _sign(self, public: PublicKey, data: bytes, algorithm: str | None) -> bytes:
        """ssh_agent_sign(): the signature, checked to be of the algorithm asked for."""
        from agent.client import sign_flags
        from agent.errors import AgentConnectionError
        from keytools.errors import SignatureAlgorithmUnsupported, SshError
        from keytools.wire import Reader

        client = self._connect()
        try:
            signature = client.sign(public, data, sign_flags(algorithm))
        except AgentConnectionError:
            raise KeySourceError("communication with agent failed") from None
        if algorithm is not None:
            try:
                used = Reader(signature).ascii()
            except SshError:
                used = ""
            if used != algorithm:
                raise SignatureAlgorithmUnsupported()
        return signature

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _Tokens:
    """The -D source, loading agent.keygen_pkcs11 (and python-pkcs11) only when used."""

    def __init__(self) -> None:
        self._source: TokenSource | None = None

    def __call__(self, provider: str, pin: str | None) -> list[TokenKey]:
        from agent.keygen_pkcs11 import TokenSource

        if self._source is None:
            self._source = TokenSource()
        return self._source(provider, pin)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def main(argv: list[str] | None = None) -> int:
    """The ``pykeygen`` console script."""
    from keytools.cli.pykeygen import main as keygen_main

    agent = AgentSource()
    tokens = _Tokens()
    try:
        return keygen_main(argv, sources=KeySources(agent_signer=agent, pkcs11_keys=tokens))
    finally:
        agent.close()
        tokens.close()


if __name__ == "__main__":
    main()
