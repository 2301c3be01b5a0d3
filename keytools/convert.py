"""Public-key conversion to and from PKCS8 and PEM, as ``ssh-keygen -e/-i -m PKCS8|PEM``.

- PKCS8 means an X.509 SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``).
- PEM means PKCS#1 ``-----BEGIN RSA PUBLIC KEY-----`` for RSA; OpenSSH writes ECDSA and
  DSA keys as SubjectPublicKeyInfo in this mode too, and reads back only RSA.

Reading follows OpenSSL 3 as ssh-keygen uses it: for PKCS8 the first ``PUBLIC KEY`` or
``RSA PUBLIC KEY`` block that decodes is taken (text and other blocks around it are
skipped); for PEM the first ``RSA PUBLIC KEY`` block must decode. A certificate converts
as its plain key. Ed25519 and security keys have no such form: refused as OpenSSH does.

Error messages are ssh-keygen's whole stderr line (``do_convert_to_pkcs8: ...``).
cryptography is imported inside the functions, so importing this module stays cheap.
RFC 4716 lives in keytools.rfc4716; its entry points are re-exported here.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import InvalidFormat, KeyTypeUnknown, is_library_panic
from keytools.rfc4716 import (
    Rfc4716Payload,
    default_rfc4716_comment,
    export_rfc4716,
    import_rfc4716,
    is_ssh2_private,
    rfc4716_payload,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from keytools.public import PublicKey

__all__ = [
    "FORMATS",
    "Rfc4716Payload",
    "default_rfc4716_comment",
    "export_pem_public",
    "export_pkcs8_public",
    "export_public",
    "export_rfc4716",
    "import_pem_public",
    "import_pkcs8_public",
    "import_public",
    "import_rfc4716",
    "is_ssh2_private",
    "parse_format",
    "rfc4716_payload",
]

#: ``-m`` values of ssh-keygen's -e/-i (case-insensitive; ``ssh2`` is RFC4716 too).
FORMATS = ("RFC4716", "PKCS8", "PEM")

#: OpenSSL's EVP_PKEY ids, which ssh-keygen prints for key types it cannot import.
_EVP_IDS = {"Ed25519": 1087, "Ed448": 1088, "X25519": 1034, "X448": 1035, "DH": 28}
_CRYPTO_CURVES = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}

_PKCS8_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")
_PEM_LABEL = "RSA PUBLIC KEY"
_SPKI_LABEL = "PUBLIC KEY"

# OpenSSL PEM reading (crypto/pem/pem_lib.c, crypto/evp/encode.c) as ssh-keygen meets it.
_BOM = "\xef\xbb\xbf"  # a UTF-8 byte order mark, seen one character per byte
_TRAILING = "".join(chr(c) for c in range(33))  # sanitize_line strips chars <= ' '
_EVP_SPACE = str.maketrans("", "", " \t\r\n")
_EVP_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_MAYBE_HEADER, _IN_HEADER, _POST_HEADER = 0, 1, 2


def parse_format(name: str) -> str:
    """The canonical ``-m`` format name (``ssh2`` means RFC4716); InvalidArgument otherwise."""
    from keytools.errors import InvalidArgument

    upper = name.upper() if name.isascii() else ""
    if upper == "SSH2":
        return "RFC4716"
    if upper in FORMATS:
        return upper
    raise InvalidArgument(f'Unsupported conversion format "{name}"')


# ---------------------------------------------------------------- export


def _crypto_public(key: PublicKey, func: str) -> PublicKeyTypes:
    """The cryptography object for an RSA, ECDSA or DSA key (certificates: their key)."""
    from keytools.public import DsaPublic, EcdsaPublic, RsaPublic, type_label

    plain = key.plain
    try:
        if isinstance(plain, RsaPublic):
            from cryptography.hazmat.primitives.asymmetric import rsa

            return rsa.RSAPublicNumbers(plain.e, plain.n).public_key()
        if isinstance(plain, EcdsaPublic):
            from cryptography.hazmat.primitives.asymmetric import ec

            from keytools.public.ecdsa import curve_object

            return ec.EllipticCurvePublicKey.from_encoded_point(
                curve_object(plain.curve), plain.point
            )
        if isinstance(plain, DsaPublic):
            from cryptography.hazmat.primitives.asymmetric import dsa

            params = dsa.DSAParameterNumbers(plain.p, plain.q, plain.g)
            return dsa.DSAPublicNumbers(plain.y, params).public_key()
    except ValueError:
        raise InvalidFormat(f"{func}: invalid {type_label(key)} key") from None
    raise KeyTypeUnknown(f"{func}: unsupported key type {type_label(key)}")


def export_pkcs8_public(key: PublicKey) -> str:
    """``ssh-keygen -e -m PKCS8``: a SubjectPublicKeyInfo PEM block."""
    from cryptography.hazmat.primitives import serialization

    pub = _crypto_public(key, "do_convert_to_pkcs8")
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def export_pem_public(key: PublicKey) -> str:
    """``ssh-keygen -e -m PEM``: PKCS#1 for RSA, SubjectPublicKeyInfo for ECDSA and DSA."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pub = _crypto_public(key, "do_convert_to_pem")
    fmt = (
        serialization.PublicFormat.PKCS1
        if isinstance(pub, rsa.RSAPublicKey)
        else serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pub.public_bytes(serialization.Encoding.PEM, fmt).decode("ascii")


def export_public(key: PublicKey, fmt: str, comment: str) -> str:
    """``ssh-keygen -e -m fmt`` output; ``comment`` is used by RFC4716 only."""
    fmt = parse_format(fmt)
    if fmt == "RFC4716":
        return export_rfc4716(key, comment)
    if fmt == "PKCS8":
        return export_pkcs8_public(key)
    return export_pem_public(key)


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class _PemBlock:
    label: str
    header: str
    der: bytes


class _NoStartLine(Exception):
    """Internal: no BEGIN line before the end of the input (never escapes this module)."""


def _sanitize(line: str) -> str:
    """OpenSSL's sanitize_line in EAY mode: trailing whitespace and controls go."""
    return line.rstrip(_TRAILING)


def _evp_decode(text: str) -> bytes | None:
    """EVP_DecodeUpdate/Final: spaces and line ends skipped, ``-`` ends the data, at most
    two ``=`` and only at the end, whole 4-character groups; None where OpenSSL fails."""
    chars = text.split("-", 1)[0].translate(_EVP_SPACE)
    if not _EVP_CHARS.issuperset(chars) or len(chars) % 4:
        return None
    _, eq, pad = chars.partition("=")
    if eq and (pad.strip("=") or len(pad) > 1):
        return None
    try:
        return binascii.a2b_base64(chars.encode("ascii"))
    except (binascii.Error, ValueError):  # pragma: no cover - validated above
        return None


def _read_block(lines: list[str], i: int) -> tuple[_PemBlock | None, int]:
    """One PEM_read_bio() from line ``i``: (block, or None if malformed; next line).

    Raises _NoStartLine when no BEGIN line is left. Mirrors OpenSSL 3's get_name and
    get_header_and_data: a blank line separates headers from data (a second one is an
    error), a line with ``:`` before any blank line makes the whole body a header (so
    there is no data and the read fails), after a header every data line but the last
    must be exactly 64 characters, and a block that decodes to nothing is an error.
    """
    while True:
        if i >= len(lines):
            raise _NoStartLine()
        line = _sanitize(lines[i])
        i += 1
        if line.startswith("-----BEGIN ") and line.endswith("-----") and len(line) >= 16:
            label = line[11:-5]
            break
    state = _MAYBE_HEADER
    before: list[str] = []
    after: list[str] = []
    short_seen = False
    while True:
        if i >= len(lines):
            return None, i
        raw = lines[i]
        i += 1
        if state == _MAYBE_HEADER and ":" in raw:
            state = _IN_HEADER
        line = _sanitize(raw)
        if not line:
            if state == _POST_HEADER:
                return None, i
            state = _POST_HEADER
            continue
        if line.startswith("-----END "):
            if line[9:] != label + "-----":
                return None, i
            break
        if short_seen:
            return None, i
        if state == _POST_HEADER:
            after.append(line)
            if len(line) > 64:
                return None, i
            short_seen = len(line) < 64
        else:
            before.append(line)
    if state == _MAYBE_HEADER:
        header, body = [], before
    else:
        header, body = before, after
    der = _evp_decode("".join(f"{ln}\n" for ln in body))
    if not der:  # undecodable, or nothing decoded (PEM_read_bio fails on both)
        return None, i
    return _PemBlock(label, "".join(f"{ln}\n" for ln in header), der), i


def _split_lines(data: str | bytes) -> list[str]:
    """Lines as BIO_gets() returns them (LF only), without the LF."""
    if isinstance(data, str):  # work on the UTF-8 bytes, one character per byte
        data = data.encode("utf-8", "surrogateescape")
    text = data.decode("latin-1")
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _load_der(label: str, der: bytes) -> PublicKeyTypes | None:
    """Decode the DER of a ``PUBLIC KEY`` (SPKI) or ``RSA PUBLIC KEY`` (PKCS#1) block."""
    from base64 import encodebytes

    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    # Re-armour so cryptography applies the structure that belongs to the label.
    pem = f"-----BEGIN {label}-----\n".encode() + encodebytes(der)
    pem += f"-----END {label}-----\n".encode()
    try:
        return load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    except BaseException as exc:  # a panic in cryptography's Rust code on hostile DER
        if not is_library_panic(exc):
            raise
    # OpenSSL's d2i ignores bytes after the outer SEQUENCE; cryptography refuses them.
    end = _der_sequence_end(der)
    if end is None or end >= len(der):
        return None
    return _load_der(label, der[:end])


def _der_sequence_end(der: bytes) -> int | None:
    """Where the outer DER SEQUENCE ends (tag, definite length), or None if malformed."""
    if len(der) < 2 or der[0] != 0x30:
        return None
    first = der[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or len(der) < 2 + count:
        return None
    end = 2 + count + int.from_bytes(der[2 : 2 + count], "big")
    return end if end <= len(der) else None


def _is_pkcs1(pub: PublicKeyTypes | None, der: bytes) -> bool:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(pub, rsa.RSAPublicKey):
        return False
    pkcs1 = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return der.startswith(pkcs1)  # d2i ignores trailing bytes


def _read_labelled(lines: list[str], wanted: str) -> PublicKeyTypes | None:
    """PEM_bytes_read_bio + d2i: the first block named ``wanted``; any fault ends it."""
    i = 0
    while True:
        try:
            block, i = _read_block(lines, i)
        except _NoStartLine:
            return None
        if block is None:
            return None
        if block.label == wanted:
            pub = None if block.header else _load_der(wanted, block.der)
            if wanted == _PEM_LABEL and not _is_pkcs1(pub, block.der):
                return None  # d2i_RSAPublicKey takes PKCS#1 only (cryptography also SPKI)
            return pub


def _read_any_public(lines: list[str]) -> PublicKeyTypes | None:
    """OpenSSL 3's decoder loop: skip blocks that decode to no public key, stop on faults.

    A malformed block is skipped too (the reader has moved past it); a block with a
    header over 10 characters (encryption or other) is a hard failure, as in pem2der.
    """
    i = 0
    while i < len(lines):
        try:
            block, i = _read_block(lines, i)
        except _NoStartLine:
            return None
        if block is None:
            continue
        if len(block.header) > 10:
            return None
        if block.label in _PKCS8_LABELS:
            pub = _load_der(block.label, block.der)
            if pub is not None:
                return pub
    return None


def _from_crypto(pub: PublicKeyTypes, func: str) -> PublicKey:
    """Our PublicKey for a cryptography public key; other algorithms as OpenSSH refuses."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    from keytools.public import DsaPublic, EcdsaPublic, RsaPublic

    if isinstance(pub, rsa.RSAPublicKey):
        rn = pub.public_numbers()
        return RsaPublic(rn.e, rn.n)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        curve = _CRYPTO_CURVES.get(pub.curve.name)
        if curve is None:
            raise KeyTypeUnknown(f"{func}: unsupported curve {pub.curve.name}")
        point = pub.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return EcdsaPublic(curve, point)
    if isinstance(pub, dsa.DSAPublicKey):
        dn = pub.public_numbers()
        pn = dn.parameter_numbers
        return DsaPublic(pn.p, pn.q, pn.g, dn.y)
    kind = type(pub).__name__.replace("PublicKey", "")
    evp = _EVP_IDS.get(kind)
    raise KeyTypeUnknown(f"{func}: unsupported pubkey type {evp if evp is not None else kind}")


def import_pkcs8_public(data: str | bytes, source: str = "(stdin)") -> PublicKey:
    """``ssh-keygen -i -m PKCS8``: the first PUBLIC KEY (or RSA PUBLIC KEY) block that decodes.

    A str is read as its UTF-8 bytes. ``source`` is the file name that goes into the
    "is not a recognised public key format" message.
    """
    func = "do_convert_from_pkcs8"
    lines = _split_lines(data)
    pub = _read_any_public(lines)
    if pub is None:  # OpenSSL then retries with its legacy reader
        pub = _read_labelled(lines, _SPKI_LABEL)
    if pub is None:
        raise InvalidFormat(f"{func}: {source} is not a recognised public key format")
    return _from_crypto(pub, func)


def import_pem_public(data: str | bytes) -> PublicKey:
    """``ssh-keygen -i -m PEM``: the first RSA PUBLIC KEY (PKCS#1) block; nothing else."""
    func = "do_convert_from_pem"
    pub = _read_labelled(_split_lines(data), _PEM_LABEL)
    if pub is None:
        raise InvalidFormat(f"{func}: unrecognised raw private key format")
    return _from_crypto(pub, func)


def import_public(data: str | bytes, fmt: str, source: str = "(stdin)") -> PublicKey:
    """``ssh-keygen -i -m fmt`` for a public key (RFC4716 private blocks are refused)."""
    fmt = parse_format(fmt)
    if fmt == "RFC4716":
        return import_rfc4716(data)
    if fmt == "PKCS8":
        return import_pkcs8_public(data, source)
    return import_pem_public(data)
