"""Import of "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----" files (ssh.com's RFC 4716 style
private keys), as ``ssh-keygen -i`` reads them: cipher "none" only, RSA and DSA.

The text and binary layouts follow ssh-keygen.c's do_convert_from_ssh2 and
do_convert_private_ssh2, including their quirks (see the comments below).
"""

from __future__ import annotations

import binascii

from keytools.errors import InvalidFormat, KeyTypeUnknown, SshError, UnknownCipher
from keytools.private.base import PrivateKey
from keytools.private.dsa import DsaPrivate
from keytools.private.rsa import RsaPrivate
from keytools.public.rsa import RsaPublic
from keytools.wire import Reader

SSH2_PRIVATE_BEGIN = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
SSH_COM_PRIVATE_KEY_MAGIC = 0x3F6FF9EB
#: ssh-keygen reads the armoured body into a buffer of this size (strlcat truncates).
_MAX_ENCODED = 8096 - 1
#: ssh-keygen's get_line() reads lines up to this length (1024-byte buffer).
_MAX_LINE = 1024 - 1


def parse_ssh2_text(text: str) -> tuple[bool, bytes]:
    """(is_private, decoded body) of an RFC 4716-style file, as do_convert_from_ssh2.

    Lines starting "----" or containing ": " are markers or headers (skipped); a line
    ending in a backslash makes the next body line a continuation (skipped too); the
    first line containing " END " stops reading.
    """
    private = False
    escaped = 0
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if len(line) > _MAX_LINE:
            raise InvalidFormat()
        if line.endswith("\\"):
            escaped += 1
        if line.startswith("----") or ": " in line:
            if SSH2_PRIVATE_BEGIN in line:
                private = True
            if " END " in line:
                break
            continue
        if escaped:
            escaped -= 1
            continue
        parts.append(line)
    encoded = "".join(parts)[:_MAX_ENCODED]
    # ssh-keygen drops a "===" tail (never valid base64) before decoding.
    if len(encoded) % 4 == 3 and encoded.endswith("==="):
        encoded = encoded[:-3]
    try:
        body = binascii.a2b_base64(
            "".join(encoded.split()).encode("ascii"), strict_mode=True
        )
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidFormat() from None
    return private, body


def _bignum_bits(r: Reader) -> int:
    """ssh.com's bignum: uint32 bit count, then (bits + 7) / 8 bytes big-endian."""
    bits = r.uint32()
    return int.from_bytes(r.raw((bits + 7) // 8), "big")


def decode_ssh2_private_blob(blob: bytes) -> PrivateKey:
    """The binary key inside the armour (do_convert_private_ssh2)."""
    r = Reader(blob)
    if r.uint32() != SSH_COM_PRIVATE_KEY_MAGIC:
        raise InvalidFormat()
    r.uint32()  # total length, ignored by ssh-keygen
    key_type = r.text()
    cipher = r.text()
    # ssh-keygen reads and ignores three more uint32s. For RSA the third is really the
    # bit count of e, whose bytes follow: hence its odd "1 or 3 bytes" reading below.
    r.uint32()
    r.uint32()
    r.uint32()
    if cipher != "none":
        raise UnknownCipher()
    key: PrivateKey
    if "dsa" in key_type:
        # ssh-keygen's order: p, g, q, y, x.
        p = _bignum_bits(r)
        g = _bignum_bits(r)
        q = _bignum_bits(r)
        y = _bignum_bits(r)
        x = _bignum_bits(r)
        key = DsaPrivate(p, q, g, y, x)
    elif "rsa" in key_type:
        e = r.byte()
        if e < 30:
            e = (e << 16) | (r.byte() << 8) | r.byte()
        d = _bignum_bits(r)
        n = _bignum_bits(r)
        iqmp = _bignum_bits(r)
        q = _bignum_bits(r)
        p = _bignum_bits(r)
        RsaPublic(e, n)  # KeyLength outside 1024..16384 bits
        key = RsaPrivate(n, e, d, iqmp, p, q)
    else:
        raise KeyTypeUnknown()
    # ssh-keygen only warns about trailing bytes; it then proves the key by signing.
    key.to_cryptography()
    try:
        key.public.verify(b"abcde12345", key.sign(b"abcde12345"))
    except SshError:
        raise InvalidFormat() from None
    return key


def decode_ssh2_private(text: str) -> PrivateKey:
    """The private key in an "SSH2 ENCRYPTED PRIVATE KEY" text."""
    private, body = parse_ssh2_text(text)
    if not private:
        raise InvalidFormat()
    return decode_ssh2_private_blob(body)
