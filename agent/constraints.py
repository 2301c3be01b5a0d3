"""Key constraints as ADD_ID_CONSTRAINED and ADD_SMARTCARD_KEY_CONSTRAINED carry them:
lifetime, confirm, maxsign, and the extension constraints sk-provider@openssh.com,
restrict-destination-v00@openssh.com and associated-certs-v00@openssh.com
(PROTOCOL.agent), each accepted at most once, in ssh-add's order when encoding.
"""

from __future__ import annotations

from agent.interface import Constraints, DestinationConstraint, Hop, HopKey
from keytools.errors import FeatureUnsupported, InvalidFormat
from keytools.public import PublicKey, decode_public_blob
from keytools.wire import Reader, Writer

CONSTRAIN_LIFETIME = 1
CONSTRAIN_CONFIRM = 2
CONSTRAIN_MAXSIGN = 3
CONSTRAIN_EXTENSION = 255
EXT_SK_PROVIDER = "sk-provider@openssh.com"
EXT_RESTRICT_DESTINATION = "restrict-destination-v00@openssh.com"
EXT_ASSOCIATED_CERTS = "associated-certs-v00@openssh.com"

#: OpenSSH's AGENT_MAX_DEST_CONSTRAINTS and AGENT_MAX_EXT_CERTS.
MAX_DEST_CONSTRAINTS = 1024
MAX_EXT_CERTS = 1024

def _encode_hop(hop: Hop) -> bytes:
    w = Writer().string(hop.user).string(hop.hostname).string(b"")
    for spec in hop.keys:
        w.string(spec.key.blob()).boolean(spec.is_ca)
    return w.getvalue()


def _decode_hop(r: Reader) -> Hop:
    user, hostname = r.cstring(), r.cstring()
    if r.string():
        raise FeatureUnsupported()  # reserved extensions
    keys: list[HopKey] = []
    while r.remaining:
        key = decode_public_blob(r.string())
        keys.append(HopKey(key, r.byte() != 0))
    return Hop(user, hostname, tuple(keys))


def _decode_destination(r: Reader) -> DestinationConstraint:
    inner = r.sub()
    from_r, to_r = inner.sub(), inner.sub()
    reserved = inner.string()
    inner.end()
    from_hop, to_hop = _decode_hop(from_r), _decode_hop(to_r)
    if reserved:
        raise FeatureUnsupported()
    # As ssh-agent: "from" has a hostname iff it has keys and never a user; "to" is complete.
    if bool(from_hop.hostname) != bool(from_hop.keys) or from_hop.user:
        raise InvalidFormat()
    if not to_hop.hostname or not to_hop.keys:
        raise InvalidFormat()
    return DestinationConstraint(from_hop, to_hop)


def encode_constraints(c: Constraints) -> bytes:
    """The constraint bytes after the key, in ssh-add's order."""
    w = Writer()
    if c.lifetime is not None:
        w.byte(CONSTRAIN_LIFETIME).uint32(c.lifetime)
    if c.confirm:
        w.byte(CONSTRAIN_CONFIRM)
    if c.max_signatures is not None:
        w.byte(CONSTRAIN_MAXSIGN).uint32(c.max_signatures)
    if c.sk_provider is not None:
        w.byte(CONSTRAIN_EXTENSION).string(EXT_SK_PROVIDER).string(c.sk_provider)
    if c.destinations:
        outer = Writer()
        for dc in c.destinations:
            inner = Writer().string(_encode_hop(dc.from_hop)).string(_encode_hop(dc.to_hop))
            outer.string(inner.string(b"").getvalue())
        w.byte(CONSTRAIN_EXTENSION).string(EXT_RESTRICT_DESTINATION).string(outer.getvalue())
    if c.associated_certs:
        certs = Writer()
        for cert in c.associated_certs:
            certs.string(cert.blob())
        w.byte(CONSTRAIN_EXTENSION).string(EXT_ASSOCIATED_CERTS).boolean(c.certs_only)
        w.string(certs.getvalue())
    return w.getvalue()


def decode_constraints(r: Reader, *, smartcard: bool = False) -> Constraints:
    """Constraints up to the end of ``r``, each at most once (as ssh-agent)."""
    lifetime: int | None = None
    confirm = False
    maxsign: int | None = None
    provider: str | None = None
    dests: tuple[DestinationConstraint, ...] | None = None
    certs: tuple[PublicKey, ...] | None = None
    certs_only = False
    while r.remaining:
        kind = r.byte()
        if kind == CONSTRAIN_LIFETIME:
            if lifetime is not None:
                raise InvalidFormat()
            lifetime = r.uint32()
        elif kind == CONSTRAIN_CONFIRM:
            if confirm:
                raise InvalidFormat()
            confirm = True
        elif kind == CONSTRAIN_MAXSIGN and not smartcard:
            if maxsign is not None:
                raise InvalidFormat()
            maxsign = r.uint32()
        elif kind == CONSTRAIN_EXTENSION:
            name = r.cstring()
            if name == EXT_SK_PROVIDER and not smartcard and provider is None:
                provider = r.cstring()
            elif name == EXT_RESTRICT_DESTINATION and dests is None:
                body = r.sub()
                found: list[DestinationConstraint] = []
                while body.remaining:
                    if len(found) >= MAX_DEST_CONSTRAINTS:
                        raise InvalidFormat()
                    found.append(_decode_destination(body))
                dests = tuple(found)
            elif name == EXT_ASSOCIATED_CERTS and smartcard and certs is None:
                certs_only = r.boolean()
                body = r.sub()
                keys: list[PublicKey] = []
                while body.remaining:
                    if len(keys) >= MAX_EXT_CERTS:
                        raise InvalidFormat()
                    cert = decode_public_blob(body.string())
                    if not cert.is_certificate:
                        raise InvalidFormat()
                    keys.append(cert)
                certs = tuple(keys)
            else:
                raise FeatureUnsupported()
        else:
            raise FeatureUnsupported()
    return Constraints(lifetime, confirm, maxsign, dests or (), certs or (), certs_only, provider)
