"""Private keys that carry their certificate, as ADD_IDENTITY sends them.

The agent wire form of a certified key (OpenSSH's sshkey_private_serialize) is the
certificate type name, the certificate blob, then only the private fields the
certificate does not already hold: ``mpint d, iqmp, p, q`` for RSA, ``mpint d`` for
ECDSA, ``string pk, string seed||pk`` for Ed25519, ``mpint x`` for DSA, and the
security-key fields for sk-* keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytools.certificate import CERT_TYPES, PLAIN_TO_CERT, Certificate
from keytools.errors import InvalidFormat, KeyTypeMismatch, KeyTypeUnknown
from keytools.private import (
    DsaPrivate,
    EcdsaPrivate,
    Ed25519Private,
    PrivateKey,
    RsaPrivate,
    SkEcdsaPrivate,
    SkEd25519Private,
)
from keytools.private.ed25519 import decode_ed25519
from keytools.private.keys import decode_private_fields
from keytools.public import (
    DsaPublic,
    EcdsaPublic,
    Ed25519Public,
    RsaPublic,
    SkEcdsaPublic,
    SkEd25519Public,
    decode_public_blob,
)
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


@dataclass(frozen=True)
class CertifiedPrivate(PrivateKey):
    """A private key together with a certificate for its public half."""

    key: PrivateKey
    certificate: Certificate
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.certificate.key.blob() != self.key.public.blob():
            raise KeyTypeMismatch()

    @property
    def public(self) -> Certificate:
        return self.certificate

    @property
    def plain(self) -> PrivateKey:
        return self.key

    def encode_private_fields(self, w: Writer) -> None:
        w.string(self.certificate.blob())
        _encode_cert_fields(self.key, w)

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        return self.key.sign(data, algorithm)

    def to_cryptography(self) -> PrivateKeyTypes:
        return self.key.to_cryptography()


def certify(key: PrivateKey, certificate: Certificate) -> CertifiedPrivate:
    """``key`` with ``certificate`` attached (KeyTypeMismatch if they do not belong)."""
    if isinstance(key, CertifiedPrivate):
        key = key.key
    return CertifiedPrivate(key, certificate)


def _encode_cert_fields(key: PrivateKey, w: Writer) -> None:
    if isinstance(key, RsaPrivate):
        w.mpint(key.d).mpint(key.iqmp).mpint(key.p).mpint(key.q)
    elif isinstance(key, EcdsaPrivate):
        w.mpint(key.d)
    elif isinstance(key, Ed25519Private | SkEd25519Private):
        key.encode_private_fields(w)
    elif isinstance(key, DsaPrivate):
        w.mpint(key.x)
    elif isinstance(key, SkEcdsaPrivate):
        w.string(key.application).byte(key.flags).string(key.key_handle).string(key.reserved)
    else:
        raise KeyTypeUnknown()


def _decode_cert_fields(cert: Certificate, r: Reader) -> PrivateKey:
    pub = cert.key
    key: PrivateKey
    if isinstance(pub, RsaPublic):
        d, iqmp, p, q = r.mpint(), r.mpint(), r.mpint(), r.mpint()
        key = RsaPrivate(pub.n, pub.e, d, iqmp, p, q)
        key.to_cryptography()  # validates n == p*q and the CRT numbers
    elif isinstance(pub, EcdsaPublic):
        key = EcdsaPrivate.from_scalar(pub.curve, r.mpint())
        if key.point != pub.point:
            raise InvalidFormat()
    elif isinstance(pub, Ed25519Public):
        key = decode_ed25519("ssh-ed25519", r)
        if key.public_key != pub.key:
            raise InvalidFormat()
    elif isinstance(pub, DsaPublic):
        key = DsaPrivate(pub.p, pub.q, pub.g, pub.y, r.mpint())
        key.to_cryptography()
    elif isinstance(pub, SkEd25519Public):
        pk = r.string()
        application = r.text()
        key = SkEd25519Private(pk, application, r.byte(), r.string(), r.string())
        if pk != pub.key or application != pub.application:
            raise InvalidFormat()
    elif isinstance(pub, SkEcdsaPublic):
        application = r.text()
        key = SkEcdsaPrivate(pub.point, application, r.byte(), r.string(), r.string())
        if application != pub.application:
            raise InvalidFormat()
    else:
        raise KeyTypeUnknown()
    return key


def decode_agent_private(r: Reader) -> PrivateKey:
    """One private key as ADD_IDENTITY carries it: plain, or certificate-carrying."""
    key_type = r.ascii()
    if key_type not in CERT_TYPES:
        return decode_private_fields(key_type, r)
    cert = decode_public_blob(r.string())
    if not isinstance(cert, Certificate) or cert.key_type != key_type:
        raise KeyTypeMismatch()
    return CertifiedPrivate(_decode_cert_fields(cert, r), cert)


def cert_type_for(key: PrivateKey) -> str | None:
    """The certificate wire name matching ``key``'s plain type, if certificates exist."""
    return PLAIN_TO_CERT.get(key.key_type)
