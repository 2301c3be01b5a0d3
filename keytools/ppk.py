"""PuTTY ``.ppk`` private key files, versions 2 and 3, read and written as PuTTY does.

The layout is the PuTTY manual's appendix "PPK file format", and the details follow
PuTTY's sshpubk.c (ppk_load_s / ppk_save_sb) so files go both ways with ``puttygen``:
``Key: value`` header lines (LF, CR+LF or CR), base64 blobs of at most 64 characters a
line, a private blob that PuTTY pads to the AES block with the start of SHA-1(blob),
and a MAC over the algorithm, encryption, comment, public blob and plaintext private
blob. Version 3 derives the AES-256-CBC key, IV and HMAC-SHA-256 key from Argon2
(``Argon2-*`` headers); version 2 uses SHA-1 (zero IV, HMAC-SHA-1 keyed with
SHA-1("putty-private-key-file-mac-key" + passphrase)).

Every primitive comes from cryptography, imported inside the functions. Malformed input
raises InvalidFormat (or one of its subclasses), an unknown key type KeyTypeUnknown, an
unknown cipher or Argon2 flavour UnknownCipher, a bad MAC WrongPassphrase (encrypted
file) or MacInvalid (unencrypted file, PuTTY's "MAC failed").
"""

from __future__ import annotations

import binascii
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import (
    InvalidArgument,
    InvalidFormat,
    KeyTypeMismatch,
    KeyTypeUnknown,
    MacInvalid,
    MessageIncomplete,
    UnknownCipher,
    WrongPassphrase,
)
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from keytools.public import PublicKey

MAGIC = "PuTTY-User-Key-File-"
VERSIONS = (2, 3)
DEFAULT_VERSION = 3
#: PuTTY's MAX_KEY_BLOB_SIZE (AGENT_MAX_MSGLEN) and the limits derived from it.
MAX_BLOB_SIZE = 262144
MAX_BLOB_LINES = MAX_BLOB_SIZE // 48
MAX_FILE_SIZE = MAX_BLOB_SIZE * 4 // 3 + 4096
LINE_CHARS = 64
CIPHER = "aes256-cbc"
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "ssh-dss",
)
KDF_FLAVOURS = ("Argon2id", "Argon2i", "Argon2d")
#: Refuse files asking Argon2 for more memory than this (KiB) unless told otherwise.
DEFAULT_MAX_MEMORY = 1 << 20
_V2_MAC_PREFIX = b"putty-private-key-file-mac-key"
_AES_KEY, _AES_IV, _MAC_KEY = 32, 16, 32
_HEADER_MAX = 39  # read_header's buffer
_EOL = re.compile(rb"[\r\n]")
_DIGITS = re.compile(rb"[0-9]{1,10}")
_HEX = re.compile(rb"(?:[0-9A-Fa-f]{2})*")


@dataclass(frozen=True)
class Argon2Params:
    """Version 3 passphrase hashing: PuTTY's defaults, with a fixed pass count.

    puttygen tunes the passes to take about 100 ms; 21 passes over 8 MiB is what it picks
    on a current x86-64 core. ``salt`` None means 16 random bytes, as PuTTY makes.
    """

    flavour: str = "Argon2id"
    memory: int = 8192
    passes: int = 21
    parallelism: int = 1
    salt: bytes | None = None


@dataclass(frozen=True)
class PpkFile:
    """A parsed .ppk file before decryption (the public half needs no passphrase)."""

    version: int
    algorithm: str
    encryption: str
    comment: bytes
    public_blob: bytes
    kdf: Argon2Params | None
    private_data: bytes
    mac: bytes

    @property
    def encrypted(self) -> bool:
        return self.encryption != "none"


def is_ppk(data: str | bytes) -> bool:
    """Does ``data`` start like a PuTTY key file?"""
    if isinstance(data, str):
        return data.startswith(MAGIC)
    return data.startswith(MAGIC.encode())


# ---------------------------------------------------------------- reading


