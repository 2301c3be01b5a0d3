"""curve25519-sha256 (RFC 8731) and ecdh-sha2-nistp256/384/521 (RFC 5656) agreements."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytools.errors import InvalidEcValue, InvalidFormat
from keytools.public.ecdsa import CURVES, check_point, curve_object
from keytools.wire import Reader, Writer, mpint_bytes
from protocol.kex.base import Agreement

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

X25519_SIZE = 32


def x25519_keypair() -> tuple[X25519PrivateKey, bytes]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    return key, key.public_key().public_bytes_raw()


def x25519_shared(key: X25519PrivateKey, peer: bytes) -> bytes:
    """The raw X25519 secret; a wrong-sized or low-order peer key is refused as OpenSSH does."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    if len(peer) != X25519_SIZE:
        raise InvalidEcValue()
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:  # the all-zero result of a small-order point
        raise InvalidEcValue() from None
    if shared == bytes(X25519_SIZE):
        raise InvalidEcValue()
    return shared


def _string(data: bytes) -> bytes:
    return Writer().string(data).getvalue()


class X25519Agreement(Agreement):
    """K is the X25519 result read as a big-endian number, sent as mpint."""

    def __init__(self) -> None:
        self._key: X25519PrivateKey | None = None

    def _public(self) -> bytes:
        self._key, public = x25519_keypair()
        return _string(public)

    def client_public(self) -> bytes:
        return self._public()

    def read_public(self, r: Reader) -> bytes:
        q = r.string()
        if len(q) != X25519_SIZE:
            raise InvalidEcValue()
        return _string(q)

    def _shared(self, peer_field: bytes) -> bytes:
        assert self._key is not None
        secret = x25519_shared(self._key, Reader(peer_field).string())
        return mpint_bytes(int.from_bytes(secret, "big"))

    def client_shared(self, server_public: bytes) -> bytes:
        return self._shared(server_public)

    def server_reply(self, client_public: bytes) -> tuple[bytes, bytes]:
        public = self._public()
        return public, self._shared(client_public)


class EcdhAgreement(Agreement):
    """ECDH on a NIST curve with uncompressed points; K is the x coordinate as mpint."""

    def __init__(self, curve: str) -> None:
        if curve not in CURVES:
            raise InvalidFormat()
        self._curve = curve
        self._key: EllipticCurvePrivateKey | None = None

    def _public(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(curve_object(self._curve))
        point = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _string(point)

    def client_public(self) -> bytes:
        return self._public()

    def read_public(self, r: Reader) -> bytes:
        point = r.string()
        try:
            check_point(self._curve, point)
        except InvalidFormat:
            raise InvalidEcValue() from None
        return _string(point)

    def _shared(self, peer_field: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec

        assert self._key is not None
        point = Reader(peer_field).string()
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(curve_object(self._curve), point)
            secret = self._key.exchange(ec.ECDH(), peer)
        except ValueError:
            raise InvalidEcValue() from None
        return mpint_bytes(int.from_bytes(secret, "big"))

    def client_shared(self, server_public: bytes) -> bytes:
        return self._shared(server_public)

    def server_reply(self, client_public: bytes) -> tuple[bytes, bytes]:
        public = self._public()
        return public, self._shared(client_public)
