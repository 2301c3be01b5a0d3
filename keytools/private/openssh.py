"""openssh-key-v1 private key files (PROTOCOL.key), read and written as OpenSSH does.

Decoding follows sshkey.c's private2_uudecode/private2_decrypt step by step, so each
fault gets the error OpenSSH reports for it: a check-int mismatch is "incorrect
passphrase" (even for an unencrypted file, as in OpenSSH), bad padding or a public key
that does not match the private one is "invalid format", an unknown cipher or KDF is
"unsupported cipher".
"""

from __future__ import annotations

import base64
import binascii
import secrets

from keytools.errors import (
    InvalidArgument,
    InvalidFormat,
    MacInvalid,
    UnknownCipher,
    WrongPassphrase,
)
from keytools.private.base import PrivateKey
from keytools.private.ciphers import (
    DEFAULT_CIPHER,
    cipher_by_name,
    decrypt,
    encrypt,
    get_cipher,
)
from keytools.private.keys import decode_private_reader
from keytools.public import PublicKey, decode_public_reader
from keytools.wire import Reader, Writer

MARK_BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
MARK_END = b"-----END OPENSSH PRIVATE KEY-----\n"
AUTH_MAGIC = b"openssh-key-v1\0"
KDF_NAME = "bcrypt"
SALT_LEN = 16
DEFAULT_ROUNDS = 16
#: sshbuf_dtob64's line width
B64_WIDTH = 70
_B64_SPACE = b" \t\v\f"
#: padding bytes are 1, 2, 3, ... (a counter's low byte: 255 is followed by 0)
_PAD_CYCLE = bytes(range(1, 256)) + b"\0"


def is_openssh_private(data: bytes) -> bool:
    """Does ``data`` start like an openssh-key-v1 file (OpenSSH checks the first bytes)?"""
    return data.startswith(MARK_BEGIN)


