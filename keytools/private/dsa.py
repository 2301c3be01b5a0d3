"""ssh-dss private keys: read (and re-saved) for old key files, never generated (OpenSSH 10)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytools.errors import FeatureUnsupported, InvalidFormat
from keytools.private.base import PrivateKey, signature_blob
from keytools.public.dsa import DsaPublic
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.dsa import DSAPrivateKey

#: ssh-dss signatures carry r and s as 20 bytes each (RFC 4253 6.6).
DSA_INT_LEN = 20


@dataclass(frozen=True)
class DsaPrivate(PrivateKey):
    p: int
    q: int
    g: int
    y: int
    x: int = field(repr=False)
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_cryptography(cls, obj: DSAPrivateKey) -> DsaPrivate:
        nums = obj.private_numbers()
        pub = nums.public_numbers
        par = pub.parameter_numbers
        key = cls(par.p, par.q, par.g, pub.y, nums.x)
        key._cache["crypto"] = obj
        return key

    @property
    def public(self) -> DsaPublic:
        return self._cached("public", lambda: DsaPublic(self.p, self.q, self.g, self.y))

    def encode_private_fields(self, w: Writer) -> None:
        w.mpint(self.p).mpint(self.q).mpint(self.g).mpint(self.y).mpint(self.x)

    def _build(self) -> DSAPrivateKey:
        from cryptography.hazmat.primitives.asymmetric import dsa

        try:
            params = dsa.DSAParameterNumbers(self.p, self.q, self.g)
            return dsa.DSAPrivateNumbers(self.x, dsa.DSAPublicNumbers(self.y, params)).private_key()
        except ValueError:
            raise InvalidFormat() from None

    def to_cryptography(self) -> DSAPrivateKey:
        return self._cached("crypto", self._build)

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        if self.q.bit_length() > DSA_INT_LEN * 8:
            raise FeatureUnsupported()
        r, s = decode_dss_signature(self.to_cryptography().sign(data, hashes.SHA1()))
        return signature_blob(
            "ssh-dss", r.to_bytes(DSA_INT_LEN, "big") + s.to_bytes(DSA_INT_LEN, "big")
        )


def decode_dsa(key_type: str, r: Reader) -> DsaPrivate:
    """mpint p, q, g, y, x; the numbers must form a valid DSA key."""
    p, q, g, y, x = (r.mpint() for _ in range(5))
    key = DsaPrivate(p, q, g, y, x)
    key.to_cryptography()
    return key
