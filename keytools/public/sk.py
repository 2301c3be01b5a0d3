"""FIDO security-key public keys (PROTOCOL.u2f): parsed and verified, never generated here."""

from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from typing import ClassVar

from keytools.errors import SignatureInvalid
from keytools.public.base import PublicKey, register, split_signature
from keytools.public.ecdsa import check_point, decode_curve_and_point, verify_ecdsa
from keytools.public.ed25519 import ED25519_KEY_LEN, verify_ed25519
from keytools.wire import Reader, Writer

SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
WEBAUTHN_ECDSA = "webauthn-sk-ecdsa-sha2-nistp256@openssh.com"


def _signed_blob(application: str, flags: int, counter: int, ext: bytes, msg_hash: bytes) -> bytes:
    return b"".join(
        (
            hashlib.sha256(application.encode("utf-8", "surrogateescape")).digest(),
            bytes((flags,)),
            counter.to_bytes(4, "big"),
            ext,
            msg_hash,
        )
    )


def _webauthn_client_data_ok(data: bytes, origin: str, client_data: bytes) -> bool:
    """The clientData must name the message as its challenge and the signature's origin."""
    challenge = urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
    prefix = f'{{"type":"webauthn.get","challenge":"{challenge}","origin":"{origin}"'
    return client_data.startswith(prefix.encode("utf-8"))


@dataclass(frozen=True)
class SkEd25519Public(PublicKey):
    key: bytes
    application: str
    label: ClassVar[str] = "ED25519-SK"
    canonical_wire: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if len(self.key) != ED25519_KEY_LEN:
            from keytools.errors import InvalidFormat

            raise InvalidFormat()

    @property
    def key_type(self) -> str:
        return SK_ED25519

    @property
    def bits(self) -> int:
        return 256

    def encode_body(self, w: Writer) -> None:
        w.string(self.key).string(self.application)

    def verify(self, data: bytes, signature: bytes) -> None:
        alg, r = split_signature(signature)
        if alg != SK_ED25519:
            raise SignatureInvalid()
        sig = r.string()
        flags, counter = r.byte(), r.uint32()
        r.end()
        blob = _signed_blob(self.application, flags, counter, b"", hashlib.sha256(data).digest())
        verify_ed25519(self.key, blob, sig)


@dataclass(frozen=True)
class SkEcdsaPublic(PublicKey):
    point: bytes
    application: str
    label: ClassVar[str] = "ECDSA-SK"
    curve: ClassVar[str] = "nistp256"

    def __post_init__(self) -> None:
        check_point(self.curve, self.point)

    @property
    def key_type(self) -> str:
        return SK_ECDSA

    @property
    def bits(self) -> int:
        return 256

    def encode_body(self, w: Writer) -> None:
        w.string(self.curve).string(self.point).string(self.application)

    def verify(self, data: bytes, signature: bytes) -> None:
        alg, r = split_signature(signature)
        if alg not in (SK_ECDSA, WEBAUTHN_ECDSA):
            raise SignatureInvalid()
        sig = r.string()
        flags, counter = r.byte(), r.uint32()
        ext = b""
        msg_hash = hashlib.sha256(data).digest()
        if alg == WEBAUTHN_ECDSA:
            origin = r.text()
            client_data = r.string()
            ext = r.string()
            if ext or not _webauthn_client_data_ok(data, origin, client_data):
                raise SignatureInvalid()
            msg_hash = hashlib.sha256(client_data).digest()
        r.end()
        verify_ecdsa(self.curve, self.point, _signed_blob(self.application, flags, counter, ext,
                                                          msg_hash), sig)


def _decode_ed25519(key_type: str, r: Reader) -> PublicKey:
    key = r.string()
    return SkEd25519Public(key, r.cstring())


def _decode_ecdsa(key_type: str, r: Reader) -> PublicKey:
    _, point = decode_curve_and_point(key_type, r)
    return SkEcdsaPublic(point, r.cstring())


register((SK_ED25519,), _decode_ed25519)
register((SK_ECDSA,), _decode_ecdsa)
