"""ssh-dss public keys: read and verified, never generated (as OpenSSH 10)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from keytools.errors import InvalidFormat, MessageIncomplete, SignatureInvalid
from keytools.public.base import PublicKey, register, split_signature
from keytools.wire import Reader, Writer


@dataclass(frozen=True)
class DsaPublic(PublicKey):
    p: int
    q: int
    g: int
    y: int
    label: ClassVar[str] = "DSA"

    @property
    def key_type(self) -> str:
        return "ssh-dss"

    @property
    def bits(self) -> int:
        return self.p.bit_length()

    def encode_body(self, w: Writer) -> None:
        w.mpint(self.p).mpint(self.q).mpint(self.g).mpint(self.y)

    def verify(self, data: bytes, signature: bytes) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import dsa
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        alg, r = split_signature(signature)
        sig = r.string()
        r.end()
        if alg != "ssh-dss" or len(sig) != 40:
            raise SignatureInvalid()
        der = encode_dss_signature(int.from_bytes(sig[:20], "big"), int.from_bytes(sig[20:], "big"))
        try:
            numbers = dsa.DSAPublicNumbers(self.y, dsa.DSAParameterNumbers(self.p, self.q, self.g))
            numbers.public_key().verify(der, data, hashes.SHA1())
        except (InvalidSignature, ValueError):
            raise SignatureInvalid() from None


def _decode(key_type: str, r: Reader) -> PublicKey:
    # OpenSSH reports any unreadable number in these keys as "invalid format".
    try:
        p, q, g, y = r.mpint(), r.mpint(), r.mpint(), r.mpint()
    except (MessageIncomplete, InvalidFormat):
        raise InvalidFormat() from None
    return DsaPublic(p, q, g, y)


register(("ssh-dss",), _decode)
