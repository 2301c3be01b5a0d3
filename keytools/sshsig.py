"""SSH signatures (PROTOCOL.sshsig): the armoured blob, signing and verifying.

This is OpenSSH's sshsig.c without the allowed_signers part (see keytools.allowed_signers).
Errors carry the line OpenSSH logs for the same failure (``Couldn't verify signature:
namespace does not match``, ...) and their class is the matching ssherr code, so a CLI
prints ``str(exc)`` and, where ssh-keygen adds a second line, ``exc.default_message``.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from keytools.errors import (
    InvalidFormat,
    MessageIncomplete,
    SignatureAlgorithmUnsupported,
    SignatureInvalid,
    SshError,
)
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from keytools.public import PublicKey

MAGIC = b"SSHSIG"
SIG_VERSION = 1
BEGIN_SIGNATURE = "-----BEGIN SSH SIGNATURE-----"
END_SIGNATURE = "-----END SSH SIGNATURE-----"
HASH_ALGORITHMS = ("sha256", "sha512")
DEFAULT_HASH = "sha512"
#: RSA keys sign with SHA-2 only; the hash follows the message hash (OpenSSH 10).
RSA_SIGN_ALGORITHMS = {"sha256": "rsa-sha2-256", "sha512": "rsa-sha2-512"}
RSA_ALLOWED = ("rsa-sha2-512", "rsa-sha2-256")
#: Base64 lines in the armour are this long (sshbuf_dtob64 with line breaks).
ARMOUR_LINE = 70
_READ_CHUNK = 64 * 1024
#: b64_pton skips what C's isspace() calls space.
_B64_SPACE = b" \t\n\v\f\r"

#: signs ``data`` with an optional algorithm name and returns an SSH signature blob
Signer = Callable[[bytes, "str | None"], bytes]


@dataclass(frozen=True)
class SshSignature:
    """A parsed SSHSIG blob: the signer's key (maybe a certificate) and what it signed."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes
    reserved: bytes = b""
    version: int = SIG_VERSION

    def blob(self) -> bytes:
        w = Writer().raw(MAGIC).uint32(self.version).string(self.public_key.blob())
        w.string(self.namespace).string(self.reserved).string(self.hash_algorithm)
        return w.string(self.signature).getvalue()

    def armored(self) -> str:
        return armor(self.blob())


# -- armour -------------------------------------------------------------------------------


def armor(blob: bytes) -> str:
    """The ``-----BEGIN SSH SIGNATURE-----`` text, base64 wrapped at 70 columns."""
    b64 = binascii.b2a_base64(blob, newline=False).decode("ascii")
    lines = [b64[i : i + ARMOUR_LINE] for i in range(0, len(b64), ARMOUR_LINE)]
    return "\n".join([BEGIN_SIGNATURE, *lines, END_SIGNATURE]) + "\n"


def b64_pton(text: bytes) -> bytes:
    """OpenSSH's b64_pton: whitespace anywhere, exact padding, no stray bits at the end."""
    compact = text.translate(None, _B64_SPACE)
    try:
        raw = binascii.a2b_base64(compact, strict_mode=True) if compact else b""
    except (binascii.Error, ValueError):
        raise InvalidFormat() from None
    if binascii.b2a_base64(raw, newline=False) != compact:
        raise InvalidFormat()
    return raw


def dearmor(data: bytes | str) -> bytes:
    """The blob inside an armoured signature (sshsig_dearmor).

    The header must open the data, followed by LF or CRLF; the body runs to the first
    ``\\n-----END SSH SIGNATURE-----``; anything after the footer is ignored.
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    head = BEGIN_SIGNATURE.encode("ascii")
    if not raw.startswith(head):
        cls = MessageIncomplete if len(raw) < len(head) else InvalidFormat
        raise cls("Couldn't parse signature: missing header")
    rest = raw[len(head) :]
    if rest.startswith(b"\r\n"):
        rest = rest[2:]
    elif rest.startswith(b"\n"):
        rest = rest[1:]
    else:
        raise InvalidFormat("sshsig_dearmor: no header eol")
    foot = b"\n" + END_SIGNATURE.encode("ascii")
    end = rest.find(foot)
    if end < 0:
        cls = MessageIncomplete if len(rest) < len(foot) else InvalidFormat
        raise cls("Couldn't parse signature: missing footer")
    body = rest[:end]
    try:
        if b"\0" in body:
            raise InvalidFormat()
        return b64_pton(body)
    except InvalidFormat:
        raise InvalidFormat("sshsig_dearmor: decode base64: invalid format") from None


# -- the blob -----------------------------------------------------------------------------


def _preamble(r: Reader) -> int:
    """Check the magic and version (sshsig_parse_preamble); returns the version."""
    try:
        magic = r.raw(len(MAGIC))
        version = r.uint32()
    except MessageIncomplete:
        raise MessageIncomplete("Couldn't verify signature: invalid format") from None
    if magic != MAGIC:
        raise InvalidFormat("Couldn't verify signature: invalid format")
    if version > SIG_VERSION:
        raise InvalidFormat(
            f"Signature version {version} is larger than supported version {SIG_VERSION}"
        )
    return version


def _parse_failure(where: str, exc: SshError) -> SshError:
    """Re-word a field error as OpenSSH's ``func: parse signature object: err``."""
    return type(exc)(f"{where}: parse signature object: {exc}")


def peek_hash_algorithm(blob: bytes) -> str:
    """The hash algorithm named in a blob, without decoding its key (sshsig_peek_hashalg)."""
    r = Reader(blob)
    _preamble(r)
    try:
        r.string()
        r.string()
        r.string()
        hashalg = r.text()
        r.string()
    except SshError as exc:
        raise _parse_failure("sshsig_peek_hashalg", exc) from None
    return hashalg


