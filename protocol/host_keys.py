"""pysshd's host keys as Signers, and the algorithm offer its configuration makes.

``HostKey`` files hold private keys; with ``HostKeyAgent`` a HostKey may instead name a
public key whose private half lives in an agent (sshd's "will rely on agent for
hostkey"), and every host key signature is an agent request. ``HostCertificate`` pairs a
certificate with the HostKey it certifies, so the *-cert-v01@openssh.com algorithms are
offered next to the plain ones. The kex engine takes any Signer, so none of this
reaches the transport beyond ``load_host_signers`` and ``server_transport_config``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import BadPermissions, FileError, SshError
from keytools.public import PublicKey
from protocol.signer import CertifiedSigner, Signer

if TYPE_CHECKING:
    from protocol.sshd_config import ServerConfig
    from protocol.transport import TransportConfig

log = logging.getLogger("pyssh.sshd")
Report = Callable[[str], None]
#: a host key signature the agent has not produced by then fails the key exchange
AGENT_TIMEOUT = 30.0


@dataclass(frozen=True)
class AgentHostKey:
    """A host key held by an agent at ``socket``: each signature opens its own agent
    connection in a worker thread, so one slow signature holds up no other connection."""

    socket: str
    key: PublicKey

    @property
    def public(self) -> PublicKey:
        return self.key

    async def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        return await asyncio.to_thread(self._sign, data, algorithm)

    def _sign(self, data: bytes, algorithm: str | None) -> bytes:
        from agent.client import AgentClient, sign_flags

        with AgentClient(self.socket, timeout=AGENT_TIMEOUT) as client:
            return client.sign(self.key, data, sign_flags(algorithm))


def agent_socket(setting: str | None) -> str | None:
    """HostKeyAgent's socket: the literal "SSH_AUTH_SOCK" means that variable."""
    if setting is None or setting == "none":
        return None
    if setting == "SSH_AUTH_SOCK":
        return os.environ.get("SSH_AUTH_SOCK") or None
    return setting


def _agent_reachable(path: str, report: Report) -> bool:
    from agent.client import AgentClient

    try:
        with AgentClient(path, timeout=AGENT_TIMEOUT):
            return True
    except SshError as exc:
        report(f'Could not connect to agent "{path}": {exc}')
        return False


def _load_one(path: str, agent: str | None, report: Report) -> Signer | None:
    """sshd's host key loop for one HostKey: the private key, else (with an agent) the
    public key; the .pub beside a private key must match it. Why a private key did not
    load is said only when nothing else serves (sshd logs it at debug level then)."""
    from keytools.keyfile import load_private, load_public

    private = None
    problem = ""
    try:
        private = load_private(path, "")[0]
    except FileError as exc:
        if exc.errno not in (errno.ENOENT, None):
            problem = f'Unable to load host key "{path}": {exc}'
    except BadPermissions as exc:
        problem = f'{exc.warning}\nUnable to load host key "{path}": {exc}'
    except SshError as exc:
        problem = f'Unable to load host key "{path}": {exc}'
    public: PublicKey | None = None
    with contextlib.suppress(SshError):
        public = load_public(path)[0]
    if private is not None:
        if public is not None and public.blob() != private.public.blob():
            report(f"Public key for {path} does not match private key")
        return private
    if public is not None and agent is not None and not public.is_certificate:
        if problem:
            log.debug("%s", problem)
        log.debug("will rely on agent for hostkey %s", path)
        return AgentHostKey(agent, public)
    if problem:
        report(problem)
    report(f"Unable to load host key: {path}")
    return None


def _attach_certificates(signers: list[Signer], paths: Sequence[str],
                         report: Report) -> list[Signer]:
    """Each HostCertificate next to the key it certifies (a key may serve both ways)."""
    from keytools.keyfile import load_public

    certified: list[Signer] = []
    for path in paths:
        try:
            cert = load_public(path)[0]
        except SshError as exc:
            report(f'Could not load host certificate "{path}": {exc}')
            continue
        if not cert.is_certificate:
            report(f"Certificate file is not a certificate: {path}")
            continue
        match = next((s for s in signers if s.public.blob() == cert.plain.blob()), None)
        if match is None:
            report(f"No matching private key for certificate: {path}")
            continue
        certified.append(CertifiedSigner(match, cert))
    return certified


def load_host_signers(config: ServerConfig, report: Report | None = None) -> list[Signer]:
    """Signers for every usable HostKey (file or agent) and HostCertificate.

    Problems are reported with sshd's words through ``report`` (default: the log) and
    the key is skipped; an empty result means "no hostkeys available".
    """
    say: Report = report or log.error
    agent = agent_socket(config.host_key_agent)
    if agent is not None and not _agent_reachable(agent, say):
        agent = None
    signers: list[Signer] = []
    for path in config.host_keys:
        signer = _load_one(path, agent, say)
        if signer is not None:
            signers.append(signer)
    return signers + _attach_certificates(signers, config.host_certificates, say)


def server_transport_config(config: ServerConfig) -> TransportConfig:
    """The transport settings sshd_config's algorithm keywords make: our KEXINIT offer
    and the server-sig-algs we advertise (PubkeyAcceptedAlgorithms' signature names)."""
    from protocol.kex.hostkey import CERT_SUFFIX
    from protocol.kex.kexinit import Preferences
    from protocol.transport import TransportConfig

    prefs = Preferences(kex=config.kex_algorithms, host_key=config.host_key_algorithms,
                        ciphers=config.ciphers, macs=config.macs)
    sig_algs: list[str] = []
    for alg in config.pubkey_accepted_algorithms:
        plain = alg.removesuffix(CERT_SUFFIX)
        if plain not in sig_algs:
            sig_algs.append(plain)
    return TransportConfig(algorithms=prefs, server_sig_algs=tuple(sig_algs))
