"""OpenSSH certificates (PROTOCOL.certkeys): the parsed form, its signature, and signing.

Parsing follows OpenSSH's cert_parse() field by field and gives its error words (a bad
field is "invalid format", a type other than user/host "unknown/unsupported certificate
type", a bad CA key "invalid certificate signing key"). The registry decoder does not
check the CA signature, so listing many keys stays cheap; ``decode_key_checked`` does,
as OpenSSH's sshkey_fromb() does. Validity text lives in keytools.cert_validity, options
in keytools.cert_options, the acceptance check in keytools.cert_check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from keytools.errors import (
    CertificateInvalid,
    CertificateInvalidSignKey,
    CertificateUnknownType,
    InvalidArgument,
    InvalidFormat,
    KeyTypeUnknown,
    SignatureAlgorithmUnsupported,
    SignatureInvalid,
    SshError,
)
from keytools.public.base import PublicKey, decode_body, register
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from keytools.private import PrivateKey

USER_CERT = 1
HOST_CERT = 2
#: valid_before meaning "never expires"
FOREVER = 0xFFFF_FFFF_FFFF_FFFF
#: OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS
MAX_PRINCIPALS = 256
NONCE_LEN = 32

#: certificate wire name -> plain key wire name
CERT_TYPES = {
    "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
    "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
    "ssh-dss-cert-v01@openssh.com": "ssh-dss",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519-cert-v01@openssh.com": "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": "sk-ecdsa-sha2-nistp256@openssh.com",
}
PLAIN_TO_CERT = {plain: cert for cert, plain in CERT_TYPES.items()}

#: the signature algorithm a CA key signs with when none is asked for (as ssh-keygen)
DEFAULT_CA_ALGORITHMS = {"ssh-rsa": "rsa-sha2-512"}

#: a signing function for keys held elsewhere (an agent): (data, algorithm) -> signature
Signer = Callable[[bytes, "str | None"], bytes]


def _option_name(raw: bytes) -> str:
    # OpenSSH only checks the framing here; a name with a NUL is refused where it is used.
    return raw.decode("utf-8", "surrogateescape")


def parse_options(blob: bytes) -> tuple[tuple[str, bytes], ...]:
    """Critical options or extensions: (name, data) pairs in wire order."""
    r = Reader(blob)
    out: list[tuple[str, bytes]] = []
    try:
        while r.remaining:
            out.append((_option_name(r.string()), r.string()))
    except SshError:
        raise InvalidFormat() from None
    return tuple(out)


def encode_options(options: Sequence[tuple[str, bytes]]) -> bytes:
    w = Writer()
    for name, data in options:
        w.string(name).string(data)
    return w.getvalue()


@dataclass(frozen=True)
class Certificate(PublicKey):
    cert_type_name: str
    nonce: bytes
    key: PublicKey
    serial: int
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: tuple[tuple[str, bytes], ...]
    extensions: tuple[tuple[str, bytes], ...]
    reserved: bytes
    signature_key: PublicKey
    signature: bytes
    #: the signed part of the blob (everything before the signature string)
    signed_data: bytes = field(repr=False, compare=False, default=b"")
    label: ClassVar[str] = "CERT"
    #: the decoded blob is kept: the CA signed exactly those bytes
    canonical_wire: ClassVar[bool] = True

    @property
    def key_type(self) -> str:
        return self.cert_type_name

    @property
    def bits(self) -> int:
        return self.key.bits

    @property
    def type_label(self) -> str:
        return f"{self.key.type_label}-CERT"

    @property
    def plain(self) -> PublicKey:
        return self.key

    @property
    def is_certificate(self) -> bool:
        return True

    @property
    def is_host(self) -> bool:
        return self.cert_type == HOST_CERT

    @property
    def kind(self) -> str:
        """sshkey_cert_type(): ``user``, ``host`` or ``unknown``."""
        return {USER_CERT: "user", HOST_CERT: "host"}.get(self.cert_type, "unknown")

    @property
    def signature_type(self) -> str:
        """The CA's signature algorithm (``ssh-ed25519``, ``rsa-sha2-512``, ...)."""
        try:
            return Reader(self.signature).ascii()
        except SshError:
            raise InvalidFormat() from None

    def _encode_signed_fields(self, w: Writer) -> None:
        """The fields between the type name and the CA signature."""
        w.string(self.nonce)
        self.key.encode_body(w)
        w.uint64(self.serial).uint32(self.cert_type).string(self.key_id)
        w.string(_encode_principals(self.principals))
        w.uint64(self.valid_after).uint64(self.valid_before)
        w.string(encode_options(self.critical_options))
        w.string(encode_options(self.extensions))
        w.string(self.reserved).string(self.signature_key.blob())

    def to_be_signed(self) -> bytes:
        """The bytes the CA signs: the whole blob up to the signature."""
        w = Writer().string(self.key_type)
        self._encode_signed_fields(w)
        return w.getvalue()

    def encode_body(self, w: Writer) -> None:
        self._encode_signed_fields(w)
        w.string(self.signature)

    def verify(self, data: bytes, signature: bytes) -> None:
        self.key.verify(data, signature)

    def check_signature(self) -> None:
        """Check the CA's signature over the certificate; raise SignatureInvalid if wrong."""
        self.signature_key.verify(self.signed_data or self.to_be_signed(), self.signature)


