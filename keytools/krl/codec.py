"""The KRL file format (PROTOCOL.krl): read and write, with optional signatures.

Reading follows OpenSSH 9.2's ssh_krl_from_blob(): a first pass checks every signature
section over the bytes before its signature, a second pass loads the sections, and a
KRL whose signers are all revoked by itself is refused. Extension sections (newer than
9.2) are skipped unless marked critical. OpenSSH 9.4 and later refuse signed KRLs;
``allow_signatures=False`` does the same.

Writing follows ssh_krl_to_blob(): header, one certificates section per CA in order,
then explicit keys, SHA1 and SHA256 hashes, each sorted, then signature sections.
"""

from __future__ import annotations

import sys
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from keytools.errors import (
    FeatureUnsupported,
    InvalidArgument,
    InvalidFormat,
    KeyRevoked,
    KrlBadMagic,
    MessageIncomplete,
    SignatureInvalid,
    SshError,
)
from keytools.krl.model import Krl
from keytools.krl.serials import SERIAL_BITMAP, SERIAL_LIST, SERIAL_RANGE, U64_MAX
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from keytools.public import PublicKey

KRL_MAGIC = b"SSHKRL\n\0"
KRL_FORMAT_VERSION = 1

SECTION_CERTIFICATES = 1
SECTION_EXPLICIT_KEY = 2
SECTION_FINGERPRINT_SHA1 = 3
SECTION_SIGNATURE = 4
SECTION_FINGERPRINT_SHA256 = 5
SECTION_EXTENSION = 255

CERT_KEY_ID = 0x23
CERT_EXTENSION = 0x39


def _done(r: Reader) -> None:
    """OpenSSH's "section contains unparsed data" check (an invalid format)."""
    if r.remaining:
        raise InvalidFormat()


def _decode_key(blob: bytes) -> PublicKey:
    from keytools.public import decode_public_blob

    return decode_public_blob(blob)


def _extension(r: Reader) -> None:
    """An extension (section or subsection): ignored unless critical."""
    r.cstring()
    critical = r.byte()
    r.string()
    _done(r)
    if critical:
        raise FeatureUnsupported()


def _serial_list(raw: bytes) -> list[int]:
    whole = len(raw) - len(raw) % 8
    values = array("Q")
    values.frombytes(raw[:whole])
    if sys.byteorder == "little":
        values.byteswap()
    serials = values.tolist()
    if serials and min(serials) == 0:
        raise InvalidArgument()
    if whole != len(raw):
        raise MessageIncomplete()
    return serials


def _parse_certs(body: bytes, krl: Krl) -> None:
    r = Reader(body)
    ca_blob = r.string()
    r.string()  # reserved
    ca = _decode_key(ca_blob) if ca_blob else None
    bitmaps: list[tuple[int, int]] = []  # added together at the end (thousands of them)
    while r.remaining:
        kind = r.byte()
        sub = r.sub()
        if kind == SERIAL_BITMAP:  # the common one first
            offset = sub.uint64()
            bits = sub.mpint()
            if offset == 0 and bits & 1:
                raise InvalidArgument()  # serial 0
            if offset + bits.bit_length() - 1 > U64_MAX:
                raise InvalidFormat()  # "bitmap wraps u64"
            if bits:
                if not bitmaps:
                    krl.for_ca(ca)  # the entry exists from its first revocation on
                bitmaps.append((offset, bits))
        elif kind == SERIAL_LIST:
            serials = _serial_list(sub.rest())
            if serials:
                krl.for_ca(ca).serials.add_singles(serials)
        elif kind == SERIAL_RANGE:
            lo, hi = sub.uint64(), sub.uint64()
            krl.revoke_serial(ca, lo, hi)
        elif kind == CERT_KEY_ID:
            while sub.remaining:
                key_id = sub.string()
                if b"\0" in key_id:
                    raise InvalidFormat()
                krl.for_ca(ca).key_ids.add(key_id)
        elif kind == CERT_EXTENSION:
            _extension(sub)
        else:
            raise InvalidFormat()  # "Unsupported KRL certificate section"
        if sub.remaining:
            raise InvalidFormat()  # "section contains unparsed data"
    if bitmaps:
        krl.for_ca(ca).serials.add_bitmaps(bitmaps)


def _parse_blobs(body: bytes, target: set[bytes], size: int) -> None:
    r = Reader(body)
    while r.remaining:
        blob = r.string()
        if size and len(blob) != size:
            raise InvalidFormat()
        target.add(blob)


