"""Private keys: the key types, their wire encoding, signing and generation.

The file formats live beside them: ``openssh`` (openssh-key-v1), ``pem`` (PEM/PKCS#8 via
cryptography), ``ssh2`` (RFC 4716 import) and ``ciphers`` (the key-file ciphers).
Nothing here imports cryptography until a key is built or used.
"""

from __future__ import annotations

from keytools.private.base import PrivateKey
from keytools.private.dsa import DsaPrivate
from keytools.private.ecdsa import EcdsaPrivate
from keytools.private.ed25519 import Ed25519Private
from keytools.private.keys import (
    decode_private_blob,
    decode_private_reader,
    encode_private_key,
    from_cryptography,
    generate,
    private_key_types,
)
from keytools.private.rsa import RsaPrivate
from keytools.private.sk import SkEcdsaPrivate, SkEd25519Private

__all__ = [
    "DsaPrivate",
    "EcdsaPrivate",
    "Ed25519Private",
    "PrivateKey",
    "RsaPrivate",
    "SkEcdsaPrivate",
    "SkEd25519Private",
    "decode_private_blob",
    "decode_private_reader",
    "encode_private_key",
    "from_cryptography",
    "generate",
    "private_key_types",
]
