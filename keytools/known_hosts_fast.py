"""Byte-level fast paths over whole known_hosts files, for files of 100,000 lines.

Each function gives exactly what the line-by-line parser in keytools.known_hosts
gives, but settles the common lines (``name[,name] type base64 ...`` and
``|1|salt|hash type base64 ...``) with a few bytes operations; any other line (a
marker, leading blanks, tabs, NUL bytes, an odd hash) goes through ``_parse``. Bytes
are kept as bytes: case folding is ASCII-only, as C's tolower() in OpenSSH.
"""

from __future__ import annotations

import binascii
import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from keytools.errors import FileError
from keytools.hostmatch import HASH_LEN, has_wildcard, host_matcher
from keytools.known_hosts import (
    HostLine,
    LineStatus,
    Marker,
    _parse,
    is_key_type_name,
)
from keytools.match import ascii_lower

#: a first byte that sends the line to the full parser
_SLOW_FIRST = frozenset(b" \t#@\r")
_SE = "surrogateescape"
#: what may not follow a key type name on an ordinary line (b"": nothing follows)
_BAD_AFTER_TYPE = frozenset((b"", b" ", b"\t", b"#", b"\r"))


def read_lines(path: str | os.PathLike[str]) -> list[bytes]:
    """The file's lines without their "\\n" (a directory reads as empty, as in C)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        return []
    except OSError as exc:
        raise FileError.from_os(exc) from None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def _text(raw: bytes) -> bytes:
    """What OpenSSH writes back for a line: cut at a NUL byte."""
    cut = raw.find(b"\0")
    return raw if cut < 0 else raw[:cut]


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", _SE)


class _KeyTypes:
    """Key type names as bytes, checked once each (the set is small)."""

    def __init__(self) -> None:
        self.known: dict[bytes, bool] = {}

    def ok(self, name: bytes) -> bool:
        seen = self.known.get(name)
        if seen is None:
            seen = (1 < len(name) < 128 and b"\t" not in name
                    and is_key_type_name(_decode(name)))
            self.known[name] = seen
        return seen


def _plain_entry(raw: bytes, types: _KeyTypes) -> tuple[bytes, bytes] | None:
    """(hosts, rawkey) of an ordinary valid line ``hosts type data...`` (single spaces,
    no tab or NUL), else None: the full parser decides."""
    parts = raw.split(b" ", 2)
    if len(parts) != 3:
        return None
    hosts, kind, rest = parts
    if not hosts or hosts[0] in _SLOW_FIRST or rest[:1] in _BAD_AFTER_TYPE:
        return None
    ok = types.known.get(kind)
    if ok is None:
        ok = types.ok(kind)
    if not ok or b"\t" in hosts or b"\0" in raw:
        return None
    return hosts, raw[len(hosts) + 1:]


def scan_file(
    path: str | os.PathLike[str],
    host: str | None = None,
    *,
    want_match: bool = False,
    parse_key: bool = False,
) -> Iterator[HostLine]:
    """keytools.known_hosts.scan over a file; with ``want_match`` most lines are ruled
    out without being parsed (a clear name cannot match unless it contains the host)."""
    lines = read_lines(path)
    matcher = host_matcher(host) if host is not None else None
    if not (want_match and host is not None):
        for number, raw in enumerate(lines, 1):
            line = _parse(_decode(raw), number, matcher, want_match, parse_key)
            if line is not None:
                yield line
        return
    lowered = ascii_lower(host).encode("utf-8", _SE)
    name = host.encode("utf-8", _SE)
    a2b, b2a, digest = binascii.a2b_base64, binascii.b2a_base64, hmac.digest
    slow_first = _SLOW_FIRST
    for number, raw in enumerate(lines, 1):
        if not raw:
            continue
        if raw[:1] == b"|":
            # "|1|" + 28 + "|" + 28 + " ": a mismatch is settled here, the rest parsed below
            if raw[60:61] == b" " and raw[31:32] == b"|" and raw[:3] == b"|1|":
                try:
                    salt = a2b(raw[3:31], strict_mode=True)
                except binascii.Error:
                    salt = b""
                if len(salt) == HASH_LEN and \
                        b2a(digest(salt, name, "sha1"), newline=False) != raw[32:60]:
                    continue
        elif raw[0] not in slow_first:
            sp = raw.find(b" ")
            hosts = raw if sp < 0 else raw[:sp]
            if lowered not in hosts.lower() and b"*" not in hosts and b"?" not in hosts \
                    and b"\t" not in hosts:
                continue
        line = _parse(_decode(raw), number, matcher, True, parse_key)
        if line is not None:
            yield line


@dataclass
class ByteRewrite:
    """A rewritten file as bytes lines, and what was noticed, in line order."""

    lines: list[bytes] = field(default_factory=list)
    found: list[HostLine] = field(default_factory=list)
    invalid: list[HostLine] = field(default_factory=list)
    wildcard: list[HostLine] = field(default_factory=list)
    hashed_names: bool = False


def delete_host_file(path: str | os.PathLike[str], host: str) -> ByteRewrite:
    """keytools.known_hosts_edit.delete_host_lines over a file (ssh-keygen -R)."""
    result = ByteRewrite()
    matcher = host_matcher(host)
    lowered = ascii_lower(host).encode("utf-8", _SE)
    types = _KeyTypes()
    name = host.encode("utf-8", _SE)
    a2b, b2a, digest = binascii.a2b_base64, binascii.b2a_base64, hmac.digest
    for number, raw in enumerate(read_lines(path), 1):
        entry = _plain_entry(raw, types)
        if entry is not None:
            hosts = entry[0]
            if hosts[:3] == b"|1|":
                if len(hosts) == 60 and hosts[31:32] == b"|":
                    try:
                        salt = a2b(hosts[3:31], strict_mode=True)
                    except binascii.Error:
                        salt = b""
                    if len(salt) == HASH_LEN and \
                            b2a(digest(salt, name, "sha1"), newline=False) != hosts[32:]:
                        result.lines.append(raw)
                        continue
            elif (b"*" not in hosts and b"?" not in hosts and hosts[:1] != b"|"
                    and lowered not in hosts.lower()):
                result.lines.append(raw)
                continue
        line = _parse(_decode(raw), number, matcher, False, False)
        if line is None:
            continue
        if line.status is LineStatus.ENTRY and line.matched and line.marker is Marker.NONE:
            result.found.append(line)
            continue
        if line.status is LineStatus.INVALID:
            result.invalid.append(line)
        result.lines.append(_text(raw))
    return result


def _wild(hosts: bytes) -> bool:
    return b"*" in hosts or b"?" in hosts or b"!" in hosts


def hash_file(path: str | os.PathLike[str]) -> ByteRewrite:
    """keytools.known_hosts_edit.hash_host_lines over a file (ssh-keygen -H)."""
    result = ByteRewrite()
    types = _KeyTypes()
    b2a, digest, urandom = binascii.b2a_base64, hmac.digest, os.urandom
    out = result.lines
    pool, pos = b"", 0
    for number, raw in enumerate(read_lines(path), 1):
        entry = _plain_entry(raw, types)
        if entry is not None:
            hosts, rawkey = entry
            if hosts[:1] == b"|":
                out.append(raw)  # already hashed
                continue
            if not _wild(hosts):
                for name in hosts.split(b","):
                    if not name:
                        break
                    if pos + HASH_LEN > len(pool):
                        pool, pos = urandom(HASH_LEN * 4096), 0
                    salt = pool[pos:pos + HASH_LEN]
                    pos += HASH_LEN
                    out.append(b"|1|" + b2a(salt, newline=False) + b"|"
                               + b2a(digest(salt, name.lower(), "sha1"), newline=False)
                               + b" " + rawkey)
                    result.hashed_names = True
                continue
        line = _parse(_decode(raw), number, None, False, False)
        if line is None:
            continue
        if line.status is LineStatus.ENTRY:
            if line.marker is Marker.NONE and not line.hashed and not has_wildcard(line.hosts):
                from keytools.known_hosts_edit import hashed_forms

                forms = hashed_forms(line) or []
                out.extend(form.encode("utf-8", _SE) for form in forms)
                result.hashed_names = result.hashed_names or bool(forms)
                continue
            if has_wildcard(line.hosts):
                result.wildcard.append(line)
        elif line.status is LineStatus.INVALID:
            result.invalid.append(line)
        out.append(_text(raw))
    return result