class _Lines:
    """PuTTY's read_header/read_body over the file's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def header(self, expected: str | None = None) -> str:
        """``Name: `` (at most 39 characters, no line end before the colon)."""
        data, pos = self.data, self.pos
        colon = data.find(b":", pos, pos + _HEADER_MAX + 1)
        name = data[pos:colon] if colon >= 0 else b""
        if colon < 0 or b"\r" in name or b"\n" in name or data[colon + 1 : colon + 2] != b" ":
            raise InvalidFormat()
        self.pos = colon + 2
        text = name.decode("latin-1")
        if expected is not None and text != expected:
            raise InvalidFormat()
        return text

    def body(self) -> bytes:
        """The rest of the line (one CR, LF or CR+LF, or the end of the file, ends it).

        PuTTY keeps the value as a C string, so a NUL cuts it short.
        """
        data, pos = self.data, self.pos
        m = _EOL.search(data, pos)
        if m is None:
            value, self.pos = data[pos:], len(data)
        else:
            value, self.pos = data[pos : m.start()], m.end()
            if self.pos < len(data) and data[self.pos] in b"\r\n":
                self.pos += 1
        return value.split(b"\0", 1)[0]

    def field(self, name: str) -> bytes:
        self.header(name)
        return self.body()

    def number(self, name: str, limit: int) -> int:
        text = self.field(name)
        if not _DIGITS.fullmatch(text) or int(text) > limit:
            raise InvalidFormat()
        return int(text)

    def blob(self, name: str) -> bytes:
        """``Name: N`` and N lines of base64, each a multiple of 4 and at most 64 characters."""
        count = self.number(name, MAX_BLOB_LINES - 1)
        parts = []
        for _ in range(count):
            line = self.body()
            if len(line) % 4 or len(line) > LINE_CHARS:
                raise InvalidFormat()
            try:
                parts.append(binascii.a2b_base64(line, strict_mode=True))
            except (binascii.Error, ValueError):
                raise InvalidFormat() from None
        return b"".join(parts)


def parse_ppk(data: str | bytes) -> PpkFile:
    """The fields of a .ppk file, checked as ppk_load_s checks them before decrypting."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > MAX_FILE_SIZE:
        raise InvalidFormat()
    lines = _Lines(data)
    first = lines.header()
    if not first.startswith(MAGIC) or first[len(MAGIC) :] not in ("2", "3"):
        raise InvalidFormat()  # not PPK, version 1 (never released) or a future version
    version = int(first[len(MAGIC) :])
    algorithm = lines.body().decode("latin-1")
    if algorithm not in KEY_TYPES:
        raise KeyTypeUnknown()
    encryption = lines.field("Encryption").decode("latin-1")
    if encryption not in ("none", CIPHER):
        raise UnknownCipher()
    comment = lines.field("Comment")
    public_blob = lines.blob("Public-Lines")
    kdf = None
    if version == 3 and encryption != "none":
        flavour = lines.field("Key-Derivation").decode("latin-1")
        if flavour not in KDF_FLAVOURS:
            raise UnknownCipher()
        memory = lines.number("Argon2-Memory", 0xFFFFFFFF)
        passes = lines.number("Argon2-Passes", 0xFFFFFFFF)
        parallelism = lines.number("Argon2-Parallelism", 0xFFFFFFFF)
        salt = lines.field("Argon2-Salt")
        if not _HEX.fullmatch(salt):
            raise InvalidFormat()
        kdf = Argon2Params(flavour, memory, passes, parallelism, bytes.fromhex(salt.decode()))
    private_data = lines.blob("Private-Lines")
    mac = lines.field("Private-MAC")  # anything after it is ignored, as PuTTY does
    return PpkFile(version, algorithm, encryption, comment, public_blob, kdf,
                   private_data, mac)


def ppk_public(data: str | bytes) -> tuple[PublicKey, str]:
    """The public key and comment, which a .ppk file keeps unencrypted."""
    ppk = parse_ppk(data)
    return _public_key(ppk), ppk.comment.decode("utf-8", "surrogateescape")


def ppk_encrypted(data: str | bytes) -> bool:
    """Whether the file needs a passphrase."""
    return parse_ppk(data).encrypted


def decode_ppk(
    data: str | bytes,
    passphrase: str | bytes | None = None,
    *,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    max_passes: int | None = None,
) -> tuple[PrivateKey, str]:
    """The key and comment in a .ppk file (version 2 or 3).

    An encrypted file without a passphrase raises WrongPassphrase before any hashing (as
    the openssh-key-v1 reader does), so a caller can ask for one. ``max_memory`` (KiB)
    and ``max_passes`` refuse Argon2 costs above them (InvalidFormat); PuTTY has no limit.
    """
    ppk = parse_ppk(data)
    public = _public_key(ppk)
    secret = _secret(passphrase)
    if ppk.encrypted and not secret:
        raise WrongPassphrase()
    if ppk.encrypted and len(ppk.private_data) % 16:
        raise InvalidFormat()
    if ppk.kdf is not None and (
        (max_memory is not None and ppk.kdf.memory > max_memory)
        or (max_passes is not None and ppk.kdf.passes > max_passes)
    ):
        raise InvalidFormat()
    key, iv, mac_key = _derive(ppk.version, ppk.encrypted, secret or b"", ppk.kdf)
    plain = ppk.private_data
    if ppk.encrypted:
        plain = _aes(key, iv, plain, decrypt=True)
    want = _mac(ppk.version, mac_key, ppk.algorithm, ppk.encryption, ppk.comment,
                ppk.public_blob, plain)
    if not hmac.compare_digest(ppk.mac, want.hex().encode()):
        raise WrongPassphrase() if ppk.encrypted else MacInvalid()
    private = _private_key(public, plain)
    return private, ppk.comment.decode("utf-8", "surrogateescape")


