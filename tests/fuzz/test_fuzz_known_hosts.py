"""Property tests of the known_hosts parser, host patterns and rewrites.

Arbitrary lines give a HostLine (comment, entry or invalid with a reason) and never an
exception; lookups and rewrites of arbitrary files never fail either; the glob matcher
agrees with a regular-expression reference; hashed names always re-match.
"""

from __future__ import annotations

import os
import re
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from keytools.hostmatch import (
    hash_host,
    match_hashed,
    match_host_field,
)
from keytools.known_hosts import HostKeyStatus, LineStatus, check_host_key, scan
from keytools.known_hosts_edit import delete_host_lines, hash_host_lines
from keytools.known_hosts_fast import delete_host_file, hash_file, scan_file
from keytools.match import match_pattern, match_pattern_list
from keytools.public import parse_public_line
from tests.helpers import TESTDATA

CORPUS = (TESTDATA / "hostkeys" / "known_hosts").read_text().splitlines(keepends=True)
KEY = parse_public_line((TESTDATA / "hostkeys" / "ed25519_1.pub").read_text())[0]

_pieces = st.sampled_from([
    " ", "\t", "#", "@", "@revoked", "@cert-authority", "|1|", "|", ",", "!", "*", "?",
    "[", "]", ":22", "host", "HOST", "example.com", "ssh-ed25519", "ssh-rsa", "ED25519",
    "AAAAC3NzaC1lZDI1NTE5AAAAIK9ks7jkua5YWIwByRnnnc6UPJQWI75O0e/UJdPYU1JI", "AAAA", "=",
    "\r", "\0", "1024", "é",
])
_lines = st.one_of(
    st.text(max_size=200),
    st.lists(_pieces, max_size=12).map("".join),
    st.sampled_from(CORPUS),
)
_hosts = st.one_of(st.sampled_from(["host", "sisyphus.example.com", "192.0.2.1", "[h]:2"]),
                   st.text(max_size=30))


@given(st.lists(_lines, max_size=20), _hosts, st.booleans(), st.booleans())
def test_scan_never_raises(lines: list[str], host: str, want_match: bool,
                           parse_key: bool) -> None:
    raw = [line + "\n" for line in lines]
    for parsed in scan(raw, host, want_match=want_match, parse_key=parse_key):
        assert 1 <= parsed.number <= len(raw)
        assert "\n" not in parsed.text and "\0" not in parsed.text
        if parsed.status is LineStatus.INVALID:
            assert parsed.error
        elif parsed.status is LineStatus.ENTRY:
            assert parsed.hosts and parsed.key_text
            assert (parsed.key is not None) == parse_key
        if want_match:
            assert parsed.status is not LineStatus.COMMENT


@given(st.lists(_lines, max_size=20), _hosts)
def test_lookups_and_rewrites_never_raise(lines: list[str], host: str) -> None:
    raw = [line + "\n" for line in lines]
    result = check_host_key(raw, host, 22, KEY)
    assert isinstance(result.status, HostKeyStatus)
    deleted = delete_host_lines(raw, host)
    hashed = hash_host_lines(raw)
    # -R keeps every line it did not remove; -H keeps every line it did not hash
    assert len(deleted.lines) + len(deleted.found) == len(raw)
    assert len(hashed.lines) >= len(raw) - sum(1 for r in raw if r.lstrip(" \t")[:1] == ",")


_file_lines = st.one_of(
    _lines,
    st.sampled_from([f"host{i}.example.com {KEY.openssh()}" for i in range(3)]),
    st.builds(lambda name, sep, pre: f"{pre}{hash_host(name)}{sep}{KEY.openssh()} c",
              st.sampled_from(["host", "host0.example.com", "HOST", "[h]:2"]),
              st.sampled_from([" ", "\t", "  ", " \t"]),
              st.sampled_from(["", " ", "@revoked ", "@cert-authority ", "\0"])),
    st.builds(lambda name, cut: hash_host(name)[:cut] + f" {KEY.openssh()}",
              st.sampled_from(["host", "HOST"]), st.integers(0, 62)),
    st.builds(lambda h, t: f"{h} {t} AAAA", st.sampled_from(["HOST", "host,x", "*", "h\0st"]),
              st.sampled_from(["ssh-ed25519", "ED25519", "ssh-rsa", "x", "ssh-ed25519\t"])),
)


@given(st.lists(_file_lines, max_size=15), _hosts, st.booleans())
def test_fast_file_paths_agree_with_the_line_parser(lines: list[str], host: str,
                                                    newline_at_end: bool) -> None:
    """The byte-level fast paths of big files give what the line-by-line parser gives."""
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "known_hosts")
        with open(path, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
        for parse_key in (False, True):
            assert list(scan_file(path, host, want_match=True, parse_key=parse_key)) == \
                list(scan(raw, host, want_match=True, parse_key=parse_key))
        slow, fast = delete_host_lines(raw, host), delete_host_file(path, host)
        assert [t.encode("utf-8", "surrogateescape") for t in slow.lines] == fast.lines
        assert (slow.found, slow.invalid) == (fast.found, fast.invalid)
        slow_h, fast_h = hash_host_lines(raw), hash_file(path)
        assert len(slow_h.lines) == len(fast_h.lines)
        assert [line.number for line in slow_h.invalid] == [line.number for line in fast_h.invalid]
        assert [line.number for line in slow_h.wildcard] == \
            [line.number for line in fast_h.wildcard]
        assert slow_h.hashed_names == fast_h.hashed_names
        for mine, other in zip(fast_h.lines, slow_h.lines, strict=True):
            if not mine.startswith(b"|1|") or other.encode("utf-8", "surrogateescape") == mine:
                assert mine == other.encode("utf-8", "surrogateescape")
            else:
                assert mine.split(b" ", 1)[1] == other.encode("utf-8", "surrogateescape")\
                    .split(b" ", 1)[1]


def _reference(text: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


_alpha = st.text(alphabet="ab*?.", max_size=12)


@given(st.text(alphabet="ab.", max_size=12), _alpha)
def test_match_pattern_agrees_with_reference(text: str, pattern: str) -> None:
    assert match_pattern(text, pattern) is _reference(text, pattern)


@given(st.text(alphabet="ab.", max_size=8), st.lists(_alpha, min_size=1, max_size=4),
       st.lists(st.booleans(), min_size=4, max_size=4))
def test_pattern_lists(text: str, patterns: list[str], negate: list[bool]) -> None:
    joined = ",".join(("!" if neg else "") + p for p, neg in zip(patterns, negate,
                                                                 strict=False))
    result = match_pattern_list(text, joined, False)
    # C reads sub-patterns up to the end of the string: none after a final comma, and
    # none at all in an empty list
    subs = joined.split(",") if joined else []
    if joined.endswith(","):
        subs.pop()
    negative = any(s.startswith("!") and _reference(text, s[1:]) for s in subs)
    positive = any(not s.startswith("!") and _reference(text, s) for s in subs)
    assert result == (-1 if negative else 1 if positive else 0)


@given(st.text(max_size=40), st.text(max_size=40))
def test_hashed_names_rematch(name: str, other: str) -> None:
    field = hash_host(name)
    assert match_hashed(name, field) is True
    assert match_host_field(name, field) is True
    assert match_hashed(other, field) is (other == name)


@given(st.text(max_size=60))
def test_malformed_hashes_are_reported_not_raised(field: str) -> None:
    assert match_hashed("h", "|1|" + field) in (True, False, None)
