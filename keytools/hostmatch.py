"""Host name patterns and hashed names, as OpenSSH's hostfile.c matches them.

A known_hosts host field is either a comma-separated pattern list (``*`` and ``?``
wildcards, ``!`` negation, compared in lower case) or one hashed name
``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``. The HMAC comes from the standard
library's OpenSSL binding (``_hashlib.hmac_digest``, what hmac.digest calls), as
fingerprints use hashlib: this is a name lookup, and importing cryptography per line
would make big files slow.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable

try:
    from _hashlib import compare_digest, hmac_digest
except ImportError:  # pragma: no cover - Python without OpenSSL's hashlib
    from hmac import compare_digest
    from hmac import digest as hmac_digest  # type: ignore[assignment]

from keytools.match import ascii_lower, match_hostname, match_pattern_list

HASH_MAGIC = "|1|"
HASH_DELIM = "|"
#: SHA-1: the salt and the digest are both this long.
HASH_LEN = 20
#: extract_salt refuses an encoded salt longer than this.
_MAX_SALT_TEXT = 1024
DEFAULT_PORT = 22


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def hash_host(host: str, salt: bytes | None = None) -> str:
    """``|1|salt|hmac`` for ``host``; a fresh random salt unless one is given."""
    if salt is None:
        salt = os.urandom(HASH_LEN)
    digest = hmac_digest(salt, host.encode("utf-8", "surrogateescape"), "sha1")
    return f"{HASH_MAGIC}{_b64(salt)}{HASH_DELIM}{_b64(digest)}"


def extract_salt(field: str) -> bytes | None:
    """The 20-byte salt of a hashed host field, or None when it is malformed."""
    if not field.startswith(HASH_MAGIC):
        return None
    rest = field[len(HASH_MAGIC):]
    end = rest.find(HASH_DELIM)
    if end <= 0 or end > _MAX_SALT_TEXT:
        return None
    try:
        salt = binascii.a2b_base64(rest[:end].encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return salt if len(salt) == HASH_LEN else None


def match_hashed(host: str, field: str) -> bool | None:
    """Whether a ``|1|`` field is the hash of ``host``; None when the field is malformed.

    As OpenSSH, the whole field must equal the re-computed ``|1|salt|hash`` text.
    """
    salt = extract_salt(field)
    if salt is None:
        return None
    return compare_digest(hash_host(host, salt), field)


def host_matcher(host: str) -> Callable[[str], bool | None]:
    """match_host_field for one host over many fields (the host is folded once)."""
    lowered = ascii_lower(host)

    def match(field: str) -> bool | None:
        if field.startswith(HASH_DELIM):
            return match_hashed(host, field)
        if field == lowered:
            return True
        return match_pattern_list(lowered, field, True) == 1

    return match


def match_host_field(host: str, field: str) -> bool | None:
    """match_maybe_hashed: True/False, or None for a malformed hashed field.

    Hashed names are compared as given (OpenSSH does not fold the looked-up name to
    lower case there); plain patterns are compared in lower case.
    """
    if field.startswith(HASH_DELIM):
        return match_hashed(host, field)
    return match_hostname(host, field) == 1


def host_port(host: str, port: int | None = DEFAULT_PORT) -> str:
    """The name known_hosts stores: ``host``, or ``[host]:port`` off the default port."""
    if port is None or port == 0 or port == DEFAULT_PORT:
        return host
    return f"[{host}]:{port}"


def has_wildcard(field: str) -> bool:
    """A host field ssh-keygen -H leaves alone: it holds ``*``, ``?`` or ``!``."""
    return any(c in field for c in "*?!")