def _secret(passphrase: str | bytes | None) -> bytes | None:
    if isinstance(passphrase, str):
        return passphrase.encode("utf-8", "surrogateescape")
    return passphrase


def _public_key(ppk: PpkFile) -> PublicKey:
    from keytools.public import decode_public_blob

    try:
        public = decode_public_blob(ppk.public_blob)
    except MessageIncomplete:
        raise InvalidFormat() from None
    if public.key_type != ppk.algorithm:
        raise KeyTypeMismatch()
    return public


def _private_key(public: PublicKey, plain: bytes) -> PrivateKey:
    """Rebuild the openssh private encoding from the public key and PuTTY's private fields.

    The private section is read from its start; what follows (the padding) is ignored.
    The key-type decoders then check that the halves belong together.
    """
    from keytools.private import decode_private_blob
    from keytools.public import DsaPublic, EcdsaPublic, Ed25519Public, RsaPublic

    r = Reader(plain)
    w = Writer().string(public.key_type)
    try:
        if isinstance(public, RsaPublic):
            d, p, q, iqmp = r.mpint(), r.mpint(), r.mpint(), r.mpint()
            w.mpint(public.n).mpint(public.e).mpint(d).mpint(iqmp).mpint(p).mpint(q)
        elif isinstance(public, DsaPublic):
            x = r.mpint()
            w.mpint(public.p).mpint(public.q).mpint(public.g).mpint(public.y).mpint(x)
        elif isinstance(public, EcdsaPublic):
            w.string(public.curve).string(public.point).mpint(r.mpint())
        elif isinstance(public, Ed25519Public):
            # A little-endian integer; PuTTY before 0.75 dropped its high zero bytes.
            value = int.from_bytes(r.string(), "little")
            if value >> 256:
                raise InvalidFormat()
            w.string(public.key).string(value.to_bytes(32, "little") + public.key)
        else:  # pragma: no cover - parse_ppk admits only the types above
            raise KeyTypeUnknown()
        return decode_private_blob(w.getvalue())
    except MessageIncomplete:
        raise InvalidFormat() from None


# ---------------------------------------------------------------- keys and MAC


def _derive(
    version: int, encrypted: bool, passphrase: bytes, kdf: Argon2Params | None
) -> tuple[bytes, bytes, bytes]:
    """(AES key, IV, MAC key) as ssh2_ppk_derive_keys makes them."""
    if version == 2:
        mac_key = _sha1(_V2_MAC_PREFIX, passphrase if encrypted else b"")
        if not encrypted:
            return b"", b"", mac_key
        key = _sha1(b"\0\0\0\0", passphrase) + _sha1(b"\0\0\0\1", passphrase)
        return key[:_AES_KEY], bytes(_AES_IV), mac_key
    if not encrypted or kdf is None:
        return b"", b"", b""
    out = _argon2(kdf, passphrase, _AES_KEY + _AES_IV + _MAC_KEY)
    return out[:_AES_KEY], out[_AES_KEY : _AES_KEY + _AES_IV], out[_AES_KEY + _AES_IV :]


def _argon2(params: Argon2Params, passphrase: bytes, length: int) -> bytes:
    """Argon2 with an empty secret and associated data (PPK's use of it)."""
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        from cryptography.hazmat.primitives.kdf import argon2
    except ImportError:  # pragma: no cover - cryptography older than 44
        raise UnknownCipher() from None
    kind = getattr(argon2, params.flavour, None)
    if kind is None:  # pragma: no cover - Argon2d/Argon2i arrived after Argon2id
        raise UnknownCipher()
    try:
        out: bytes = kind(
            salt=params.salt or b"",
            length=length,
            iterations=params.passes,
            lanes=params.parallelism,
            memory_cost=params.memory,
        ).derive(passphrase)
    except UnsupportedAlgorithm:  # pragma: no cover - an OpenSSL without Argon2
        raise UnknownCipher() from None
    except (ValueError, OverflowError, MemoryError):
        raise InvalidFormat() from None
    return out


