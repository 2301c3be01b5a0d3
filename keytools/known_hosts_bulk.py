"""Bulk scans of big known_hosts files for keytools.known_hosts_fast (-F, -R, -H).

Regular expressions and ``bytes.find`` over the whole text pick out the few lines
that can matter (those holding the host name or a wildcard, markers, lines with
leading blanks, and hashed names whose HMAC matches); only those go through the line
parser. Each scan first checks that every line is of a form it understands, and
returns None otherwise (the caller then reads the file line by line).

The HMAC-SHA1 of each hashed name is most of the work, so a forked child process
takes the second half of the file (ssh-keygen uses one core; this uses two when
``os.fork`` exists, two CPUs may run the process and no other thread runs) and sends
back only what its half found, marshalled.
"""

from __future__ import annotations

import binascii
import os
import re
import sys
from collections.abc import Callable
from functools import partial
from itertools import accumulate, chain, repeat
from operator import add
from typing import TypeVar

from keytools.hostmatch import HASH_LEN, has_wildcard
from keytools.known_hosts import LineStatus, _parse, key_type_pattern
from keytools.known_hosts_fast import (
    _SE,
    ByteRewrite,
    _decode,
    _hash_lines,
    _hashed_prefixes,
    _hmacs,
)
from keytools.match import ascii_lower

A = TypeVar("A")
B = TypeVar("B")

#: a line starting with "|"; the group holds "salt|hash" of a hashed name as ssh-keygen
#: writes it ("|1|salt|hash "), else it is empty
_STD_HASHED = re.compile(rb"\n\|(?:1\|([A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}=) )?")
_PAD_AS_A = bytes.maketrans(b"=", b"A")
#: lines the bulk scan hands to the parser whatever they hold: leading blanks, markers
_LEADS = re.compile(rb"\n[ \t@]")
#: comment and blank lines (kept as they are by -R and -H)
_QUIET = re.compile(rb"\n(?=[#\n])")
_REGULAR: re.Pattern[bytes] | None = None
_CLEAR: re.Pattern[bytes] | None = None