def _decode_key(blob: bytes) -> PublicKey:
    """The signer's key; a certificate must carry a valid CA signature (cert_parse)."""
    from keytools.certificate import Certificate
    from keytools.public import decode_public_blob

    key = decode_public_blob(blob)
    if isinstance(key, Certificate):
        key.check_signature()
    return key


def parse_signature(blob: bytes, where: str = "sshsig_wrap_verify") -> SshSignature:
    """Decode a whole SSHSIG blob; trailing bytes are refused as OpenSSH does."""
    r = Reader(blob)
    version = _preamble(r)
    try:
        key = _decode_key(r.string())
        namespace = r.text()
        reserved = r.string()
        hashalg = r.text()
        signature = r.string()
    except SshError as exc:
        raise _parse_failure(where, exc) from None
    if r.remaining:
        raise InvalidFormat("Signature contains trailing data")
    return SshSignature(key, namespace, hashalg, signature, reserved, version)


def get_public_key(blob: bytes) -> PublicKey:
    """The signer's key alone (sshsig_get_pubkey): the rest of the blob is not read."""
    r = Reader(blob)
    _preamble(r)
    return _decode_key(r.string())


# -- hashing and the signed message -------------------------------------------------------


def check_hash_algorithm(name: str) -> None:
    if name not in HASH_ALGORITHMS:
        raise SignatureAlgorithmUnsupported(
            f'sshsig_check_hashalg: unsupported hash algorithm "{name[:100]}"'
        )


def hash_message(message: bytes | BinaryIO, hash_algorithm: str) -> bytes:
    """H(message); a stream is read in chunks so big files cost no memory."""
    check_hash_algorithm(hash_algorithm)
    h = hashlib.new(hash_algorithm)
    if isinstance(message, bytes | bytearray | memoryview):
        h.update(message)
    else:
        while chunk := message.read(_READ_CHUNK):
            h.update(chunk)
    return h.digest()


def signed_data(namespace: str, hash_algorithm: str, digest: bytes) -> bytes:
    """What the key actually signs (PROTOCOL.sshsig section 3)."""
    w = Writer().raw(MAGIC).string(namespace).string(b"").string(hash_algorithm)
    return w.string(digest).getvalue()


# -- signing ------------------------------------------------------------------------------


def sign_digest(
    public: PublicKey,
    signer: Signer,
    digest: bytes,
    namespace: str,
    hash_algorithm: str = DEFAULT_HASH,
) -> SshSignature:
    """Sign an already-hashed message with any signer (a private key, an agent...)."""
    if not namespace:
        raise InvalidFormat("Couldn't sign message: empty namespace")
    check_hash_algorithm(hash_algorithm)
    algorithm = None
    if public.plain.key_type == "ssh-rsa":
        algorithm = RSA_SIGN_ALGORITHMS[hash_algorithm]
    sig = signer(signed_data(namespace, hash_algorithm, digest), algorithm)
    return SshSignature(public, namespace, hash_algorithm, sig)


def sign(
    key: PrivateKey,
    message: bytes | BinaryIO,
    namespace: str,
    hash_algorithm: str = DEFAULT_HASH,
    public: PublicKey | None = None,
) -> SshSignature:
    """Sign ``message`` with a private key.

    ``public`` is what the signature names as its signer: the key's certificate if it
    has one (it must certify this very key), else the plain public key.
    """
    if public is None:
        public = key.public
    elif not public.plain.same_key(key.public):
        raise InvalidFormat("public key does not match the private key")
    digest = hash_message(message, hash_algorithm)
    return sign_digest(public, key.sign, digest, namespace, hash_algorithm)


# -- verifying ----------------------------------------------------------------------------


def _check_rsa_algorithm(signature: bytes) -> None:
    try:
        sigtype = Reader(signature).ascii()
    except SshError as exc:
        raise type(exc)(
            f"Couldn't verify signature: unable to get signature type: {exc}"
        ) from None
    if sigtype not in RSA_ALLOWED:
        raise SignatureAlgorithmUnsupported(
            f"Couldn't verify signature: unsupported RSA signature algorithm {sigtype}"
        )


def verify_digest(blob: bytes, digest: bytes, hash_algorithm: str, namespace: str) -> SshSignature:
    """sshsig_wrap_verify: check a blob against H(message) made with ``hash_algorithm``."""
    sig = parse_signature(blob)
    if sig.namespace != namespace:
        raise SignatureInvalid("Couldn't verify signature: namespace does not match")
    if sig.hash_algorithm != hash_algorithm:
        raise SignatureInvalid("Couldn't verify signature: hash algorithm mismatch")
    if sig.public_key.plain.key_type == "ssh-rsa":
        _check_rsa_algorithm(sig.signature)
    try:
        sig.public_key.verify(signed_data(namespace, hash_algorithm, digest), sig.signature)
    except SshError as exc:
        raise type(exc)(f"Signature verification failed: {exc}") from None
    return sig


def verify(blob: bytes, message: bytes | BinaryIO, namespace: str) -> SshSignature:
    """Check that ``blob`` signs ``message`` in ``namespace``; returns the parsed signature.

    Raises an SshError subclass (SignatureInvalid for a wrong signature, namespace or
    data) worded as OpenSSH logs it. Who signed is not judged here: that is the
    allowed_signers check.
    """
    hashalg = peek_hash_algorithm(blob)
    try:
        digest = hash_message(message, hashalg)
    except SignatureAlgorithmUnsupported as exc:
        raise SignatureAlgorithmUnsupported(
            f"{exc}\nsshsig_verify_fd: hash_file: {exc.default_message}"
        ) from None
    return verify_digest(blob, digest, hashalg, namespace)
