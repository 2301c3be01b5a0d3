"""Whole-file fast paths over known_hosts files of 100,000 lines (-F, -R, -H).

Each function gives exactly what the line-by-line parser in keytools.known_hosts
gives. Big files are searched in bulk (keytools.known_hosts_bulk: regular expressions
over the whole text, hashed names checked together, two processes); a file the bulk
scan does not understand, or a small one, is read line by line here, where the common
lines (``name[,name] type base64 ...`` and ``|1|salt|hash type base64 ...``) are
settled with a few bytes operations and any other goes through ``_parse``. Bytes are
kept as bytes: case folding is ASCII-only, as C's tolower() in OpenSSH. The HMACs are
OpenSSL's, through ``_hashlib``.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from operator import methodcaller

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

try:
    from _hashlib import hmac_digest as _hmac
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - Python without OpenSSL's hashlib
    from hmac import digest as _hmac  # type: ignore[assignment]
    from hmac import new as _hmac_new  # type: ignore[assignment]

#: a first byte that sends the line to the full parser
_SLOW_FIRST = frozenset(b" \t#@\r")
_SE = "surrogateescape"
#: what may not follow a key type name on an ordinary line (b"": nothing follows)
_BAD_AFTER_TYPE = frozenset((b"", b" ", b"\t", b"#", b"\r"))
#: files at least this big are searched in bulk ...
BULK_BYTES = 1 << 20
#: ... and by two processes from this size on (a fork costs about a millisecond)
PARALLEL_BYTES = 2 << 20
_DIGEST = methodcaller("digest")


def _hmacs(keys: Iterable[bytes], messages: Iterable[bytes]) -> Iterator[bytes]:
    """HMAC-SHA1 of each message under each key, lazily, in C-level maps. An HMAC
    object per key is a third faster than the one-shot hmac_digest under OpenSSL 3
    (which fetches the MAC algorithm on every call); both are OpenSSL's HMAC."""
    return map(_DIGEST, map(_hmac_new, keys, messages, repeat("sha1")))


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


def _scan_lines(lines: list[bytes], host: str, parse_key: bool) -> Iterator[HostLine]:
    """scan_file's matches, line by line (any file)."""
    matcher = host_matcher(host)
    lowered = ascii_lower(host).encode("utf-8", _SE)
    name = host.encode("utf-8", _SE)
    a2b, b2a, digest = binascii.a2b_base64, binascii.b2a_base64, _hmac
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
    #: the whole new text at once (each line with its newline), instead of ``lines``
    blob: bytes | None = None

    def output(self) -> bytes:
        """The new file's bytes."""
        return self.blob if self.blob is not None else _joined(self.lines)


def _delete_lines(lines: list[bytes], host: str) -> ByteRewrite:
    """delete_host_file, line by line (any file)."""
    result = ByteRewrite()
    matcher = host_matcher(host)
    lowered = ascii_lower(host).encode("utf-8", _SE)
    types = _KeyTypes()
    name = host.encode("utf-8", _SE)
    a2b, b2a, digest = binascii.a2b_base64, binascii.b2a_base64, _hmac
    for number, raw in enumerate(lines, 1):
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


def _joined(lines: list[bytes]) -> bytes:
    """The lines, each followed by a newline."""
    return b"\n".join(lines) + b"\n" if lines else b""


def _wild(hosts: bytes) -> bool:
    return b"*" in hosts or b"?" in hosts or b"!" in hosts


def _hashed_prefixes(names: list[bytes], lead: bytes = b"") -> bytes:
    """``lead|1|salt|hash `` for each name (61 bytes each after ``lead``, one after the
    other), with fresh random salts, built in bulk.

    Each salt and HMAC gets a zero byte appended, so that every 21 bytes encode to 28
    base64 characters ending in "A" where the 20 bytes alone end in "=": one encode
    for all of them, then the texts are interleaved with strided slice assignments.
    """
    count = len(names)
    pool = os.urandom(HASH_LEN * count)
    salts = [pool[i:i + HASH_LEN] for i in range(0, HASH_LEN * count, HASH_LEN)]
    digests = _hmacs(salts, names)
    pad = b"=" * count
    texts = []
    for raw in (salts, digests):
        text = bytearray(binascii.b2a_base64(b"\0".join(raw) + b"\0", newline=False))
        text[27::28] = pad
        texts.append(text)
    skip = len(lead)
    width = skip + 61  # lead + "|1|" + 28 + "|" + 28 + " "
    out = bytearray(width * count)
    for at, code in enumerate(lead):
        out[at::width] = bytes((code,)) * count
    for at, char in ((0, b"|"), (1, b"1"), (2, b"|"), (31, b"|"), (60, b" ")):
        out[skip + at::width] = char * count
    for j in range(28):
        out[skip + 3 + j::width] = texts[0][j::28]
        out[skip + 32 + j::width] = texts[1][j::28]
    return bytes(out)