def _unarmor(data: bytes) -> bytes:
    """The decoded binary between the markers (private2_uudecode)."""
    if len(data) < len(MARK_BEGIN) + len(MARK_END) or not data.startswith(MARK_BEGIN):
        raise InvalidFormat()
    # The body ends at the first body line that is exactly the end marker (with its newline).
    nl = data.find(b"\n" + MARK_END, len(MARK_BEGIN))
    if nl < 0:
        raise InvalidFormat()
    body = data[len(MARK_BEGIN) : nl + 1]
    body = body.translate(None, b"\r\n" + _B64_SPACE)
    try:
        decoded = binascii.a2b_base64(body, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidFormat() from None
    if not decoded.startswith(AUTH_MAGIC):
        raise InvalidFormat()
    return decoded


def _armor(blob: bytes) -> bytes:
    text = base64.b64encode(blob)
    lines = [text[i : i + B64_WIDTH] for i in range(0, len(text), B64_WIDTH)]
    return MARK_BEGIN + b"\n".join(lines) + b"\n" + MARK_END


def openssh_public_from_private(data: bytes) -> PublicKey:
    """The public key in the unencrypted header, without needing the passphrase."""
    r = Reader(_unarmor(data))
    r.raw(len(AUTH_MAGIC))
    r.string()  # cipher
    r.string()  # kdf name
    r.string()  # kdf options
    if r.uint32() != 1:
        raise InvalidFormat()
    return _decode_public(r.string())


def is_encrypted_openssh(data: bytes) -> bool:
    """Whether an openssh-key-v1 file needs a passphrase (its KDF is not "none")."""
    r = Reader(_unarmor(data))
    r.raw(len(AUTH_MAGIC))
    r.string()
    return r.string() != b"none"


def _decode_public(blob: bytes) -> PublicKey:
    r = Reader(blob)
    key = decode_public_reader(r)
    r.end()
    return key


def _kdf(passphrase: bytes, salt: bytes, rounds: int, length: int) -> bytes:
    import bcrypt

    try:
        out: bytes = bcrypt.kdf(
            password=passphrase,
            salt=salt,
            desired_key_bytes=length,
            rounds=rounds,
            ignore_few_rounds=True,
        )
    except ValueError:
        raise InvalidFormat() from None
    return out


def decode_openssh_private(
    data: bytes, passphrase: bytes | None, *, max_rounds: int | None = None
) -> tuple[PrivateKey, str]:
    """The key and comment in an openssh-key-v1 file.

    ``max_rounds`` optionally refuses KDF round counts above it (OpenSSH has no limit;
    fuzzers and services that must not stall use it).
    """
    r = Reader(_unarmor(data))
    r.raw(len(AUTH_MAGIC))
    cipher_name = r.text()
    kdf_name = r.text()
    kdf_options = r.string()
    if r.uint32() != 1:
        raise InvalidFormat()
    public = _decode_public(r.string())
    encrypted_len = r.uint32()

    spec = get_cipher(cipher_name)
    if kdf_name not in ("none", KDF_NAME):
        raise UnknownCipher()
    if kdf_name == "none" and cipher_name != "none":
        raise InvalidFormat()
    if not passphrase and kdf_name != "none":
        raise WrongPassphrase()
    if encrypted_len < spec.block_size or encrypted_len % spec.block_size:
        raise InvalidFormat()

    key = bytes(spec.key_len + spec.iv_len)
    if kdf_name == KDF_NAME:
        kr = Reader(kdf_options)
        salt = kr.string()
        rounds = kr.uint32()
        if max_rounds is not None and rounds > max_rounds:
            raise InvalidFormat()
        key = _kdf(passphrase or b"", salt, rounds, spec.key_len + spec.iv_len)

    if r.remaining < spec.auth_len or r.remaining - spec.auth_len < encrypted_len:
        raise InvalidFormat()
    ciphertext = r.raw(encrypted_len)
    tag = r.raw(spec.auth_len)
    if r.remaining:
        raise InvalidFormat()
    try:
        plain = decrypt(spec, key[: spec.key_len], key[spec.key_len :], ciphertext, tag)
    except MacInvalid:
        raise WrongPassphrase() from None

    pr = Reader(plain)
    if pr.uint32() != pr.uint32():
        raise WrongPassphrase()
    private = decode_private_reader(pr)
    raw_comment = pr.string()
    if b"\0" in raw_comment:
        raise InvalidFormat()
    comment = raw_comment.decode("utf-8", "surrogateescape")
    padding = pr.rest()
    if padding != (_PAD_CYCLE * (len(padding) // 256 + 1))[: len(padding)]:
        raise InvalidFormat()
    if private.public.blob() != public.blob():
        raise InvalidFormat()
    return private, comment


def encode_openssh_private(
    key: PrivateKey,
    comment: str,
    passphrase: bytes = b"",
    cipher: str | None = DEFAULT_CIPHER,
    rounds: int | None = DEFAULT_ROUNDS,
) -> bytes:
    """The armored openssh-key-v1 file, byte for byte as sshkey_private_to_blob2 lays it out.

    No passphrase means cipher and KDF "none"; a passphrase with cipher "none" gives
    KDF bcrypt and no encryption, as ``ssh-keygen -Z none`` does.
    """
    if rounds is None or rounds <= 0:
        rounds = DEFAULT_ROUNDS
    if not passphrase:
        cipher_name, kdf_name = "none", "none"
    else:
        cipher_name, kdf_name = cipher or DEFAULT_CIPHER, KDF_NAME
    spec = cipher_by_name(cipher_name)
    if spec is None:
        raise InvalidArgument()
    kdf = Writer()
    key_iv = bytes(spec.key_len + spec.iv_len)
    if kdf_name == KDF_NAME:
        if rounds > 0xFFFFFFFF:
            raise InvalidArgument()
        salt = secrets.token_bytes(SALT_LEN)
        key_iv = _kdf(passphrase, salt, rounds, spec.key_len + spec.iv_len)
        kdf.string(salt).uint32(rounds)

    check = secrets.randbits(32)
    plain = Writer().uint32(check).uint32(check)
    plain.string(key.key_type)
    key.encode_private_fields(plain)
    plain.string(comment.encode("utf-8", "surrogateescape"))
    pad = (-len(plain)) % spec.block_size
    plain.raw(bytes(range(1, pad + 1)))
    body = plain.getvalue()
    sealed = encrypt(spec, key_iv[: spec.key_len], key_iv[spec.key_len :], body)

    out = Writer().raw(AUTH_MAGIC)
    out.string(cipher_name).string(kdf_name).string(kdf.getvalue())
    out.uint32(1).string(key.public.blob())
    out.uint32(len(body)).raw(sealed)
    return _armor(out.getvalue())