def _check_signatures(r: Reader, allow: bool) -> list[PublicKey]:
    """First pass: verify each signature section over the KRL bytes before it."""
    signers: list[PublicKey] = []
    while r.remaining:
        kind = r.byte()
        blob = r.string()
        if kind != SECTION_SIGNATURE:
            if signers:
                raise InvalidFormat()  # "KRL contains non-signature section after signature"
            continue
        if not allow:
            raise InvalidFormat()  # OpenSSH >= 9.4: KRL signatures are not supported
        try:
            key = _decode_key(blob)
        except SshError:
            raise InvalidFormat() from None
        signed_end = r.position
        try:
            signature = r.string()
        except SshError:
            raise InvalidFormat() from None
        key.verify(r.slice(0, signed_end), signature)
        if any(seen.blob() == key.blob() for seen in signers):
            raise InvalidFormat()  # "KRL signed more than once with the same key"
        signers.append(key)
    return signers


def parse_krl(data: bytes, trusted: Sequence[PublicKey] = (),
              allow_signatures: bool = True) -> Krl:
    """Read a KRL file's bytes; raises the SshError OpenSSH's reader would give.

    With ``trusted`` keys, a signed KRL must be signed by one of them (an unsigned KRL
    passes, as in OpenSSH).
    """
    if data[:len(KRL_MAGIC)] != KRL_MAGIC:
        raise KrlBadMagic()
    r = Reader(data)
    r.raw(len(KRL_MAGIC))
    if r.uint32() != KRL_FORMAT_VERSION:
        raise InvalidFormat()
    krl = Krl()
    krl.version = r.uint64()
    krl.generated = r.uint64()
    krl.flags = r.uint64()
    r.string()  # reserved
    krl.comment = r.cstring()
    start = r.position
    signers = _check_signatures(r, allow_signatures)
    sections = Reader(r.slice(start, r.position))
    while sections.remaining:
        kind = sections.byte()
        body = sections.string()
        if kind == SECTION_CERTIFICATES:
            _parse_certs(body, krl)
        elif kind == SECTION_EXPLICIT_KEY:
            _parse_blobs(body, krl.revoked_keys, 0)
        elif kind == SECTION_FINGERPRINT_SHA1:
            _parse_blobs(body, krl.revoked_sha1, 20)
        elif kind == SECTION_FINGERPRINT_SHA256:
            _parse_blobs(body, krl.revoked_sha256, 32)
        elif kind == SECTION_SIGNATURE:
            sections.string()  # the signature; checked above
        elif kind == SECTION_EXTENSION:
            _extension(Reader(body))
        else:
            raise InvalidFormat()  # "Unsupported KRL section"
    valid = [key for key in signers if not krl.is_revoked(key)]
    if signers and not valid:
        raise KeyRevoked()  # "All keys used to sign KRL were revoked"
    if valid and trusted:
        blobs = {key.blob() for key in trusted}
        if not any(key.blob() in blobs for key in valid):
            raise SignatureInvalid()  # "KRL not signed with any trusted key"
    krl.signers = tuple(valid)
    return krl


def load_krl(path: str, trusted: Sequence[PublicKey] = (),
             allow_signatures: bool = True) -> Krl:
    """Read and parse a KRL file (FileError with strerror wording if unreadable)."""
    from keytools.keyfile import read_file

    return parse_krl(read_file(path), trusted, allow_signatures)


def encode_krl(krl: Krl, sign_with: Iterable[PrivateKey] = (),
               progress: Callable[[int], None] | None = None) -> bytes:
    """The KRL file for ``krl``; ``progress`` hears how many serials each subsection
    took. Sets ``krl.generated`` to now if it is 0, as ssh_krl_to_blob() does."""
    from keytools.krl.encoder import encode_serials  # not needed to read a KRL

    if krl.generated == 0:
        krl.generated = int(time.time())
    w = Writer().raw(KRL_MAGIC).uint32(KRL_FORMAT_VERSION)
    w.uint64(krl.version).uint64(krl.generated).uint64(krl.flags)
    w.string(b"").string(krl.comment)
    for entry in krl.certs:
        section = Writer().string(entry.ca_blob).string(b"")
        vals, links = entry.serials.normalized()
        encode_serials(vals, links, entry.serials.gaps(), section, progress)
        if entry.key_ids:
            ids = Writer()
            for key_id in sorted(entry.key_ids):
                ids.string(key_id)
            section.byte(CERT_KEY_ID).string(ids.getvalue())
        w.byte(SECTION_CERTIFICATES).string(section.getvalue())
    for kind, blobs in ((SECTION_EXPLICIT_KEY, krl.revoked_keys),
                        (SECTION_FINGERPRINT_SHA1, krl.revoked_sha1),
                        (SECTION_FINGERPRINT_SHA256, krl.revoked_sha256)):
        if blobs:
            body = Writer()
            for blob in sorted(blobs):
                body.string(blob)
            w.byte(kind).string(body.getvalue())
    for key in sign_with:
        w.byte(SECTION_SIGNATURE).string(key.public.blob())
        w.string(key.sign(w.getvalue()))
    return w.getvalue()