def _sha1(*parts: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SHA1())
    for part in parts:
        h.update(part)
    return h.finalize()


def _mac(version: int, key: bytes, algorithm: str, encryption: str, comment: bytes,
         public_blob: bytes, private_plain: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    w = Writer().string(algorithm).string(encryption).string(comment)
    w.string(public_blob).string(private_plain)
    h = crypto_hmac.HMAC(key, hashes.SHA1() if version == 2 else hashes.SHA256())
    h.update(w.getvalue())
    return h.finalize()


def _aes(key: bytes, iv: bytes, data: bytes, *, decrypt: bool) -> bytes:
    from keytools.private import ciphers

    spec = ciphers.get_cipher(CIPHER)
    if decrypt:
        return ciphers.decrypt(spec, key, iv, data)
    return ciphers.encrypt(spec, key, iv, data)


# ---------------------------------------------------------------- writing


def _private_fields(key: PrivateKey) -> bytes:
    """PuTTY's private blob: only what the public blob does not already hold."""
    from keytools.private import DsaPrivate, EcdsaPrivate, Ed25519Private, RsaPrivate

    w = Writer()
    if isinstance(key, RsaPrivate):
        w.mpint(key.d).mpint(key.p).mpint(key.q).mpint(key.iqmp)
    elif isinstance(key, DsaPrivate):
        w.mpint(key.x)
    elif isinstance(key, EcdsaPrivate):
        w.mpint(key.d)
    elif isinstance(key, Ed25519Private):
        w.string(key.seed)  # the seed is the little-endian integer PuTTY stores
    else:
        raise KeyTypeUnknown()
    return w.getvalue()


def _base64_lines(blob: bytes) -> tuple[int, str]:
    text = binascii.b2a_base64(blob, newline=False).decode("ascii")
    lines = [text[i : i + LINE_CHARS] for i in range(0, len(text), LINE_CHARS)]
    return len(lines), "".join(f"{line}\n" for line in lines)


def encode_ppk(
    key: PrivateKey,
    comment: str,
    passphrase: str | bytes = b"",
    version: int = DEFAULT_VERSION,
    kdf: Argon2Params | None = None,
) -> str:
    """The .ppk file for ``key``, laid out byte for byte as puttygen writes it.

    No passphrase means ``Encryption: none``. ``kdf`` sets version 3's Argon2 parameters
    (default Argon2Params()); with an explicit salt the output is reproducible.
    """
    if version not in VERSIONS:
        raise InvalidArgument(f"unsupported PPK version {version}")
    raw_comment = comment.encode("utf-8", "surrogateescape")
    if any(c in raw_comment for c in b"\r\n\0"):
        raise InvalidArgument("a PPK comment cannot hold CR, LF or NUL")
    secret = _secret(passphrase) or b""
    encrypted = bool(secret)
    encryption = CIPHER if encrypted else "none"
    private = _private_fields(key)
    if encrypted:
        pad = -len(private) % 16
        private += _sha1(private)[:pad]  # PuTTY's padding: the blob's own SHA-1
    params = None
    if version == 3 and encrypted:
        params = kdf or Argon2Params()
        if params.salt is None:
            params = Argon2Params(params.flavour, params.memory, params.passes,
                                  params.parallelism, secrets.token_bytes(16))
        if params.flavour not in KDF_FLAVOURS:
            raise InvalidArgument(f"unknown Argon2 flavour {params.flavour}")
    try:
        aes_key, iv, mac_key = _derive(version, encrypted, secret, params)
    except InvalidFormat:
        raise InvalidArgument("invalid Argon2 parameters") from None
    public_blob = key.public.blob()
    mac = _mac(version, mac_key, key.key_type, encryption, raw_comment, public_blob, private)
    if encrypted:
        private = _aes(aes_key, iv, private, decrypt=False)

    pub_count, pub_text = _base64_lines(public_blob)
    priv_count, priv_text = _base64_lines(private)
    parts = [
        f"{MAGIC}{version}: {key.key_type}\n",
        f"Encryption: {encryption}\n",
        f"Comment: {comment}\n",
        f"Public-Lines: {pub_count}\n",
        pub_text,
    ]
    if params is not None:
        parts += [
            f"Key-Derivation: {params.flavour}\n",
            f"Argon2-Memory: {params.memory}\n",
            f"Argon2-Passes: {params.passes}\n",
            f"Argon2-Parallelism: {params.parallelism}\n",
            f"Argon2-Salt: {(params.salt or b'').hex()}\n",
        ]
    parts += [f"Private-Lines: {priv_count}\n", priv_text, f"Private-MAC: {mac.hex()}\n"]
    return "".join(parts)
