"""OpenSSH's glob patterns (match.c): ``*`` and ``?`` wildcards, comma lists with ``!``.

Matching works on bytes, as OpenSSH's does (``?`` is one byte); text is encoded as
UTF-8 with surrogateescape so names that are not UTF-8 survive. The glob is iterative
(only the last ``*`` is a backtracking point), so a hostile pattern costs at most
O(len(s) * len(pattern)), never exponential time.
"""

from __future__ import annotations

#: match_pattern_list copies each sub-pattern into a 1024-byte buffer; a longer one
#: makes the whole list fail to match.
MAX_SUBPATTERN = 1023


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def match_bytes(s: bytes, p: bytes) -> bool:
    """Does all of ``s`` match the glob ``p``?"""
    if b"*" not in p and b"?" not in p:
        return s == p
    si = pi = 0
    star = mark = -1
    ns, np_ = len(s), len(p)
    while si < ns:
        if pi < np_ and p[pi] != 0x2A and p[pi] in (0x3F, s[si]):
            si += 1
            pi += 1
        elif pi < np_ and p[pi] == 0x2A:
            star, mark = pi, si
            pi += 1
        elif star >= 0:
            mark += 1
            si, pi = mark, star + 1
        else:
            return False
    while pi < np_ and p[pi] == 0x2A:
        pi += 1
    return pi == np_


def match_pattern(s: str, pattern: str) -> bool:
    """``*`` matches any run, ``?`` any one byte; everything else is literal."""
    if "*" not in pattern and "?" not in pattern:
        return s == pattern
    return match_bytes(_b(s), _b(pattern))


def match_pattern_list(s: str, patterns: str, dolower: bool = False) -> int:
    """1 if a pattern of the comma list matches, -1 if a ``!negated`` one does, else 0.

    With ``dolower`` the patterns (not ``s``) are folded to ASCII lower case first.
    """
    subject, pat = _b(s), _b(patterns)
    got_positive = 0
    i, n = 0, len(pat)
    while i < n:
        negated = pat[i] == 0x21
        if negated:
            i += 1
        end = pat.find(b",", i)
        end = n if end < 0 else end
        sub = pat[i:end]
        if len(sub) >= MAX_SUBPATTERN:
            return 0
        i = end + 1 if end < n else end
        if match_bytes(subject, sub.lower() if dolower else sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


def ascii_lower(text: str) -> str:
    """C's tolower() in the C locale: only A-Z change."""
    if text.isascii():
        return text.lower()
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def match_hostname(host: str, patterns: str) -> int:
    """match_pattern_list with the host and the patterns folded to lower case."""
    return match_pattern_list(ascii_lower(host), patterns, True)
