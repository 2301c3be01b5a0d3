"""The ciphers an openssh-key-v1 file may be encrypted with (OpenSSH's cipher.c table).

Each cipher is used once per file, from its initial state: CTR with the KDF's IV as the
whole 128-bit counter block, CBC with the IV, AES-GCM with the 12-byte IV and no AAD
(16-byte tag appended), and chacha20-poly1305@openssh.com as PROTOCOL.chacha20poly1305
with sequence number 0 and no length header (the tag covers the ciphertext only).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import InvalidArgument, MacInvalid, UnknownCipher

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, modes


@dataclass(frozen=True)
class CipherSpec:
    name: str
    block_size: int
    key_len: int
    iv_len: int
    auth_len: int
    #: "none", "ctr", "cbc", "3des-cbc", "gcm" or "chachapoly"
    mode: str


# Order as cipher.c lists them (and `ssh -Q cipher` prints them).
_CIPHERS = (
    CipherSpec("3des-cbc", 8, 24, 8, 0, "3des-cbc"),
    CipherSpec("aes128-cbc", 16, 16, 16, 0, "cbc"),
    CipherSpec("aes192-cbc", 16, 24, 16, 0, "cbc"),
    CipherSpec("aes256-cbc", 16, 32, 16, 0, "cbc"),
    CipherSpec("aes128-ctr", 16, 16, 16, 0, "ctr"),
    CipherSpec("aes192-ctr", 16, 24, 16, 0, "ctr"),
    CipherSpec("aes256-ctr", 16, 32, 16, 0, "ctr"),
    CipherSpec("aes128-gcm@openssh.com", 16, 16, 12, 16, "gcm"),
    CipherSpec("aes256-gcm@openssh.com", 16, 32, 12, 16, "gcm"),
    CipherSpec("chacha20-poly1305@openssh.com", 8, 64, 0, 16, "chachapoly"),
    # OpenSSH's cipher_ivlen() gives "none" its block size as IV length.
    CipherSpec("none", 8, 0, 8, 0, "none"),
)
CIPHERS: dict[str, CipherSpec] = {c.name: c for c in _CIPHERS}
CIPHER_NAMES: tuple[str, ...] = tuple(CIPHERS)
DEFAULT_CIPHER = "aes256-ctr"


def cipher_by_name(name: str) -> CipherSpec | None:
    """The cipher called ``name``, or None (as OpenSSH's cipher_by_name)."""
    return CIPHERS.get(name)


def get_cipher(name: str) -> CipherSpec:
    spec = CIPHERS.get(name)
    if spec is None:
        raise UnknownCipher()
    return spec


def _check(spec: CipherSpec, key: bytes, iv: bytes, data: bytes) -> None:
    if len(key) != spec.key_len or len(iv) != spec.iv_len or len(data) % spec.block_size:
        raise InvalidArgument()


def _chacha_keystream(key: bytes, counter: int, data: bytes) -> bytes:
    """ChaCha20 (64-bit counter, 64-bit nonce = sequence number 0) applied to ``data``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    nonce = counter.to_bytes(8, "little") + (0).to_bytes(8, "big")
    enc = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
    return enc.update(data) + enc.finalize()


def _poly1305(main_key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    poly_key = _chacha_keystream(main_key, 0, bytes(32))
    return Poly1305.generate_tag(poly_key, data)


def _block_cipher(spec: CipherSpec, key: bytes, iv: bytes) -> Cipher[modes.CBC | modes.CTR]:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if spec.mode == "3des-cbc":
        return Cipher(TripleDES(key), modes.CBC(iv))
    if spec.mode == "cbc":
        return Cipher(algorithms.AES(key), modes.CBC(iv))
    return Cipher(algorithms.AES(key), modes.CTR(iv))


def encrypt(spec: CipherSpec, key: bytes, iv: bytes, data: bytes) -> bytes:
    """Ciphertext of ``data`` (a whole number of blocks), with the tag appended if any."""
    _check(spec, key, iv, data)
    if spec.mode == "none":
        return data
    if spec.mode == "gcm":
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key).encrypt(iv, data, None)
    if spec.mode == "chachapoly":
        main = key[:32]
        ct = _chacha_keystream(main, 1, data)
        return ct + _poly1305(main, ct)
    enc = _block_cipher(spec, key, iv).encryptor()
    return bytes(enc.update(data) + enc.finalize())


def decrypt(spec: CipherSpec, key: bytes, iv: bytes, data: bytes, tag: bytes = b"") -> bytes:
    """Plaintext of ``data``; MacInvalid when the AEAD tag does not match."""
    _check(spec, key, iv, data)
    if len(tag) != spec.auth_len:
        raise InvalidArgument()
    if spec.mode == "none":
        return data
    if spec.mode == "gcm":
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(key).decrypt(iv, data + tag, None)
        except InvalidTag:
            raise MacInvalid() from None
    if spec.mode == "chachapoly":
        main = key[:32]
        if not hmac.compare_digest(_poly1305(main, data), tag):
            raise MacInvalid()
        return _chacha_keystream(main, 1, data)
    dec = _block_cipher(spec, key, iv).decryptor()
    return bytes(dec.update(data) + dec.finalize())
