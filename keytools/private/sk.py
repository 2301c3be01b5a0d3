"""FIDO security-key private keys: the token's key handle, kept and re-written, not used.

Signing needs the token itself, so ``sign`` raises FeatureUnsupported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from keytools.errors import CurveMismatch, FeatureUnsupported, InvalidFormat
from keytools.private.base import PrivateKey
from keytools.public.ecdsa import check_point
from keytools.public.ed25519 import ED25519_KEY_LEN
from keytools.public.sk import SkEcdsaPublic, SkEd25519Public
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def _token_needed() -> NoReturn:
    raise FeatureUnsupported()


@dataclass(frozen=True)
class SkEd25519Private(PrivateKey):
    public_key: bytes
    application: str
    flags: int
    key_handle: bytes = field(repr=False)
    reserved: bytes = b""
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if len(self.public_key) != ED25519_KEY_LEN or not 0 <= self.flags <= 0xFF:
            raise InvalidFormat()

    @property
    def public(self) -> SkEd25519Public:
        return self._cached("public", lambda: SkEd25519Public(self.public_key, self.application))

    def encode_private_fields(self, w: Writer) -> None:
        w.string(self.public_key).string(self.application).byte(self.flags)
        w.string(self.key_handle).string(self.reserved)

    def to_cryptography(self) -> PrivateKeyTypes:
        _token_needed()

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        _token_needed()


@dataclass(frozen=True)
class SkEcdsaPrivate(PrivateKey):
    point: bytes
    application: str
    flags: int
    key_handle: bytes = field(repr=False)
    reserved: bytes = b""
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        check_point("nistp256", self.point)
        if not 0 <= self.flags <= 0xFF:
            raise InvalidFormat()

    @property
    def public(self) -> SkEcdsaPublic:
        return self._cached("public", lambda: SkEcdsaPublic(self.point, self.application))

    def encode_private_fields(self, w: Writer) -> None:
        w.string("nistp256").string(self.point).string(self.application).byte(self.flags)
        w.string(self.key_handle).string(self.reserved)

    def to_cryptography(self) -> PrivateKeyTypes:
        _token_needed()

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        _token_needed()


def decode_sk_ed25519(key_type: str, r: Reader) -> SkEd25519Private:
    """string pub, string application, byte flags, string key_handle, string reserved."""
    pub = r.string()
    if len(pub) != ED25519_KEY_LEN:
        raise InvalidFormat()
    application = r.text()
    flags = r.byte()
    return SkEd25519Private(pub, application, flags, r.string(), r.string())


def decode_sk_ecdsa(key_type: str, r: Reader) -> SkEcdsaPrivate:
    """string curve, string Q, then the fields of the sk-ed25519 form after the key."""
    if r.ascii() != "nistp256":
        raise CurveMismatch()
    point = r.string()
    application = r.text()
    flags = r.byte()
    return SkEcdsaPrivate(point, application, flags, r.string(), r.string())
