"""Host name patterns and hashed names, as OpenSSH's match.c and hostfile.c match them.

A known_hosts host field is either a comma-separated pattern list (``*`` and ``?``
wildcards, ``!`` negation, compared in lower case) or one hashed name
``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``. The HMAC comes from the standard
library's OpenSSL binding (hmac.digest), as fingerprints use hashlib: this is a name
lookup, and importing cryptography per line would make big files slow.
"""

from __future__ import annotations

import binascii
import hmac
import secrets
from base64 import b64encode
from collections.abc import Callable

HASH_MAGIC = "|1|"
HASH_DELIM = "|"
#: SHA-1: the salt and the digest are both this long.
HASH_LEN = 20
#: match_pattern_list copies each sub-pattern into a 1024-byte buffer; a longer one
#: makes the whole list fail to match.
_MAX_SUBPATTERN = 1023
#: extract_salt refuses an encoded salt longer than this.
_MAX_SALT_TEXT = 1024
DEFAULT_PORT = 22


def match_pattern(s: str, pattern: str) -> bool:
    """``*`` matches any run, ``?`` any one character; everything else is literal.

    An iterative glob (the last ``*`` is the only backtracking point), so a hostile
    pattern costs O(len(s) * len(pattern)) at worst, never exponential time.
    """
    if "*" not in pattern and "?" not in pattern:
        return s == pattern
    si = pi = 0
    star = -1
    mark = 0
    ns, np_ = len(s), len(pattern)
    while si < ns:
        if pi < np_ and pattern[pi] == "*":
            star = pi
            pi += 1
            mark = si
        elif pi < np_ and (pattern[pi] == "?" or pattern[pi] == s[si]):
            si += 1
            pi += 1
        elif star >= 0:
            pi = star + 1
            mark += 1
            si = mark
        else:
            return False
    while pi < np_ and pattern[pi] == "*":
        pi += 1
    return pi == np_


def ascii_lower(text: str) -> str:
    """C's tolower() in the C locale: only A-Z change."""
    return text.lower() if text.isascii() else "".join(
        c.lower() if "A" <= c <= "Z" else c for c in text
    )


def match_pattern_list(s: str, patterns: str, dolower: bool) -> int:
    """1 if a pattern matches, -1 if a negated (``!``) one matches, else 0."""
    got_positive = 0
    subs = patterns.split(",")
    if patterns.endswith(","):
        subs.pop()  # C stops at the end of the string: no empty pattern after a last comma
    for sub in subs:
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if len(sub) >= _MAX_SUBPATTERN:
            return 0
        if dolower:
            sub = ascii_lower(sub)
        if match_pattern(s, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


def match_hostname(host: str, patterns: str) -> int:
    """match_pattern_list with the host and the patterns folded to lower case."""
    return match_pattern_list(ascii_lower(host), patterns, True)


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def hash_host(host: str, salt: bytes | None = None) -> str:
    """``|1|salt|hmac`` for ``host``; a fresh random salt unless one is given."""
    if salt is None:
        salt = secrets.token_bytes(HASH_LEN)
    digest = hmac.digest(salt, host.encode("utf-8", "surrogateescape"), "sha1")
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
    return hmac.compare_digest(hash_host(host, salt), field)


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
