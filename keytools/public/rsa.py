"""ssh-rsa public keys, verified with ssh-rsa (SHA-1), rsa-sha2-256 and rsa-sha2-512."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from keytools.errors import InvalidFormat, KeyLength, MessageIncomplete, SignatureInvalid
from keytools.public.base import PublicKey, register, split_signature
from keytools.wire import Reader, Writer

RSA_MIN_BITS = 1024
RSA_MAX_BITS = 16384

#: signature algorithm -> hash name
RSA_SIGNATURE_HASHES = {"ssh-rsa": "sha1", "rsa-sha2-256": "sha256", "rsa-sha2-512": "sha512"}


@dataclass(frozen=True)
class RsaPublic(PublicKey):
    e: int
    n: int
    label: ClassVar[str] = "RSA"

    def __post_init__(self) -> None:
        bits = self.n.bit_length()
        if bits < RSA_MIN_BITS or bits > RSA_MAX_BITS:
            raise KeyLength()

    @property
    def key_type(self) -> str:
        return "ssh-rsa"

    @property
    def bits(self) -> int:
        return self.n.bit_length()

    def encode_body(self, w: Writer) -> None:
        w.mpint(self.e).mpint(self.n)

    def verify(self, data: bytes, signature: bytes) -> None:
        alg, r = split_signature(signature)
        sig = r.string()
        r.end()
        verify_rsa(self.e, self.n, alg, data, sig)


def verify_rsa(e: int, n: int, alg: str, data: bytes, sig: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    hash_name = RSA_SIGNATURE_HASHES.get(alg)
    if hash_name is None:
        raise SignatureInvalid()
    modlen = (n.bit_length() + 7) // 8
    if len(sig) > modlen:
        raise SignatureInvalid()
    sig = sig.rjust(modlen, b"\0")  # OpenSSH accepts short signatures, zero-padded
    factories: dict[str, Callable[[], hashes.HashAlgorithm]] = {
        "sha1": hashes.SHA1,
        "sha256": hashes.SHA256,
        "sha512": hashes.SHA512,
    }
    algo = factories[hash_name]()
    try:
        rsa.RSAPublicNumbers(e, n).public_key().verify(sig, data, padding.PKCS1v15(), algo)
    except (InvalidSignature, ValueError):
        raise SignatureInvalid() from None


def _decode(key_type: str, r: Reader) -> PublicKey:
    # OpenSSH reports any unreadable number in these keys as "invalid format".
    try:
        e, n = r.mpint(), r.mpint()
    except (MessageIncomplete, InvalidFormat):
        raise InvalidFormat() from None
    return RsaPublic(e, n)


register(("ssh-rsa",), _decode)