def _encode_principals(principals: Sequence[str]) -> bytes:
    w = Writer()
    for p in principals:
        w.string(p)
    return w.getvalue()


def _decode(key_type: str, r: Reader) -> PublicKey:
    """cert_parse(): the body after the type name, with OpenSSH's error for each step."""
    start = r.position
    try:
        nonce = r.string()
    except SshError:
        raise InvalidFormat() from None
    key = decode_body(CERT_TYPES[key_type], r)
    try:
        serial, cert_type, key_id = r.uint64(), r.uint32(), r.cstring()
        principals_blob = r.string()
        valid_after, valid_before = r.uint64(), r.uint64()
        critical_blob, extensions_blob, reserved = r.string(), r.string(), r.string()
        ca_blob = r.string()
        signed_end = r.position
        signature = r.string()
    except SshError:
        raise InvalidFormat() from None
    if cert_type not in (USER_CERT, HOST_CERT):
        raise CertificateUnknownType()
    pr = Reader(principals_blob)
    principals: list[str] = []
    try:
        while pr.remaining:
            if len(principals) >= MAX_PRINCIPALS:
                raise InvalidFormat()
            principals.append(pr.cstring())
    except SshError:
        raise InvalidFormat() from None
    critical = parse_options(critical_blob)
    extensions = parse_options(extensions_blob)
    from keytools.public import decode_public_blob

    try:
        ca = decode_public_blob(ca_blob)
    except SshError:
        raise CertificateInvalidSignKey() from None
    if ca.is_certificate:
        raise CertificateInvalidSignKey()
    signed = Writer().string(key_type).getvalue() + r.slice(start, signed_end)
    return Certificate(
        key_type, nonce, key, serial, cert_type, key_id, tuple(principals), valid_after,
        valid_before, critical, extensions, reserved, ca, signature, signed,
    )


register(tuple(CERT_TYPES), _decode)


def verify_certificate_signature(cert: Certificate) -> None:
    try:
        cert.check_signature()
    except SignatureInvalid:
        raise CertificateInvalid() from None


def decode_key_checked(blob: bytes) -> PublicKey:
    """OpenSSH's sshkey_fromb(): a key or certificate blob, the CA signature checked
    before trailing bytes (so the errors come in OpenSSH's order)."""
    import keytools.public  # noqa: F401  (registers every key type)

    r = Reader(blob)
    try:
        name = r.cstring()
    except SshError:
        raise InvalidFormat() from None
    key = decode_body(name, r)
    if isinstance(key, Certificate):
        key.check_signature()
    if r.remaining:
        raise InvalidFormat()
    key.keep_blob(blob)
    return key


# -- signing -------------------------------------------------------------------------------


def certify(
    key: PublicKey,
    ca: PrivateKey | PublicKey,
    *,
    key_id: str,
    cert_type: int = USER_CERT,
    principals: Sequence[str] = (),
    valid_after: int = 0,
    valid_before: int = FOREVER,
    critical_options: Sequence[tuple[str, bytes]] = (),
    extensions: Sequence[tuple[str, bytes]] = (),
    serial: int = 0,
    algorithm: str | None = None,
    signer: Signer | None = None,
    nonce: bytes | None = None,
) -> Certificate:
    """Sign ``key`` with ``ca`` (sshkey_certify): a new certificate with a random nonce.

    ``ca`` is a private key, or the CA's public key when ``signer`` (e.g. an agent)
    makes the signature. ``algorithm`` picks the CA signature (rsa-sha2-512 for an RSA
    CA by default); a signature of any other algorithm is refused as OpenSSH refuses it
    ("signature algorithm not supported"). Options must already be sorted and encoded
    (see keytools.cert_options.build_options).
    """
    if key.is_certificate:
        raise InvalidArgument()
    cert_name = PLAIN_TO_CERT.get(key.key_type)
    if cert_name is None:
        raise KeyTypeUnknown()
    ca_public = ca if isinstance(ca, PublicKey) else ca.public
    if ca_public.is_certificate or ca_public.key_type not in PLAIN_TO_CERT:
        raise CertificateInvalidSignKey()
    if cert_type not in (USER_CERT, HOST_CERT) or len(principals) > MAX_PRINCIPALS:
        raise InvalidArgument()
    for value in (serial, valid_after, valid_before):
        if not 0 <= value <= FOREVER:
            raise InvalidArgument()
    if algorithm is None:
        algorithm = DEFAULT_CA_ALGORITHMS.get(ca_public.key_type)
    w = Writer().string(cert_name).string(nonce if nonce is not None else os.urandom(NONCE_LEN))
    key.encode_body(w)
    w.uint64(serial).uint32(cert_type).string(key_id)
    w.string(_encode_principals(principals))
    w.uint64(valid_after).uint64(valid_before)
    w.string(encode_options(critical_options)).string(encode_options(extensions))
    w.string(b"").string(ca_public.blob())
    data = w.getvalue()
    if signer is not None:
        signature = signer(data, algorithm)
    elif isinstance(ca, PublicKey):
        raise InvalidArgument()
    else:
        signature = ca.sign(data, algorithm)
    try:
        used = Reader(signature).ascii()
    except SshError:
        raise SignatureInvalid() from None
    if algorithm is not None and used != algorithm:
        raise SignatureAlgorithmUnsupported()
    cert = decode_key_checked(w.string(signature).getvalue())
    assert isinstance(cert, Certificate)
    return cert
