"""Key Revocation Lists (PROTOCOL.krl): build, read, write, list and query them.

The library side of ``pykeygen -k/-Q`` and of sshd's RevokedKeys::

    krl = load_krl("/etc/ssh/revoked")      # or parse_krl(data)
    krl.is_revoked(key_or_certificate)      # -> bool, O(1)/O(log n)

Building: ``Krl().revoke_serial(ca, lo, hi)``, ``revoke_key_id``, ``revoke_key``,
``revoke_key_explicit``, ``revoke_sha1``/``revoke_sha256``, ``revoke_serials`` (bulk), or
``keytools.krl.spec.SpecReader`` for ssh-keygen's specification files; ``krl.to_bytes()``
writes the file byte for byte as ssh-keygen would (``to_bytes(sign_with=[key])`` signs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytools.krl.codec import encode_krl, load_krl, parse_krl
from keytools.krl.model import Krl, RevokedCerts
from keytools.krl.serials import SerialSet

if TYPE_CHECKING:
    from keytools.public import PublicKey

__all__ = [
    "Krl",
    "RevokedCerts",
    "SerialSet",
    "encode_krl",
    "file_contains_key",
    "load_krl",
    "parse_krl",
]


def file_contains_key(path: str, key: PublicKey) -> bool:
    """ssh_krl_file_contains_key(): load ``path`` and ask it about ``key``.

    Raises the SshError of an unreadable or invalid file (sshd treats that as revoked).
    """
    return load_krl(path).is_revoked(key)