def _can_fork() -> bool:
    """A second process helps: fork exists, two CPUs may run us, no other thread runs."""
    if not hasattr(os, "fork"):
        return False
    affinity = getattr(os, "sched_getaffinity", None)
    if (len(affinity(0)) if affinity is not None else os.cpu_count() or 1) < 2:
        return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _split_run(first: Callable[[], A], second: Callable[[], B], parallel: bool) -> tuple[A, B]:
    """``(first(), second())``; with ``parallel`` a forked child computes ``second()``
    and sends it back marshalled (results are lists, tuples, ints and bytes). If the
    child fails, ``second()`` runs here."""
    if not parallel or not _can_fork():
        return first(), second()
    import marshal

    try:
        rfd, wfd = os.pipe()
    except OSError:
        return first(), second()
    try:
        pid = os.fork()
    except OSError:
        os.close(rfd)
        os.close(wfd)
        return first(), second()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow forks)
        code = 1
        try:
            os.close(rfd)
            view = memoryview(marshal.dumps(second()))  # type: ignore[arg-type]
            while view:
                view = view[os.write(wfd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    payload = b""
    try:
        mine = first()
    finally:
        with open(rfd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
    if status == 0 and payload:
        try:
            theirs: B = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):  # pragma: no cover - a broken child
            pass
        else:
            return mine, theirs
    return mine, second()  # pragma: no cover - a broken child


def _halves(data: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two ranges ``[lo, hi)`` after the first line, each starting at a newline: a range
    covers the lines that start just after its newlines."""
    start = data.find(b"\n")
    if start < 0:
        start = len(data)
    mid = data.find(b"\n", start + (len(data) - start) // 2)
    if mid < 0:
        mid = len(data)
    return (start, mid), (mid, len(data))


def _lines_in(data: bytes, lo: int, hi: int) -> int:
    """How many lines start in the range (a newline that ends the file starts none)."""
    count = data.count(b"\n", lo, hi)
    return count - 1 if hi == len(data) and data.endswith(b"\n") and count else count


def _hashed_matches(data: bytes, lo: int, hi: int, name: bytes,
                    items: list[bytes]) -> list[int]:
    """Starts of the lines in the range whose standard hashed name may be ``name``.

    ``items`` are ``salt|hash`` texts. With each "=" read as "A", one base64 decode
    (which skips the "|") gives 42 bytes per item: salt, a spare byte, hash, a spare
    byte. The HMACs are compared with the stored hashes a byte column at a time, as
    big integers; a zero byte of the combined difference marks a match (a hash text
    whose spare bits are not zero may pass here: the parser has the last word).
    """
    count = len(items)
    raw = binascii.a2b_base64(b"".join(items).translate(_PAD_AS_A))
    if len(raw) != 42 * count:  # pragma: no cover - the pattern guarantees the length
        raise AssertionError("hashed names decoded to an unexpected length")
    salts = [raw[i:i + HASH_LEN] for i in range(0, 42 * count, 42)]
    digests = b"".join(_hmacs(salts, repeat(name)))
    diff = 0
    for j in range(HASH_LEN):
        diff |= int.from_bytes(raw[21 + j::42], "little") ^ \
            int.from_bytes(digests[j::HASH_LEN], "little")
    flags = diff.to_bytes(count, "little")
    starts: list[int] = []
    matched: set[bytes] = set()
    i = flags.find(0)
    while i >= 0:
        matched.add(items[i])
        i = flags.find(0, i + 1)
    for item in matched:
        needle = b"\n|1|" + item + b" "
        pos = data.find(needle, lo, hi)
        while pos >= 0:
            starts.append(pos + 1)
            pos = data.find(needle, pos + 1, hi)
    return starts


def _regular_pattern() -> re.Pattern[bytes]:
    """A line _plain_entry() accepts, with a clear or a standard hashed host field."""
    global _REGULAR
    if _REGULAR is None:
        _REGULAR = re.compile(
            rb"\n(?=(?:[^ \t#@\r\n\0|][^ \t\n\0]*"
            rb"|\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}=) "
            + key_type_pattern() + rb" [^ \t#\r\n\0])")
    return _REGULAR


Found = tuple[list[int], list[int], int]


def _candidates(data: bytes, lo: int, hi: int, name: bytes, lowered: bytes,
                check: bool) -> Found | None:
    """The lines in ``[lo, hi)`` the parser must see when looking for ``name``: those
    holding it (in any case) or a wildcard, marker lines, lines with leading blanks,
    and hashed names of ``name``. Returns their starts in order, how many newlines
    precede each one in the range, and the range's newline count. None when a line
    starting with "|" is not a standard hashed name or, with ``check``, when some line
    is not one _plain_entry() accepts, a comment or one of those (the caller then reads
    the file line by line)."""
    items = _STD_HASHED.findall(data, lo, hi)
    if b"" in items:
        return None
    leads = [m.start() + 1 for m in _LEADS.finditer(data, lo, hi)]
    if check:
        regular = len(_regular_pattern().findall(data, lo, hi))
        quiet = len(_QUIET.findall(data, lo, hi))
        if regular + quiet + len(leads) != _lines_in(data, lo, hi):
            return None
    starts = _hashed_matches(data, lo, hi, name, items) if items else []
    starts += leads
    lower = data[lo:hi].lower()  # lower[0] is the range's first newline
    for needle in (lowered, b"*", b"?"):
        pos = lower.find(needle)
        while pos >= 0:
            starts.append(lo + lower.rfind(b"\n", 0, pos) + 1)
            end = lower.find(b"\n", pos)
            if end < 0:
                break
            pos = lower.find(needle, end)
    starts = sorted(set(starts))
    before: list[int] = []
    newlines, prev = 0, lo
    for start in starts:
        newlines += data.count(b"\n", prev, start)
        before.append(newlines)
        prev = start
    return starts, before, newlines + data.count(b"\n", prev, hi)


def bulk_lines(data: bytes, host: str, check: bool,
               parallel: bool) -> list[tuple[int, int, bytes]] | None:
    """(number, start, line) of every line the parser must see, in order; None when the
    file must be read line by line."""
    lowered = ascii_lower(host).encode("utf-8", _SE)
    name = host.encode("utf-8", _SE)
    if not lowered or b"\n" in lowered or (check and b"\0" in data):
        return None
    (lo1, hi1), (lo2, hi2) = _halves(data)
    one, two = _split_run(partial(_candidates, data, lo1, hi1, name, lowered, check),
                          partial(_candidates, data, lo2, hi2, name, lowered, check),
                          parallel)
    if one is None or two is None:
        return None
    # line 1 (before the first range), then each range's lines after the newlines
    # that precede them in the file
    numbered = [(1, 0)] if data else []
    numbered += [(1 + n, start) for start, n in zip(one[0], one[1], strict=True)]
    numbered += [(1 + one[2] + n, start) for start, n in zip(two[0], two[1], strict=True)]
    out: list[tuple[int, int, bytes]] = []
    for number, start in numbered:
        end = data.find(b"\n", start)
        out.append((number, start, data[start:] if end < 0 else data[start:end]))
    return out


def _clear_pattern() -> re.Pattern[bytes]:
    """A line ssh-keygen -H hashes: _plain_entry() accepts it, and its host field is
    clear text without wildcards. Groups: the host field, and the rest of the line."""
    global _CLEAR
    if _CLEAR is None:
        _CLEAR = re.compile(rb"\n([^ \t#@\r\n\0|*?!][^ \t\n\0*?!]*) ("
                            + key_type_pattern() + rb" [^ \t#\r\n\0][^\n]*)")
    return _CLEAR


Hashed = tuple[bytes, list[int], list[int], int, bool]


def _hash_range(data: bytes, lo: int, hi: int) -> Hashed | None:
    """-H over the lines starting in ``[lo, hi)`` of a file without NUL bytes, each line
    preceded by its newline: (new text, starts of lines that may hold wildcards, the
    newlines before each in the range, the range's newline count, names were hashed).
    None when a line is not one _plain_entry() accepts or a comment, or a host list
    holds an empty name (the caller then goes line by line).

    ``re.split`` on the hashed lines' "\\nhosts key" leaves, in order: the text before,
    then per such line its hosts, its key text and the untouched lines after it.
    """
    regular = len(_regular_pattern().findall(data, lo, hi))
    if regular + len(_QUIET.findall(data, lo, hi)) != _lines_in(data, lo, hi):
        return None
    parts = _clear_pattern().split(data[lo:hi])
    hosts, keys, after = parts[1::3], parts[2::3], parts[3::3]
    names = b",".join(hosts).lower().split(b",")
    if b"" in names:
        return None
    text = [parts[0]]
    if hosts:
        counts = [host.count(b",") + 1 for host in hosts]
        # every name's line is "\n" + prefix + key text; the untouched lines after a
        # hashed line follow the line of its last name
        tails = list(chain.from_iterable(map(repeat, keys, counts)))
        for end, tail in zip(accumulate(counts), map(add, keys, after), strict=True):
            tails[end - 1] = tail
        prefixes = _hashed_prefixes(names, b"\n")
        heads = [prefixes[i:i + 62] for i in range(0, 62 * len(names), 62)]
        text += chain.from_iterable(zip(heads, tails, strict=True))
    starts: list[int] = []
    for wild in (b"*", b"?", b"!"):
        pos = data.find(wild, lo, hi)
        while pos >= 0:
            starts.append(data.rfind(b"\n", lo, pos) + 1)
            end = data.find(b"\n", pos, hi)
            pos = -1 if end < 0 else data.find(wild, end, hi)
    starts = sorted(set(starts))
    before: list[int] = []
    newlines, prev = 0, lo
    for start in starts:
        newlines += data.count(b"\n", prev, start)
        before.append(newlines)
        prev = start
    return (b"".join(text), starts, before, newlines + data.count(b"\n", prev, hi),
            bool(hosts))


def hash_bulk(data: bytes, parallel: bool) -> ByteRewrite | None:
    """hash_file over a big file without NUL bytes, in two halves (see _hash_range)."""
    (lo1, hi1), (lo2, hi2) = _halves(data)
    one, two = _split_run(partial(_hash_range, data, lo1, hi1),
                          partial(_hash_range, data, lo2, hi2), parallel)
    if one is None or two is None:
        return None
    result = _hash_lines([data[:lo1]])
    for line in (*result.invalid, *result.wildcard):
        if line.number != 1:  # pragma: no cover - one line was given
            raise AssertionError("first line misnumbered")
    text = b"".join((one[0], two[0]))
    head = b"\n".join(result.lines)
    blob = head + text if result.lines else text[1:]
    result.lines = []
    result.blob = blob if not blob or blob.endswith(b"\n") else blob + b"\n"
    result.hashed_names = result.hashed_names or one[4] or two[4]
    for offset, (_, starts, before, _, _) in ((1, one), (1 + one[3], two)):
        for start, newlines in zip(starts, before, strict=True):
            end = data.find(b"\n", start)
            raw = data[start:] if end < 0 else data[start:end]
            parsed = _parse(_decode(raw), offset + newlines, None, False, False)
            if parsed is not None and parsed.status is LineStatus.ENTRY and \
                    has_wildcard(parsed.hosts):
                result.wildcard.append(parsed)
    return result


