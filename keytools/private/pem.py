"""PEM private keys through cryptography: PKCS#1 RSA, SEC1 EC, DSA, PKCS#8, legacy
``Proc-Type: 4,ENCRYPTED`` encryption and encrypted PKCS#8.

OpenSSH reads these with OpenSSL's PEM_read_bio_PrivateKey and maps OpenSSL's errors:
a bad or missing passphrase is "incorrect passphrase supplied to decrypt private key",
anything else "invalid format". Only the key types and curves SSH knows are accepted.

Ed25519 keys are never written as PEM/PKCS#8: checked with OpenSSH 9.2p1, ``ssh-keygen
-t ed25519 -m PEM`` (or ``-m PKCS8``) silently writes openssh-key-v1, and ``ssh-keygen -y``
refuses an Ed25519 PKCS#8 file with "invalid format". ``encode_pem_private`` therefore
raises FeatureUnsupported for them and keytools.keyfile writes openssh-key-v1 instead.
"""

from __future__ import annotations

from keytools.errors import (
    FeatureUnsupported,
    InvalidArgument,
    InvalidFormat,
    PassphraseTooShort,
    WrongPassphrase,
    is_library_panic,
)
from keytools.private.base import PrivateKey
from keytools.private.dsa import DsaPrivate
from keytools.private.ecdsa import EcdsaPrivate
from keytools.private.rsa import RsaPrivate

PEM_FORMATS = ("PEM", "PKCS8")
#: OpenSSH refuses shorter passphrases for PEM/PKCS#8 output (SSH_ERR_PASSPHRASE_TOO_SHORT).
MIN_PEM_PASSPHRASE = 5

_ENCRYPTED_MARKERS = (b"Proc-Type: 4,ENCRYPTED", b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def is_pem_private(data: bytes) -> bool:
    """Does ``data`` hold a PEM private key block of some kind?"""
    return b"-----BEGIN " in data and b"PRIVATE KEY-----" in data


def is_encrypted_pem(data: bytes) -> bool:
    return any(marker in data for marker in _ENCRYPTED_MARKERS)


def decode_pem_private(data: bytes, passphrase: bytes | None) -> PrivateKey:
    """The key in a PEM/PKCS#8 file; ``passphrase`` is ignored for unencrypted files."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from keytools.private.keys import from_cryptography

    encrypted = is_encrypted_pem(data)
    if encrypted and not passphrase:
        raise WrongPassphrase()
    try:
        obj = load_pem_private_key(data, passphrase if encrypted else None)
    except TypeError:
        # The file's encryption is not what its headers said.
        error = WrongPassphrase() if encrypted else InvalidFormat()
        raise error from None
    except ValueError as exc:
        text = str(exc).lower()
        if encrypted and ("password" in text or "decrypt" in text):
            raise WrongPassphrase() from None
        raise InvalidFormat() from None
    except (UnsupportedAlgorithm, OverflowError):
        raise InvalidFormat() from None
    except BaseException as exc:  # e.g. a DEK-Info IV shorter than the cipher's panics
        if not is_library_panic(exc):
            raise
        raise InvalidFormat() from None
    if isinstance(obj, ed25519.Ed25519PrivateKey):
        raise InvalidFormat()  # as OpenSSH 9.2 (see the module docstring)
    return from_cryptography(obj)


def encode_pem_private(key: PrivateKey, passphrase: bytes, fmt: str) -> bytes:
    """``fmt`` "PEM" (RSA/EC/DSA PRIVATE KEY) or "PKCS8", encrypted if ``passphrase``."""
    from cryptography.hazmat.primitives import serialization as ser

    kind = fmt.upper()
    if kind not in PEM_FORMATS:
        raise InvalidArgument()
    if not isinstance(key, RsaPrivate | EcdsaPrivate | DsaPrivate):
        raise FeatureUnsupported()
    if 0 < len(passphrase) < MIN_PEM_PASSPHRASE:
        raise PassphraseTooShort()
    encryption: ser.KeySerializationEncryption = (
        ser.BestAvailableEncryption(passphrase) if passphrase else ser.NoEncryption()
    )
    private_format = (
        ser.PrivateFormat.TraditionalOpenSSL if kind == "PEM" else ser.PrivateFormat.PKCS8
    )
    return key.to_cryptography().private_bytes(ser.Encoding.PEM, private_format, encryption)
