"""The private-key codec (type name + fields) and key generation.

The encoding is the one openssh-key-v1 uses for its private section and the agent
protocol uses in ADD_IDENTITY (PROTOCOL.key, PROTOCOL.agent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keytools.errors import FeatureUnsupported, InvalidArgument, InvalidFormat, KeyTypeUnknown
from keytools.private.base import PrivateKey
from keytools.private.dsa import DsaPrivate, decode_dsa
from keytools.private.ecdsa import EcdsaPrivate, decode_ecdsa
from keytools.private.ed25519 import Ed25519Private, decode_ed25519
from keytools.private.rsa import RsaPrivate, decode_rsa
from keytools.private.sk import decode_sk_ecdsa, decode_sk_ed25519
from keytools.public.ecdsa import curve_for_bits, curve_object
from keytools.public.rsa import RSA_MAX_BITS, RSA_MIN_BITS
from keytools.public.sk import SK_ECDSA, SK_ED25519
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_DECODERS: dict[str, Callable[[str, Reader], PrivateKey]] = {
    "ssh-ed25519": decode_ed25519,
    "ssh-rsa": decode_rsa,
    "ssh-dss": decode_dsa,
    "ecdsa-sha2-nistp256": decode_ecdsa,
    "ecdsa-sha2-nistp384": decode_ecdsa,
    "ecdsa-sha2-nistp521": decode_ecdsa,
    SK_ED25519: decode_sk_ed25519,
    SK_ECDSA: decode_sk_ecdsa,
}

DEFAULT_RSA_BITS = 3072
DEFAULT_ECDSA_BITS = 256
RSA_EXPONENT = 65537

#: ssh-keygen -t names (short names as sshkey_type_from_name matches them, any case, and
#: the full wire names) -> the kind ``generate`` makes. DSA is absent on purpose: OpenSSH
#: 10 no longer knows it, so "-t dsa" is an unknown key type.
_KINDS = {
    "ed25519": "ed25519",
    "ssh-ed25519": "ed25519",
    "ecdsa": "ecdsa",
    "ecdsa-sha2-nistp256": "ecdsa",
    "ecdsa-sha2-nistp384": "ecdsa",
    "ecdsa-sha2-nistp521": "ecdsa",
    "rsa": "rsa",
    "ssh-rsa": "rsa",
    "rsa-sha2-256": "rsa",
    "rsa-sha2-512": "rsa",
    "ecdsa-sk": "sk",
    "ed25519-sk": "sk",
    SK_ECDSA: "sk",
    SK_ED25519: "sk",
}


def private_key_types() -> frozenset[str]:
    return frozenset(_DECODERS)


def decode_private_reader(r: Reader) -> PrivateKey:
    """One private key: its type name, then its fields, each checked for consistency."""
    key_type = r.ascii()
    decoder = _DECODERS.get(key_type)
    if decoder is None:
        raise KeyTypeUnknown()
    return decoder(key_type, r)


def decode_private_fields(key_type: str, r: Reader) -> PrivateKey:
    """The fields of a ``key_type`` private key whose type name was already read."""
    decoder = _DECODERS.get(key_type)
    if decoder is None:
        raise KeyTypeUnknown()
    return decoder(key_type, r)


def decode_private_blob(blob: bytes) -> PrivateKey:
    """A complete string(type) + fields encoding; trailing bytes are an error."""
    r = Reader(blob)
    key = decode_private_reader(r)
    r.end()
    return key


def encode_private_key(key: PrivateKey) -> bytes:
    """string(type) + fields."""
    w = Writer().string(key.key_type)
    key.encode_private_fields(w)
    return w.getvalue()


def from_cryptography(obj: PrivateKeyTypes) -> PrivateKey:
    """Wrap a cryptography private key; only the types and curves OpenSSH knows."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

    if isinstance(obj, rsa.RSAPrivateKey):
        return RsaPrivate.from_cryptography(obj)
    if isinstance(obj, ec.EllipticCurvePrivateKey):
        return EcdsaPrivate.from_cryptography(obj)
    if isinstance(obj, ed25519.Ed25519PrivateKey):
        return Ed25519Private.from_cryptography(obj)
    if isinstance(obj, dsa.DSAPrivateKey):
        return DsaPrivate.from_cryptography(obj)
    raise InvalidFormat()


def generate(kind: str, bits: int | None = None) -> PrivateKey:
    """A new key as ``ssh-keygen -t kind -b bits`` makes it, with its checks and wording."""
    resolved = _KINDS.get(kind) or _KINDS.get(kind.lower())
    if resolved is None:
        raise InvalidArgument(f"unknown key type {kind}")
    if resolved == "sk":
        raise FeatureUnsupported()
    if resolved == "ed25519":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519Private.from_cryptography(Ed25519PrivateKey.generate())
    if resolved == "ecdsa":
        if not bits and kind.startswith("ecdsa-sha2-nistp"):
            bits = int(kind.removeprefix("ecdsa-sha2-nistp"))
        curve = curve_for_bits(bits or DEFAULT_ECDSA_BITS)
        if curve is None:
            raise InvalidArgument(
                "Invalid ECDSA key length: valid lengths are 256, 384 or 521 bits"
            )
        from cryptography.hazmat.primitives.asymmetric import ec

        return EcdsaPrivate.from_cryptography(ec.generate_private_key(curve_object(curve)))
    bits = bits or DEFAULT_RSA_BITS
    if bits < RSA_MIN_BITS:
        raise InvalidArgument(f"Invalid RSA key length: minimum is {RSA_MIN_BITS} bits")
    if bits > RSA_MAX_BITS:
        raise InvalidArgument(f"Invalid RSA key length: maximum is {RSA_MAX_BITS} bits")
    from cryptography.hazmat.primitives.asymmetric import rsa

    return RsaPrivate.from_cryptography(rsa.generate_private_key(RSA_EXPONENT, bits))
