"""Destination constraints (ssh-add -h) checked against session-bind@openssh.com
bindings, as OpenSSH 8.9+'s ssh-agent does.

A connection records the (host key, session id, forwarding) of each hop ssh binds it to;
a constrained key is visible and usable only if every recorded hop is allowed by one of
the key's constraints, and a signature must be a user-auth request for the session most
recently bound.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.errors import AgentError
from agent.interface import DestinationConstraint, Hop
from agent.match import match_pattern
from keytools.errors import InvalidFormat, SshError
from keytools.public import PublicKey, decode_public_blob
from keytools.wire import Reader

if TYPE_CHECKING:
    from agent.messages import SessionBind
    from keytools.certificate import Certificate

#: OpenSSH's AGENT_MAX_SID_LEN and AGENT_MAX_SESSION_IDS.
MAX_SID_LEN = 128
MAX_SESSION_IDS = 16
SSH2_MSG_USERAUTH_REQUEST = 50
HOSTBOUND_METHOD = "publickey-hostbound-v00@openssh.com"


@dataclass(frozen=True)
class Binding:
    host_key: PublicKey
    session_id: bytes
    forwarded: bool


@dataclass
class ConnectionState:
    """What one client connection has been bound to."""

    bindings: list[Binding] = field(default_factory=list)
    bind_attempted: bool = False

    def bind(self, request: SessionBind) -> None:
        """Record a verified binding; AgentError if it is refused (as process_ext_session_bind)."""
        self.bind_attempted = True
        if len(request.session_id) > MAX_SID_LEN:
            raise AgentError("session ID too long")
        try:
            request.host_key.verify(request.session_id, request.signature)
        except SshError:
            raise AgentError("session-bind signature does not verify") from None
        blob = request.host_key.blob()
        for old in self.bindings:
            if not old.forwarded:
                raise AgentError("connection already bound for authentication")
            same_sid = hmac.compare_digest(old.session_id, request.session_id)
            if same_sid and old.host_key.blob() == blob:
                return  # already recorded
            if same_sid:
                raise AgentError("session ID recorded against a different key")
        if len(self.bindings) >= MAX_SESSION_IDS:
            raise AgentError("too many session IDs recorded")
        self.bindings.append(Binding(request.host_key, request.session_id, request.forwarding))


@dataclass(frozen=True)
class UserauthRequest:
    """The parts of a signed SSH_MSG_USERAUTH_REQUEST the agent checks."""

    session_id: bytes
    user: str
    host_key: PublicKey | None


def parse_userauth_request(data: bytes, key: PublicKey) -> UserauthRequest:
    """``data`` as a publickey user-auth request by ``key`` (InvalidFormat otherwise)."""
    r = Reader(data)
    sid = r.string()
    if not sid:
        raise InvalidFormat()
    kind = r.byte()
    user, service, method = r.cstring(), r.cstring(), r.cstring()
    sig_follows = r.byte()
    algorithm = r.cstring()
    mkey_blob = r.string()
    if (kind != SSH2_MSG_USERAUTH_REQUEST or sig_follows != 1 or service != "ssh-connection"
            or mkey_blob != key.blob() or not _algorithm_matches(algorithm, key)):
        raise InvalidFormat()
    host_key: PublicKey | None = None
    if method == HOSTBOUND_METHOD:
        host_key = decode_public_blob(r.string())
    elif method != "publickey":
        raise InvalidFormat()
    r.end()
    return UserauthRequest(sid, user, host_key)


def _algorithm_matches(algorithm: str, key: PublicKey) -> bool:
    """sshkey_type_from_name(alg) == key type: rsa-sha2-* name RSA keys (and certs)."""
    names = {key.key_type}
    if key.key_type == "ssh-rsa":
        names |= {"rsa-sha2-256", "rsa-sha2-512"}
    elif key.key_type == "ssh-rsa-cert-v01@openssh.com":
        names |= {"rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com"}
    return algorithm in names


def _cert_host_ok(cert: Certificate, hostname: str) -> bool:
    """sshkey_cert_check_host with wildcard principals, at the current time."""
    from keytools.certificate import HOST_CERT

    now = int(time.time())
    if cert.cert_type != HOST_CERT or cert.critical_options:
        return False
    if not cert.valid_after <= now < cert.valid_before:
        return False
    return not cert.principals or any(match_pattern(hostname, p) for p in cert.principals)


def match_key_hop(key: PublicKey, hop: Hop) -> bool:
    """Is ``key`` one of the hop's host keys (or certified by one of its CA keys)?"""
    from keytools.certificate import Certificate

    hostname = hop.hostname or "(ORIGIN)"
    for spec in hop.keys:
        if not isinstance(key, Certificate):
            if not spec.is_ca and spec.key.blob() == key.blob():
                return True
            continue
        if spec.is_ca and spec.key.blob() == key.signature_key.blob() and \
                _cert_host_ok(key, hostname):
            return True
    return False


def permitted_by(from_key: PublicKey | None, to_key: PublicKey | None,
                 destinations: tuple[DestinationConstraint, ...],
                 user: str | None) -> DestinationConstraint | None:
    """The first constraint that allows the hop ``from_key`` -> ``to_key`` for ``user``."""
    for dc in destinations:
        if from_key is None:
            if dc.from_hop.hostname or dc.from_hop.keys:
                continue
        elif not match_key_hop(from_key, dc.from_hop):
            continue
        if to_key is not None and not match_key_hop(to_key, dc.to_hop):
            continue
        if dc.to_hop.user and user is not None and not match_pattern(user, dc.to_hop.user):
            continue
        return dc
    return None


@dataclass(frozen=True)
class Permission:
    """Where a permitted use goes: the first hop's and the final hop's host names."""

    forward_host: str | None = None
    last_host: str | None = None


def identity_permitted(destinations: tuple[DestinationConstraint, ...],
                       state: ConnectionState, user: str | None) -> Permission | None:
    """None if the constrained key may not be seen or used on this connection
    (``user`` is given for signature requests only), as OpenSSH's identity_permitted."""
    if not destinations:
        return Permission()
    if state.bind_attempted and not state.bindings:
        return None  # a failed bind hides constrained keys
    if not state.bindings:
        return Permission()  # local use
    from_key: PublicKey | None = None
    forward_host: str | None = None
    last_host: str | None = None
    count = len(state.bindings)
    for i, binding in enumerate(state.bindings):
        test_user: str | None = None
        if i == count - 1:
            test_user = user
            if binding.forwarded and user is not None:
                return None  # tried to sign on a forwarding hop
        elif not binding.forwarded:
            return None  # tried to forward through a signing bind
        dc = permitted_by(from_key, binding.host_key, destinations, test_user)
        if dc is None:
            return None
        if i == count - 1:
            last_host = dc.to_hop.hostname
        elif i == 0:
            forward_host = dc.to_hop.hostname
        from_key = binding.host_key
    last = state.bindings[-1]
    if last.forwarded and user is None and \
            permitted_by(last.host_key, None, destinations, None) is None:
        return None  # usable at this host but not beyond it: hide
    return Permission(forward_host, last_host)
