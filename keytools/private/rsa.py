"""ssh-rsa private keys, signing with rsa-sha2-512 (default), rsa-sha2-256 or ssh-rsa."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytools.errors import InvalidArgument, InvalidFormat
from keytools.private.base import PrivateKey, signature_blob
from keytools.public.rsa import RsaPublic
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

DEFAULT_RSA_ALGORITHM = "rsa-sha2-512"

#: signature algorithm (or certificate name, as OpenSSH's rsa_hash_id_from_keyname) -> plain
RSA_SIGN_ALGORITHMS = {
    "ssh-rsa": "ssh-rsa",
    "rsa-sha2-256": "rsa-sha2-256",
    "rsa-sha2-512": "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
    "rsa-sha2-256-cert-v01@openssh.com": "rsa-sha2-256",
    "rsa-sha2-512-cert-v01@openssh.com": "rsa-sha2-512",
}


def _hash_for(algorithm: str) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if algorithm == "ssh-rsa":
        return hashes.SHA1()
    if algorithm == "rsa-sha2-256":
        return hashes.SHA256()
    return hashes.SHA512()


@dataclass(frozen=True)
class RsaPrivate(PrivateKey):
    n: int
    e: int
    d: int = field(repr=False)
    iqmp: int = field(repr=False)
    p: int = field(repr=False)
    q: int = field(repr=False)
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_cryptography(cls, obj: RSAPrivateKey) -> RsaPrivate:
        nums = obj.private_numbers()
        pub = nums.public_numbers
        RsaPublic(pub.e, pub.n)  # OpenSSH's length limits (KeyLength)
        key = cls(pub.n, pub.e, nums.d, nums.iqmp, nums.p, nums.q)
        key._cache["crypto"] = obj
        return key

    @property
    def public(self) -> RsaPublic:
        return self._cached("public", lambda: RsaPublic(self.e, self.n))


    def encode_private_fields(self, w: Writer) -> None:
        w.mpint(self.n).mpint(self.e).mpint(self.d).mpint(self.iqmp).mpint(self.p).mpint(self.q)

    def _build(self) -> RSAPrivateKey:
        from cryptography.hazmat.primitives.asymmetric import rsa

        if self.p * self.q != self.n:
            raise InvalidFormat()
        try:
            numbers = rsa.RSAPrivateNumbers(
                self.p,
                self.q,
                self.d,
                rsa.rsa_crt_dmp1(self.d, self.p),
                rsa.rsa_crt_dmq1(self.d, self.q),
                self.iqmp,
                rsa.RSAPublicNumbers(self.e, self.n),
            )
            return numbers.private_key()
        except (ValueError, ZeroDivisionError):
            raise InvalidFormat() from None

    def to_cryptography(self) -> RSAPrivateKey:
        return self._cached("crypto", self._build)

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import padding

        alg = RSA_SIGN_ALGORITHMS.get(algorithm or DEFAULT_RSA_ALGORITHM)
        if alg is None:
            raise InvalidArgument()
        sig = self.to_cryptography().sign(data, padding.PKCS1v15(), _hash_for(alg))
        return signature_blob(alg, sig)


def decode_rsa(key_type: str, r: Reader) -> RsaPrivate:
    """mpint n, e, d, iqmp, p, q; n must be p*q and the numbers a consistent key."""
    n, e, d, iqmp, p, q = (r.mpint() for _ in range(6))
    RsaPublic(e, n)  # KeyLength outside 1024..16384 bits
    key = RsaPrivate(n, e, d, iqmp, p, q)
    key.to_cryptography()  # validates (InvalidFormat) and caches
    return key
