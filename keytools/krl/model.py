"""A Key Revocation List in memory: what it revokes and the question sshd asks of it.

``Krl`` mirrors OpenSSH's ``struct ssh_krl``: explicit keys, SHA1 and SHA256 key hashes,
and per-CA certificate revocations (serials and key IDs; CA ``None`` is the wildcard
"any CA" entry). It is a mutable builder, like the C structure: ``pykeygen -k -u`` loads
one, adds revocations and writes it back. CA entries keep the order of their first
revocation because the file lists them in that order.

Queries cost one hash per digest section, set lookups and a bisect per serial set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from keytools.errors import InvalidArgument, InvalidFormat, KeyRevoked
from keytools.krl.serials import U64_MAX, SerialSet

if TYPE_CHECKING:
    from keytools.certificate import Certificate
    from keytools.private import PrivateKey
    from keytools.public import PublicKey


class RevokedCerts:
    """The certificates revoked for one CA (``ca is None``: certificates of any CA).

    A plain mutable class (a builder, compared by identity like the C structure): no
    dataclass machinery on the start-up path of ``pykeygen -k`` and ``-Q``.
    """

    __slots__ = ("ca", "key_ids", "serials")

    def __init__(self, ca: PublicKey | None, serials: SerialSet | None = None,
                 key_ids: set[bytes] | None = None) -> None:
        self.ca = ca
        self.serials = SerialSet() if serials is None else serials
        self.key_ids: set[bytes] = set() if key_ids is None else key_ids

    def __repr__(self) -> str:
        return f"RevokedCerts(ca={self.ca!r}, serials={self.serials!r}, key_ids={self.key_ids!r})"

    @property
    def ca_blob(self) -> bytes:
        return b"" if self.ca is None else self.ca.blob()

    def revokes(self, cert: Certificate) -> bool:
        """krl.c's is_cert_revoked(): by key ID, then (for a non-zero serial) by serial."""
        if self.key_ids and cert.key_id.encode("utf-8", "surrogateescape") in self.key_ids:
            return True
        return cert.serial != 0 and cert.serial in self.serials


def _key_id_bytes(key_id: str | bytes) -> bytes:
    raw = key_id.encode("utf-8", "surrogateescape") if isinstance(key_id, str) else key_id
    if b"\0" in raw:
        raise InvalidFormat()
    return raw


class Krl:
    """A KRL; build it with the ``revoke_*`` methods, ask it with ``is_revoked``."""

    def __init__(self, version: int = 0, comment: str = "", generated: int = 0,
                 flags: int = 0) -> None:
        self.version = version
        #: seconds since the epoch; 0 means "now" when the KRL is written
        self.generated = generated
        self.flags = flags
        #: text; bytes that are not UTF-8 are kept as surrogate escapes
        self.comment = comment
        self.revoked_keys: set[bytes] = set()
        self.revoked_sha1: set[bytes] = set()
        self.revoked_sha256: set[bytes] = set()
        self.certs: list[RevokedCerts] = []
        self._by_ca: dict[bytes, RevokedCerts] = {}
        #: keys whose signature sections verified when this KRL was read
        self.signers: tuple[PublicKey, ...] = ()

    # -- building -------------------------------------------------------------------------

    def for_ca(self, ca: PublicKey | None) -> RevokedCerts:
        """The entry for ``ca`` (``None``: wildcard), created at the end if new."""
        blob = b"" if ca is None else ca.blob()
        entry = self._by_ca.get(blob)
        if entry is None:
            entry = RevokedCerts(ca)
            self._by_ca[blob] = entry
            self.certs.append(entry)
        return entry

    def revoke_serial(self, ca: PublicKey | None, lo: int, hi: int | None = None) -> None:
        """Revoke certificates with serial ``lo`` (through ``hi``) signed by ``ca``."""
        top = lo if hi is None else hi
        if lo == 0 or lo > top or lo < 0 or top > U64_MAX:
            raise InvalidArgument()
        self.for_ca(ca).serials.add(lo, top)

    def revoke_serials(self, ca: PublicKey | None, serials: Sequence[int]) -> None:
        """Revoke many single serials at once (no per-serial Python work)."""
        if not serials:
            return
        if min(serials) <= 0 or max(serials) > U64_MAX:
            raise InvalidArgument()
        self.for_ca(ca).serials.add_singles(serials)

    def revoke_key_id(self, ca: PublicKey | None, key_id: str | bytes) -> None:
        self.for_ca(ca).key_ids.add(_key_id_bytes(key_id))

    def revoke_key_explicit(self, key: PublicKey) -> None:
        """List the plain key itself (a certificate is reduced to its key)."""
        self.revoked_keys.add(key.plain.blob())

    def revoke_sha1(self, digest: bytes) -> None:
        if len(digest) != 20:
            raise InvalidFormat()
        self.revoked_sha1.add(bytes(digest))

    def revoke_sha256(self, digest: bytes) -> None:
        if len(digest) != 32:
            raise InvalidFormat()
        self.revoked_sha256.add(bytes(digest))

    def revoke_key(self, key: PublicKey) -> None:
        """ssh_krl_revoke_key(): a plain key explicitly, a certificate by its serial (or
        by its key ID when the serial is 0) under the CA that signed it."""
        from keytools.certificate import Certificate

        if not isinstance(key, Certificate):
            self.revoke_key_explicit(key)
        elif key.serial == 0:
            self.revoke_key_id(key.signature_key, key.key_id)
        else:
            self.revoke_serial(key.signature_key, key.serial)

    # -- asking ---------------------------------------------------------------------------

    def _listed(self, key: PublicKey) -> bool:
        """krl.c's is_key_revoked() for the key itself (not its CA)."""
        import hashlib

        from keytools.certificate import Certificate

        blob = key.plain.blob()
        if self.revoked_sha1 and hashlib.sha1(blob, usedforsecurity=False).digest() \
                in self.revoked_sha1:
            return True
        if self.revoked_sha256 and hashlib.sha256(blob).digest() in self.revoked_sha256:
            return True
        if blob in self.revoked_keys:
            return True
        if not isinstance(key, Certificate):
            return False
        entry = self._by_ca.get(key.signature_key.blob())
        if entry is not None and entry.revokes(key):
            return True
        entry = self._by_ca.get(b"")
        return entry is not None and entry.revokes(key)

    def is_revoked(self, key: PublicKey) -> bool:
        """True if the key, or for a certificate the key or its CA, is revoked here."""
        from keytools.certificate import Certificate

        if self._listed(key):
            return True
        return isinstance(key, Certificate) and self._listed(key.signature_key)

    def check_key(self, key: PublicKey) -> None:
        """ssh_krl_check_key(): raise KeyRevoked if ``is_revoked(key)``."""
        if self.is_revoked(key):
            raise KeyRevoked()

    # -- files ----------------------------------------------------------------------------

    def to_bytes(self, sign_with: Iterable[PrivateKey] = ()) -> bytes:
        """The KRL file; sets ``generated`` to now if it is 0 (as OpenSSH does)."""
        from keytools.krl.codec import encode_krl

        return encode_krl(self, sign_with)

    def listing(self) -> str:
        """``ssh-keygen -Q -l``'s dump of this KRL."""
        from keytools.krl.listing import krl_listing

        return krl_listing(self)
