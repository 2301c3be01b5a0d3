"""Public keys: the types, their wire blobs and the one-line OpenSSH text form.

The key classes are imported on first use (PEP 562): ``from keytools.public import
RsaPublic`` works as ever, but reading an Ed25519 key imports only the Ed25519 module
(base.py's registry imports a type's module when a blob of that type is decoded).
"""

from __future__ import annotations

import binascii
import re
import sys
from typing import TYPE_CHECKING

from keytools.errors import InvalidFormat, KeyTypeMismatch, KeyTypeUnknown
from keytools.public.base import PublicKey, decode_body, known_types
from keytools.wire import Reader

if TYPE_CHECKING:
    from keytools.public.dsa import DsaPublic
    from keytools.public.ecdsa import EcdsaPublic
    from keytools.public.ed25519 import Ed25519Public
    from keytools.public.rsa import RsaPublic
    from keytools.public.sk import SkEcdsaPublic, SkEd25519Public

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
#: the key classes and their modules, imported when first asked for
_CLASSES = {
    "DsaPublic": "keytools.public.dsa",
    "EcdsaPublic": "keytools.public.ecdsa",
    "Ed25519Public": "keytools.public.ed25519",
    "RsaPublic": "keytools.public.rsa",
    "SkEcdsaPublic": "keytools.public.sk",
    "SkEd25519Public": "keytools.public.sk",
}


def __getattr__(name: str) -> object:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def decode_public_reader(r: Reader) -> PublicKey:
    """Decode one key blob from the reader (type name, then fields)."""
    key_type = r.ascii()
    return decode_body(key_type, r)


def decode_public_blob(blob: bytes) -> PublicKey:
    """Decode a complete public key or certificate blob; trailing bytes are an error."""
    r = Reader(blob)
    key = decode_public_reader(r)
    r.end()
    key.keep_blob(blob)
    return key


def type_label(key: PublicKey) -> str:
    """OpenSSH's sshkey_type(): ``ED25519``, ``RSA-CERT``, ..."""
    return key.type_label


_TOKENS: re.Pattern[str] | None = None


def read_key_token(text: str) -> tuple[PublicKey, str]:
    """Parse ``type base64`` at the start of ``text`` as OpenSSH's sshkey_read does.

    Returns the key and the text after the base64 field (not yet stripped).
    """
    global _TOKENS
    if _TOKENS is None:  # compiled on first use: importing this package stays cheap
        _TOKENS = re.compile(r"[ \t]*([^ \t]*)[ \t]+([^ \t]*)")
    m = _TOKENS.match(text)
    if m is None:
        raise InvalidFormat()
    # b64_pton skips whitespace such as the CR of a CRLF line; the token has no blanks.
    name, token = m.group(1), m.group(2).strip("\r\n\v\f")
    if name not in known_types():
        raise KeyTypeUnknown()
    try:
        blob = binascii.a2b_base64(token.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidFormat() from None
    key = decode_public_blob(blob)
    if key.key_type != name:
        raise KeyTypeMismatch()
    return key, text[m.end() :]


def parse_public_line(line: str) -> tuple[PublicKey, str]:
    """Parse an OpenSSH one-line public key; returns the key and its comment."""
    key, rest = read_key_token(line.rstrip("\r\n"))
    return key, rest.strip(_WS)

