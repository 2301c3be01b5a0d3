"""mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex, OpenSSH 9.9+).

The client sends its ML-KEM-768 encapsulation key followed by an X25519 key; the server
answers with the ML-KEM ciphertext followed by its X25519 key. K is
string(SHA-256(ML-KEM secret || X25519 secret)). ML-KEM comes from cryptography >= 48.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytools.errors import FeatureUnsupported, InvalidFormat
from keytools.wire import Reader, Writer
from protocol.kex.base import Agreement, digest
from protocol.kex.ecdh import X25519_SIZE, x25519_keypair, x25519_shared

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

MLKEM768_PUBLIC = 1184
MLKEM768_CIPHERTEXT = 1088


def mlkem_available() -> bool:
    """Whether this cryptography build can do ML-KEM-768 (needs cryptography >= 48)."""
    try:
        from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
    except ImportError:
        return False
    try:
        MLKEM768PrivateKey.generate()
    except Exception:  # UnsupportedAlgorithm on a backend without ML-KEM
        return False
    return True


def _string(data: bytes) -> bytes:
    return Writer().string(data).getvalue()


def _combine(kem_secret: bytes, ecdh_secret: bytes) -> bytes:
    return _string(digest("sha256", kem_secret, ecdh_secret))


class MlKemX25519Agreement(Agreement):
    def __init__(self) -> None:
        self._kem: MLKEM768PrivateKey | None = None
        self._ecdh: X25519PrivateKey | None = None

    def client_public(self) -> bytes:
        try:
            from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
        except ImportError:
            raise FeatureUnsupported() from None
        self._kem = MLKEM768PrivateKey.generate()
        self._ecdh, ecdh_public = x25519_keypair()
        return _string(self._kem.public_key().public_bytes_raw() + ecdh_public)

    def read_public(self, r: Reader) -> bytes:
        blob = r.string()
        if len(blob) not in (MLKEM768_PUBLIC + X25519_SIZE, MLKEM768_CIPHERTEXT + X25519_SIZE):
            raise InvalidFormat()
        return _string(blob)

    def client_shared(self, server_public: bytes) -> bytes:
        assert self._kem is not None and self._ecdh is not None
        blob = Reader(server_public).string()
        if len(blob) != MLKEM768_CIPHERTEXT + X25519_SIZE:
            raise InvalidFormat()
        try:
            kem_secret = self._kem.decapsulate(blob[:MLKEM768_CIPHERTEXT])
        except ValueError:
            raise InvalidFormat() from None
        return _combine(kem_secret, x25519_shared(self._ecdh, blob[MLKEM768_CIPHERTEXT:]))

    def server_reply(self, client_public: bytes) -> tuple[bytes, bytes]:
        try:
            from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey
        except ImportError:
            raise FeatureUnsupported() from None
        blob = Reader(client_public).string()
        if len(blob) != MLKEM768_PUBLIC + X25519_SIZE:
            raise InvalidFormat()
        try:
            kem_public = MLKEM768PublicKey.from_public_bytes(blob[:MLKEM768_PUBLIC])
        except ValueError:
            raise InvalidFormat() from None
        kem_secret, ciphertext = kem_public.encapsulate()
        key, ecdh_public = x25519_keypair()
        ecdh_secret = x25519_shared(key, blob[MLKEM768_PUBLIC:])
        return _string(ciphertext + ecdh_public), _combine(kem_secret, ecdh_secret)
