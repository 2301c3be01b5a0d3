"""Where pyssh's user keys come from, all of them behind the ``Agent`` interface.

Identities of a running agent (SSH_AUTH_SOCK or IdentityAgent, through
``agent.client.AgentClient``) and identity files (-i, IdentityFile), loaded into an
in-process ``agent.keyring.KeyRing``, become signers: the authentication code sees one
kind of key, and every signature is an ``Agent.sign`` call with the rsa-sha2 flags of the
algorithm the server chose.

As ssh's pubkey_prepare (run after the key exchange): the agent connection is first bound
to the session (session-bind@openssh.com: the server's host key, the session id and the
server's signature over it) so destination-constrained keys (``ssh-add -h``) work; the
order is certificates from CertificateFile, agent keys that match an identity file,
other agent keys (not with IdentitiesOnly), then the remaining files. An identity file is
offered by its public key (the .pub file, the -cert.pub beside it, or the header of an
openssh-key-v1 file) and decrypted only when the server accepts it, with ssh's
"Enter passphrase for key '...': " prompt; AddKeysToAgent then adds it to the agent
(asking first with "ask", with the confirm and lifetime constraints it names).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keytools.errors import SshError, WrongPassphrase
from keytools.public import PublicKey
from protocol.ssh_log import Log

if TYPE_CHECKING:
    from agent.interface import Agent

PassphraseAsker = Callable[[str], str | None]


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


@dataclass(frozen=True)
class CertSigner:
    """A certificate presented by pyssh whose private half another signer holds
    (CertificateFile or id-cert.pub beside a key file or an agent key)."""

    signer: AgentSigner | FileSigner
    key: PublicKey  # the certificate
    comment: str = ""

    @property
    def public(self) -> PublicKey:
        return self.key

    @property
    def from_agent(self) -> bool:
        return self.signer.from_agent

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes | Awaitable[bytes]:
        return self.signer.sign(data, algorithm)


@dataclass
class FileLoader:
    """How identity files are decrypted (ssh's load_identity_file)."""

    log: Log
    ask: PassphraseAsker | None = None
    batch_mode: bool = False
    password_prompts: int = 3
    #: AddKeysToAgent (not "no"): the agent a decrypted key is added to
    add_to: Agent | None = None
    #: AddKeysToAgent: "yes", "ask" (SSH_ASKPASS confirms first) or "confirm" (added
    #: with the confirm constraint), and the lifetime constraint in seconds (0: none)
    add_mode: str = "yes"
    add_lifetime: int = 0

    def load(self, path: str) -> tuple[object, str] | None:
        """The private key in ``path``: no passphrase first, then up to
        NumberOfPasswordPrompts prompts (an empty answer gives up); None if unusable."""
        from keytools.errors import BadPermissions
        from keytools.keyfile import load_private

        if not os.path.exists(path):
            self.log.debug(f"no such identity: {path}: No such file or directory")
            return None
        prompt = f"Enter passphrase for key '{path}': "
        for attempt in range(self.password_prompts + 1):
            secret = ""
            if attempt:
                if self.ask is None:
                    return None
                secret = self.ask(prompt) or ""
                if not secret:
                    self.log.debug("no passphrase given, try next key", 2)
                    return None
            try:
                loaded = load_private(path, secret or None)
            except WrongPassphrase:
                if self.batch_mode:
                    return None
                if attempt:
                    self.log.debug("bad passphrase given, try again...", 2)
                continue
            except BadPermissions as exc:
                for line in exc.warning.splitlines():
                    self.log.error(line)
                self.log.error(f"Load key \"{path}\": bad permissions")
                return None
            except SshError as exc:
                self.log.error(f"Load key \"{path}\": {exc}")
                return None
            self._maybe_add(loaded[0], loaded[1], path)
            return loaded
        return None

    def _maybe_add(self, key: object, comment: str, path: str) -> None:
        """sshconnect2.c maybe_add_key_to_agent: ask first with "ask" (through
        SSH_ASKPASS only, as ssh's ask_permission), then add with the constraints."""
        from agent.interface import Constraints
        from keytools.private import PrivateKey

        if self.add_to is None or not isinstance(key, PrivateKey):
            return
        if self.add_mode == "ask":
            from agent.askpass import ask_permission

            if not ask_permission(f"Add key {path} ({comment}) to agent?"):
                self.log.debug("user denied adding this key", 3)
                return
        constraints = Constraints(lifetime=self.add_lifetime or None,
                                  confirm=self.add_mode == "confirm")
        try:
            self.add_to.add(key, comment or path, constraints)
        except SshError:
            self.log.debug(f"could not add identity to agent: {path}")
            return
        self.log.debug(f"identity added to agent: {path}")


@dataclass
class FileSigner:
    """An identity file offered by its public key; the private key is read (and the
    passphrase asked for) at the first signature, i.e. once the server accepted it."""

    path: str
    key: PublicKey
    loader: FileLoader
    from_agent: bool = False
    _ring: Agent | None = None
    _failed: bool = False

    @property
    def public(self) -> PublicKey:
        return self.key

    @property
    def comment(self) -> str:
        return self.path

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        """Sign (loading the key first; a passphrase prompt blocks, as in ssh)."""
        from agent.signflags import sign_flags
        from protocol.auth import KeyUnavailable

        if self._ring is None and not self._failed:
            self._ring = self._load()
            self._failed = self._ring is None
        if self._ring is None:
            raise KeyUnavailable("key not available")
        return self._ring.sign(self.key.plain, data, sign_flags(algorithm))

    def _load(self) -> Agent | None:
        from agent.keyring import KeyRing
        from keytools.private import PrivateKey

        loaded = self.loader.load(self.path)
        if loaded is None:
            return None
        key, comment = loaded
        assert isinstance(key, PrivateKey)
        if key.public.blob() != self.key.plain.blob():
            self.loader.log.error(f"private key {self.path} contents do not match public")
            return None
        ring = KeyRing()
        ring.add(key, comment or self.path)
        return ring


Identity = AgentSigner | FileSigner | CertSigner


@dataclass
class KeySource:
    """The signers for one connection and the agents behind them (closed by ``close``)."""

    signers: list[Identity] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for closer in self._closers:
            closer()
        self._closers.clear()


def session_binding(transport: object) -> object | None:
    """The session-bind@openssh.com contents for a client transport after its first key
    exchange (an ``agent.messages.SessionBind``), or None before it."""
    from agent.messages import SessionBind
    from protocol.transport import Transport

    assert isinstance(transport, Transport)
    kex = transport.kex
    if kex is None or kex.host_key is None or kex.session_id is None \
            or kex.initial_signature is None:
        return None
    return SessionBind(kex.host_key, kex.session_id, kex.initial_signature, False)


def _public_of_file(path: str) -> PublicKey | None:
    """sshkey_load_public: the .pub beside it, or the openssh-key-v1 header."""
    from keytools.keyfile import load_public

    try:
        return load_public(path)[0]
    except (SshError, OSError):
        return None


def _certificate(path: str, log: Log) -> PublicKey | None:
    from keytools.keyfile import load_public_file

    try:
        key = load_public_file(path)[0]
    except (SshError, OSError):
        return None
    if not key.is_certificate:
        log.debug(f"{path}: not a certificate")
        return None
    return key


def collect_keys(
    identity_paths: tuple[str, ...], *, identities_only: bool, agent_socket: str | None,
    explicit: frozenset[str], log: Log, ask: PassphraseAsker | None = None,
    certificate_paths: tuple[str, ...] = (), binding: object | None = None,
    batch_mode: bool = False, password_prompts: int = 3,
    add_keys_to_agent: tuple[str, int] = ("no", 0),
) -> KeySource:
    """The identities to offer, in ssh's order (see the module docstring).

    ``explicit`` are the files the user named (-i, IdentityFile): a missing one is warned
    about as ssh does; a missing default file (~/.ssh/id_*) is silently skipped.
    ``binding`` (from ``session_binding``) is sent to the agent before it is asked for
    its identities."""
    source = KeySource()
    loader = FileLoader(log, ask, batch_mode, password_prompts)
    files: list[Identity] = []
    for path in identity_paths:
        if not os.path.exists(path):
            if path in explicit:
                log.info(f"Warning: Identity file {path} not accessible: "
                         "No such file or directory.")
            continue
        public = _public_of_file(path)
        if public is None:
            # No public half to offer (a PEM key without .pub): ssh loads it now.
            loaded = loader.load(path)
            if loaded is None:
                continue
            from keytools.private import PrivateKey

            assert isinstance(loaded[0], PrivateKey)
            public = loaded[0].public
        files.append(FileSigner(path, public, loader))
        cert = _certificate(path + "-cert.pub", log)
        if cert is not None:
            files.append(FileSigner(path, cert, loader))
    preferred: list[Identity] = []
    for path in certificate_paths:
        cert = _certificate(path, log)
        if cert is not None:
            preferred.append(FileSigner(path, cert, loader))
    agent_only: list[Identity] = []
    if agent_socket and agent_socket != "none":
        from agent.client import AgentClient

        try:
            client = AgentClient(agent_socket)
        except SshError as exc:
            log.debug(f"get_agent_identities: ssh_get_authentication_socket: {exc}")
        else:
            source._closers.append(client.close)
            if add_keys_to_agent[0] != "no":
                loader.add_to = client
                loader.add_mode, loader.add_lifetime = add_keys_to_agent
            _bind(client, binding, log)
            try:
                identities = client.list()
            except SshError as exc:
                log.debug(f"get_agent_identities: ssh_fetch_identitylist: {exc}")
                identities = []
            log.debug(f"get_agent_identities: agent returned {len(identities)} keys")
            for ident in identities:
                match = next((f for f in files if f.public.blob() == ident.key.blob()), None)
                if match is not None:
                    files.remove(match)
                    preferred.append(AgentSigner(client, ident.key, match.comment, True))
                elif not identities_only:
                    agent_only.append(AgentSigner(client, ident.key, ident.comment, True))
    everything = preferred + agent_only + files
    return _with_cert_signers(source, everything, log)


def _bind(client: object, binding: object | None, log: Log) -> None:
    from agent.client import AgentClient
    from agent.messages import SessionBind

    assert isinstance(client, AgentClient)
    if not isinstance(binding, SessionBind):
        return
    try:
        client.session_bind(binding)
    except SshError as exc:
        log.debug(f"ssh_agent_bind_hostkey: {exc}", 2)
        return
    log.debug("get_agent_identities: bound agent to hostkey")


def _with_cert_signers(source: KeySource, identities: list[Identity], log: Log) -> KeySource:
    """Certificates offered by pyssh are signed by the identity holding the same plain
    key (sign_and_send_pubkey); one with no such identity is dropped."""
    for ident in identities:
        key = ident.public
        if not isinstance(ident, FileSigner) or not key.is_certificate:
            source.signers.append(ident)
            continue
        holder = next((o for o in identities if not o.public.is_certificate
                       and o.public.blob() == key.plain.blob()), None)
        if holder is None:
            # A CertificateFile named next to its private key (id -> id-cert.pub).
            base = ident.path.removesuffix("-cert.pub").removesuffix(".pub")
            if base != ident.path and os.path.exists(base):
                holder = FileSigner(base, key.plain, ident.loader)
            elif not ident.path.endswith(".pub") and os.path.exists(ident.path):
                holder = FileSigner(ident.path, key.plain, ident.loader)
        if holder is None:
            log.debug(f"sign_and_send_pubkey: no separate private key for certificate "
                      f"\"{ident.path}\"")
            continue
        assert isinstance(holder, AgentSigner | FileSigner)
        source.signers.append(CertSigner(holder, key, ident.path))
    return source
