"""Where pyssh's user keys come from, all of them behind the ``Agent`` interface.

Identities of a running agent (SSH_AUTH_SOCK or IdentityAgent, through
``agent.client.AgentClient``) and identity files (-i, IdentityFile), loaded into an
in-process ``agent.keyring.KeyRing``, become ``AgentSigner`` objects: the authentication
code sees one kind of key, and every signature is an ``Agent.sign`` call with the
rsa-sha2 flags of the algorithm the server chose. Order as ssh: agent keys (only those
named by an identity file when IdentitiesOnly is set), then files not already offered.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.interface import Agent
from keytools.errors import SshError, WrongPassphrase
from keytools.public import PublicKey
from protocol.ssh_log import Log


@dataclass(frozen=True)
class AgentSigner:
    """One agent-held key as a ``protocol.signer.Signer``."""

    agent: Agent
    key: PublicKey
    comment: str = ""
    #: held by a running agent (not loaded from a file by pyssh)
    from_agent: bool = False

    @property
    def public(self) -> PublicKey:
        return self.key

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        from agent.client import sign_flags

        return self.agent.sign(self.key, data, sign_flags(algorithm))


PassphraseAsker = Callable[[str], str | None]


@dataclass
class KeySource:
    """The signers for one connection and the agents behind them (closed by ``close``)."""

    signers: list[AgentSigner] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for closer in self._closers:
            closer()
        self._closers.clear()


def _load_file(path: str, log: Log, ask: PassphraseAsker | None) -> tuple[object, str] | None:
    """The private key in ``path`` (asking for a passphrase when it needs one), or None."""
    from keytools.errors import BadPermissions
    from keytools.keyfile import load_private

    try:
        return load_private(path, None)
    except WrongPassphrase:
        pass
    except BadPermissions as exc:
        for line in exc.warning.splitlines():
            log.error(line)
        log.info(f"Load key \"{path}\": bad permissions")
        return None
    except SshError as exc:
        log.info(f"Load key \"{path}\": {exc}")
        return None
    if ask is None:
        return None
    for _ in range(3):
        secret = ask(f"Enter passphrase for key '{path}': ")
        if not secret:
            return None
        try:
            return load_private(path, secret)
        except WrongPassphrase:
            continue
        except SshError as exc:
            log.info(f"Load key \"{path}\": {exc}")
            return None
    return None


def _public_of_file(path: str) -> PublicKey | None:
    """The key of an identity file for IdentitiesOnly matching: its .pub, if present."""
    from keytools.keyfile import load_public

    for candidate in (path + ".pub", path):
        try:
            return load_public(candidate)[0]
        except (SshError, OSError):
            continue
    return None


def collect_keys(
    identity_paths: tuple[str, ...], *, identities_only: bool, agent_socket: str | None,
    explicit: frozenset[str], log: Log, ask: PassphraseAsker | None = None,
) -> KeySource:
    """Agent identities then identity files, each as an AgentSigner.

    ``explicit`` are the files the user named (-i, IdentityFile): a missing one is warned
    about as ssh does; a missing default file (~/.ssh/id_*) is silently skipped.
    """
    from agent.client import AgentClient
    from agent.keyring import KeyRing

    source = KeySource()
    present: list[str] = []
    for path in identity_paths:
        if os.path.exists(path):
            present.append(path)
        elif path in explicit:
            log.info(f"Warning: Identity file {path} not accessible: No such file or directory.")
    wanted = {k.plain.blob() for k in (_public_of_file(p) for p in present) if k is not None}
    offered: set[bytes] = set()
    if agent_socket and agent_socket != "none":
        try:
            client = AgentClient(agent_socket)
        except SshError as exc:
            log.debug(f"get_agent_identities: ssh_get_authentication_socket: {exc}")
        else:
            source._closers.append(client.close)
            try:
                identities = client.list()
            except SshError as exc:
                log.debug(f"get_agent_identities: ssh_fetch_identitylist: {exc}")
                identities = []
            for ident in identities:
                if identities_only and ident.key.plain.blob() not in wanted:
                    continue
                source.signers.append(AgentSigner(client, ident.key, ident.comment, True))
                offered.add(ident.key.blob())
    ring = KeyRing()
    for path in present:
        public = _public_of_file(path)
        if public is not None and public.blob() in offered:
            continue
        loaded = _load_file(path, log, ask)
        if loaded is None:
            continue
        key, comment = loaded
        from keytools.private import PrivateKey

        assert isinstance(key, PrivateKey)
        if key.public.blob() in offered:
            continue
        ring.add(key, comment or path)
        source.signers.append(AgentSigner(ring, key.public, path))
        offered.add(key.public.blob())
    return source