def _hash_lines(lines: list[bytes], first: int = 1) -> ByteRewrite:
    """hash_file over ``lines``, the first of them numbered ``first``. Names are
    gathered first and hashed together (_hashed_prefixes), then put in place."""
    result = ByteRewrite()
    types = _KeyTypes()
    out = result.lines
    names: list[bytes] = []
    keys: list[bytes] = []
    where: list[int] = []
    known, slow_first, bad_after = types.known, _SLOW_FIRST, _BAD_AFTER_TYPE
    for number, raw in enumerate(lines, first):
        fields = raw.split(b" ", 2)
        # _plain_entry() inlined: this loop runs once per line of big files
        if len(fields) == 3:
            hosts, kind, rest = fields
            ok = known.get(kind)
            if ok is None:
                ok = types.ok(kind)
            if ok and hosts and hosts[0] not in slow_first and rest[:1] not in bad_after \
                    and b"\t" not in hosts and b"\0" not in raw:
                if hosts[0] == 0x7C:  # "|": already hashed
                    out.append(raw)
                    continue
                if b"*" not in hosts and b"?" not in hosts and b"!" not in hosts:
                    rawkey = raw[len(hosts) + 1:]
                    parts = hosts.lower().split(b",")
                    if b"" in parts:  # a list stops at its first empty name, as in C
                        parts = parts[:parts.index(b"")]
                    for name in parts:
                        names.append(name)
                        keys.append(rawkey)
                        where.append(len(out))
                        out.append(b"")
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
    if names:
        result.hashed_names = True
        prefixes = _hashed_prefixes(names)
        for at, start, rawkey in zip(where, range(0, 61 * len(names), 61), keys, strict=True):
            out[at] = prefixes[start:start + 61] + rawkey
    return result


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError:
        return b""
    except OSError as exc:
        raise FileError.from_os(exc) from None


def _split(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def read_lines(path: str | os.PathLike[str]) -> list[bytes]:
    """The file's lines without their "\\n" (a directory reads as empty, as in C)."""
    return _split(_read(path))


def scan_file(
    path: str | os.PathLike[str],
    host: str | None = None,
    *,
    want_match: bool = False,
    parse_key: bool = False,
) -> Iterator[HostLine]:
    """keytools.known_hosts.scan over a file; with ``want_match`` most lines are ruled
    out without being parsed (a clear name cannot match unless it contains the host)."""
    data = _read(path)
    if want_match and host is not None:
        found = None
        if len(data) >= BULK_BYTES:
            from keytools.known_hosts_bulk import bulk_lines

            found = bulk_lines(data, host, False, len(data) >= PARALLEL_BYTES)
        if found is None:
            yield from _scan_lines(_split(data), host, parse_key)
            return
        match = host_matcher(host)
        for number, _, raw in found:
            line = _parse(_decode(raw), number, match, True, parse_key)
            if line is not None:
                yield line
        return
    matcher = host_matcher(host) if host is not None else None
    for number, raw in enumerate(_split(data), 1):
        line = _parse(_decode(raw), number, matcher, want_match, parse_key)
        if line is not None:
            yield line


def delete_host_file(path: str | os.PathLike[str], host: str) -> ByteRewrite:
    """keytools.known_hosts_edit.delete_host_lines over a file (ssh-keygen -R)."""
    data = _read(path)
    found = None
    if len(data) >= BULK_BYTES:
        from keytools.known_hosts_bulk import bulk_lines

        found = bulk_lines(data, host, True, len(data) >= PARALLEL_BYTES)
    if found is None:
        return _delete_lines(_split(data), host)
    result = ByteRewrite()
    matcher = host_matcher(host)
    pieces: list[bytes] = []
    kept = 0
    for number, start, raw in found:
        line = _parse(_decode(raw), number, matcher, False, False)
        if line is None:  # pragma: no cover - _parse gives every line without want_match
            continue
        if line.status is LineStatus.ENTRY and line.matched and line.marker is Marker.NONE:
            result.found.append(line)
            pieces.append(data[kept:start])
            kept = start + len(raw) + 1
        elif line.status is LineStatus.INVALID:
            result.invalid.append(line)
    pieces.append(data[kept:])
    blob = b"".join(pieces)
    result.blob = blob if not blob or blob.endswith(b"\n") else blob + b"\n"
    return result


def hash_file(path: str | os.PathLike[str]) -> ByteRewrite:
    """keytools.known_hosts_edit.hash_host_lines over a file (ssh-keygen -H); a big
    file is hashed in bulk, half here and half in a forked child."""
    data = _read(path)
    if len(data) >= BULK_BYTES and b"\0" not in data:
        from keytools.known_hosts_bulk import hash_bulk

        result = hash_bulk(data, len(data) >= PARALLEL_BYTES)
        if result is not None:
            return result
    return _hash_lines(_split(data))
