"""Key fingerprints as OpenSSH prints them (sshkey_fingerprint with SSH_FP_DEFAULT).

Only hashlib is used, so ``pykeygen -l`` never has to import cryptography for this.
A certificate fingerprints as the key inside it, as OpenSSH does.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from typing import TYPE_CHECKING

from keytools.errors import InvalidArgument

if TYPE_CHECKING:
    from keytools.public import PublicKey

#: hashlib name -> the name OpenSSH prints (ssh_digest_alg_name), in ssh-keygen -E order.
DIGEST_NAMES: dict[str, str] = {
    "md5": "MD5",
    "sha1": "SHA1",
    "sha256": "SHA256",
    "sha384": "SHA384",
    "sha512": "SHA512",
}
DEFAULT_HASH = "sha256"


def parse_hash_name(name: str) -> str:
    """The hashlib name for an ``ssh-keygen -E`` argument (matched case-insensitively).

    Raises InvalidArgument worded as ssh-keygen's fatal error for anything else.
    """
    folded = name.lower()
    if name.isascii() and folded in DIGEST_NAMES:
        return folded
    raise InvalidArgument(f'Invalid hash algorithm "{name}"')


def digest_label(hash_name: str) -> str:
    """``SHA256``, ``MD5``, ...: the prefix of a fingerprint and the randomart footer."""
    return DIGEST_NAMES[parse_hash_name(hash_name)]


def fingerprint_raw(key: PublicKey, hash_name: str = DEFAULT_HASH) -> bytes:
    """The digest of the plain key's wire blob."""
    name = parse_hash_name(hash_name)
    return hashlib.new(name, key.plain.blob(), usedforsecurity=False).digest()


def format_fingerprint(raw: bytes, hash_name: str = DEFAULT_HASH) -> str:
    """``MD5:aa:bb:..`` (hex pairs) for MD5, ``SHA256:<base64 unpadded>`` otherwise."""
    name = parse_hash_name(hash_name)
    label = DIGEST_NAMES[name]
    if name == "md5":
        return f"{label}:{raw.hex(':')}"
    return f"{label}:{b64encode(raw).decode('ascii').rstrip('=')}"


def fingerprint(key: PublicKey, hash_name: str = DEFAULT_HASH) -> str:
    """The fingerprint string ``ssh-keygen -l -E hash_name`` prints for ``key``."""
    name = parse_hash_name(hash_name)
    raw = hashlib.new(name, key.plain.blob(), usedforsecurity=False).digest()
    if name == "md5":
        return f"MD5:{raw.hex(':')}"
    return f"{DIGEST_NAMES[name]}:{b64encode(raw).decode('ascii').rstrip('=')}"
