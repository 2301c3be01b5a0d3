"""ssh-ed25519 private keys: a 32-byte seed and the public key it derives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytools.errors import InvalidFormat
from keytools.private.base import PrivateKey, signature_blob
from keytools.public.ed25519 import ED25519_KEY_LEN, Ed25519Public
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ED25519_SEED_LEN = 32
ED25519_SK_LEN = 64


@dataclass(frozen=True)
class Ed25519Private(PrivateKey):
    public_key: bytes
    seed: bytes = field(repr=False)
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if len(self.public_key) != ED25519_KEY_LEN or len(self.seed) != ED25519_SEED_LEN:
            raise InvalidFormat()

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Private:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if len(seed) != ED25519_SEED_LEN:
            raise InvalidFormat()
        obj = Ed25519PrivateKey.from_private_bytes(seed)
        key = cls(_raw_public(obj), seed)
        key._cache["crypto"] = obj
        return key

    @classmethod
    def from_cryptography(cls, obj: Ed25519PrivateKey) -> Ed25519Private:
        seed = obj.private_bytes_raw()
        key = cls(_raw_public(obj), seed)
        key._cache["crypto"] = obj
        return key

    @property
    def public(self) -> Ed25519Public:
        return self._cached("public", lambda: Ed25519Public(self.public_key))

    def encode_private_fields(self, w: Writer) -> None:
        w.string(self.public_key).string(self.seed + self.public_key)

    def to_cryptography(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return self._cached("crypto", lambda: Ed25519PrivateKey.from_private_bytes(self.seed))

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        return signature_blob("ssh-ed25519", self.to_cryptography().sign(data))


def _raw_public(obj: Ed25519PrivateKey) -> bytes:
    return obj.public_key().public_bytes_raw()


def decode_ed25519(key_type: str, r: Reader) -> Ed25519Private:
    """string pub, string seed||pub; both copies of the public key must match the seed."""
    pub = r.string()
    sk = r.string()
    if len(pub) != ED25519_KEY_LEN or len(sk) != ED25519_SK_LEN or sk[32:] != pub:
        raise InvalidFormat()
    key = Ed25519Private.from_seed(sk[:32])
    if key.public_key != pub:
        raise InvalidFormat()
    return key
