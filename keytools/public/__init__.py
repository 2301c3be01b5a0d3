"""Public keys: the types, their wire blobs and the one-line OpenSSH text form."""

from __future__ import annotations

import binascii

from keytools.errors import InvalidFormat, KeyTypeMismatch, KeyTypeUnknown
from keytools.public.base import PublicKey, decode_body, known_types
from keytools.public.dsa import DsaPublic
from keytools.public.ecdsa import EcdsaPublic
from keytools.public.ed25519 import Ed25519Public
from keytools.public.rsa import RsaPublic
from keytools.public.sk import SkEcdsaPublic, SkEd25519Public
from keytools.wire import Reader

__all__ = [
    "DsaPublic",
    "EcdsaPublic",
    "Ed25519Public",
    "PublicKey",
    "RsaPublic",
    "SkEcdsaPublic",
    "SkEd25519Public",
    "decode_public_blob",
    "decode_public_reader",
    "parse_public_line",
    "read_key_token",
    "type_label",
]

_WS = " \t"


def _register_certificates() -> None:
    # Certificates register their decoders on import; import here so every blob decodes.
    import keytools.certificate  # noqa: F401


def decode_public_reader(r: Reader) -> PublicKey:
    """Decode one key blob from the reader (type name, then fields)."""
    key_type = r.ascii()
    return decode_body(key_type, r)


def decode_public_blob(blob: bytes) -> PublicKey:
    """Decode a complete public key or certificate blob; trailing bytes are an error."""
    r = Reader(blob)
    key = decode_public_reader(r)
    r.end()
    return key


def type_label(key: PublicKey) -> str:
    """OpenSSH's sshkey_type(): ``ED25519``, ``RSA-CERT``, ..."""
    from keytools.certificate import Certificate

    if isinstance(key, Certificate):
        return key.type_label
    return key.label


def read_key_token(text: str) -> tuple[PublicKey, str]:
    """Parse ``type base64`` at the start of ``text`` as OpenSSH's sshkey_read does.

    Returns the key and the text after the base64 field (not yet stripped).
    """
    cut = len(text) - len(text.lstrip(_WS))
    text = text[cut:]
    end = next((i for i, c in enumerate(text) if c in _WS), -1)
    if end < 0:
        raise InvalidFormat()
    name = text[:end]
    if name not in known_types():
        raise KeyTypeUnknown()
    rest = text[end:].lstrip(_WS)
    stop = next((i for i, c in enumerate(rest) if c in _WS), len(rest))
    token = rest[:stop]
    try:
        blob = binascii.a2b_base64(token.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidFormat() from None
    key = decode_public_blob(blob)
    if key.key_type != name:
        raise KeyTypeMismatch()
    return key, rest[stop:]


def parse_public_line(line: str) -> tuple[PublicKey, str]:
    """Parse an OpenSSH one-line public key; returns the key and its comment."""
    key, rest = read_key_token(line.rstrip("\r\n"))
    return key, rest.strip(_WS)


_register_certificates()
