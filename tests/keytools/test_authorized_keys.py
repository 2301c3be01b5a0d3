"""authorized_keys lines: options as sshd parses them, and from= matching."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keytools.authorized_keys import (
    AuthorizedKey,
    match_from,
    parse_file,
    parse_line,
    parse_options,
)
from keytools.errors import InvalidFormat, SshError
from tests.helpers import TESTDATA

KEY = (TESTDATA / "sshkey" / "ed25519_1.pub").read_text().split()
KEY_TEXT = f"{KEY[0]} {KEY[1]}"


def test_plain_key_line() -> None:
    entry = parse_line(f"  {KEY_TEXT} me@host\n", 4)
    assert entry is not None
    assert entry.key.key_type == "ssh-ed25519"
    assert (entry.comment, entry.line) == ("me@host", 4)
    assert entry.options.permit_pty and entry.options.command is None


def test_blank_and_comment_lines() -> None:
    assert parse_line("") is None
    assert parse_line("   # nothing\n") is None


def test_options() -> None:
    entry = parse_line(f'command="echo \\"hi\\", there",from="10.0.0.0/8,!10.1.*",'
                       f'no-pty,environment="A=b",principals="p1,p2" {KEY_TEXT}')
    assert entry is not None
    opts = entry.options
    assert opts.command == 'echo "hi", there'
    assert opts.from_patterns == "10.0.0.0/8,!10.1.*"
    assert opts.principals == "p1,p2"
    assert not opts.permit_pty and opts.permit_port_forwarding
    assert opts.environment == ("A=b",)


def test_restrict_then_permit() -> None:
    opts, rest = parse_options(f"restrict,pty {KEY_TEXT}")
    assert opts.restricted and opts.permit_pty
    assert not (opts.permit_port_forwarding or opts.permit_agent_forwarding
                or opts.permit_x11_forwarding or opts.permit_user_rc)
    assert rest.strip() == KEY_TEXT


def test_cert_authority_and_case() -> None:
    opts, _ = parse_options("Cert-Authority,NO-PTY x")
    assert opts.cert_authority and not opts.permit_pty


@pytest.mark.parametrize("text", [
    'command="unterminated x', "bogus-option x", 'command=x y', "no-pty, x",
    'command="a",command="b" x', 'expiry-time="2020" x', 'environment="NOEQUALS" x',
])
def test_bad_options(text: str) -> None:
    with pytest.raises(InvalidFormat):
        parse_options(text)


def test_expiry_time() -> None:
    opts, _ = parse_options('expiry-time="20300101Z",expiry-time="20250101Z" x')
    assert opts.expiry_time == 1735689600  # the earlier one, 2025-01-01 UTC


def test_parse_file_reports_bad_lines_with_numbers() -> None:
    entries = list(parse_file(f"# c\n{KEY_TEXT}\nbogus {KEY_TEXT}\n"))
    assert isinstance(entries[0], AuthorizedKey) and entries[0].line == 2
    assert isinstance(entries[1], InvalidFormat) and "line 3" in entries[1].message


@pytest.mark.parametrize(("address", "patterns", "expected"), [
    ("127.0.0.1", "10.0.0.0/8", False),
    ("10.2.3.4", "10.0.0.0/8", True),
    ("10.1.3.4", "!10.1.*,10.0.0.0/8", False),
    ("127.0.0.1", "127.0.0.*", True),
    ("::1", "::1", True),
    ("192.168.1.1", "192.168.0.0/33", False),
])
def test_match_from(address: str, patterns: str, expected: bool) -> None:
    assert match_from(address, patterns) is expected


@given(st.text(max_size=200))
def test_arbitrary_lines_give_an_entry_or_our_error(text: str) -> None:
    try:
        entry = parse_line(text)
    except SshError:
        return
    assert entry is None or isinstance(entry, AuthorizedKey)


@given(st.text(alphabet='abcdefnoptmrsx-=",\\ ', max_size=60))
def test_option_soup(text: str) -> None:
    with contextlib.suppress(SshError):
        entry = parse_line(text + " " + KEY_TEXT)
        assert entry is None or isinstance(entry, AuthorizedKey)
