"""OpenSSH certificates (PROTOCOL.certkeys): the parsed form and its signature check.

Signing, listing and validity matching build on this in later modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from keytools.errors import CertificateInvalid, InvalidFormat, SignatureInvalid
from keytools.public.base import PublicKey, decode_body, register
from keytools.wire import Reader, Writer

USER_CERT = 1
HOST_CERT = 2

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


def parse_options(blob: bytes) -> tuple[tuple[str, bytes], ...]:
    """Critical options or extensions: (name, data) pairs in wire order."""
    r = Reader(blob)
    out: list[tuple[str, bytes]] = []
    while r.remaining:
        out.append((r.ascii(), r.string()))
    return tuple(out)


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

    @property
    def key_type(self) -> str:
        return self.cert_type_name

    @property
    def bits(self) -> int:
        return self.key.bits

    @property
    def type_label(self) -> str:
        return f"{self.key.label}-CERT"

    @property
    def plain(self) -> PublicKey:
        return self.key

    @property
    def is_certificate(self) -> bool:
        return True

    def _encode_signed_fields(self, w: Writer) -> None:
        """The fields between the type name and the CA signature."""
        w.string(self.nonce)
        self.key.encode_body(w)
        w.uint64(self.serial).uint32(self.cert_type).string(self.key_id)
        pw = Writer()
        for p in self.principals:
            pw.string(p)
        w.string(pw.getvalue())
        w.uint64(self.valid_after).uint64(self.valid_before)
        w.string(_encode_options(self.critical_options))
        w.string(_encode_options(self.extensions))
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
        self.signature_key.verify(self.signed_data, self.signature)


def _encode_options(options: tuple[tuple[str, bytes], ...]) -> bytes:
    w = Writer()
    for name, data in options:
        w.string(name).string(data)
    return w.getvalue()


def _decode(key_type: str, r: Reader) -> PublicKey:
    start = r.position
    nonce = r.string()
    key = decode_body(CERT_TYPES[key_type], r)
    serial = r.uint64()
    cert_type = r.uint32()
    if cert_type not in (USER_CERT, HOST_CERT):
        raise InvalidFormat()  # OpenSSH's wording for an unknown certificate type
    key_id = r.text()
    pr = r.sub()
    principals: list[str] = []
    while pr.remaining:
        principals.append(pr.text())
    valid_after, valid_before = r.uint64(), r.uint64()
    critical = parse_options(r.string())
    extensions = parse_options(r.string())
    reserved = r.string()
    sig_key_blob = r.string()
    signed_end = r.position
    signature = r.string()
    from keytools.public import decode_public_blob

    sig_key = decode_public_blob(sig_key_blob)
    if sig_key.is_certificate:
        raise CertificateInvalid()
    if valid_after > valid_before:
        raise CertificateInvalid()
    name_bytes = Writer().string(key_type).getvalue()
    signed = name_bytes + r.slice(start, signed_end)
    return Certificate(
        key_type, nonce, key, serial, cert_type, key_id, tuple(principals), valid_after,
        valid_before, critical, extensions, reserved, sig_key, signature, signed,
    )


register(tuple(CERT_TYPES), _decode)


def verify_certificate_signature(cert: Certificate) -> None:
    try:
        cert.check_signature()
    except SignatureInvalid:
        raise CertificateInvalid() from None
