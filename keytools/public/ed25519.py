"""ssh-ed25519 public keys (RFC 8709)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from keytools.errors import InvalidFormat, SignatureInvalid
from keytools.public.base import PublicKey, register, split_signature
from keytools.wire import Reader, Writer

ED25519_KEY_LEN = 32
ED25519_SIG_LEN = 64


def verify_ed25519(key: bytes, data: bytes, sig: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as _Ed

    if len(sig) != ED25519_SIG_LEN:
        raise SignatureInvalid()
    try:
        _Ed.from_public_bytes(key).verify(sig, data)
    except (InvalidSignature, ValueError):
        raise SignatureInvalid() from None


@dataclass(frozen=True)
class Ed25519Public(PublicKey):
    key: bytes
    label: ClassVar[str] = "ED25519"
    canonical_wire: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if len(self.key) != ED25519_KEY_LEN:
            raise InvalidFormat()

    @property
    def key_type(self) -> str:
        return "ssh-ed25519"

    @property
    def bits(self) -> int:
        return 256

    def encode_body(self, w: Writer) -> None:
        w.string(self.key)

    def verify(self, data: bytes, signature: bytes) -> None:
        alg, r = split_signature(signature)
        if alg != "ssh-ed25519":
            raise SignatureInvalid()
        sig = r.string()
        r.end()
        verify_ed25519(self.key, data, sig)


def _decode(key_type: str, r: Reader) -> PublicKey:
    return Ed25519Public(r.string())


register(("ssh-ed25519",), _decode)
