"""The escape-sequence state machine against a direct, byte-at-a-time transcription of
ssh's clientloop.c process_escapes, on chosen and on random input split anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.escape import (
    NO_ESCAPE,
    Action,
    BadEscapeChar,
    Escape,
    EscapeFilter,
    echo_text,
    help_text,
    log_level_text,
    parse_escape_char,
)

_CMDS = {".": Action.DISCONNECT, "\x1a": Action.SUSPEND, "B": Action.BREAK, "R": Action.REKEY,
         "V": Action.LESS_VERBOSE, "v": Action.MORE_VERBOSE, "?": Action.HELP, "#": Action.LIST,
         "&": Action.BACKGROUND, "C": Action.COMMAND_LINE}


def reference(data: bytes, esc: int = 0x7E) -> list[bytes | Escape]:
    """process_escapes, one character at a time, as ssh writes it."""
    out: list[bytes | Escape] = []
    buf = bytearray()
    last_was_cr, pending = True, False

    def flush() -> None:
        if buf:
            out.append(bytes(buf))
            buf.clear()

    for ch in data:
        if pending:
            pending = False
            action = _CMDS.get(chr(ch))
            if action is not None:
                flush()
                out.append(Escape(action, esc))
                continue
            if ch != esc:
                buf.append(esc)
        elif last_was_cr and ch == esc:
            pending = True
            continue
        last_was_cr = ch in (0x0A, 0x0D)
        buf.append(ch)
    flush()
    return out


def run(data: bytes, cuts: list[int] | None = None, esc: int = 0x7E) -> list[bytes | Escape]:
    f = EscapeFilter(esc)
    pieces, prev = [], 0
    for cut in sorted(cuts or []):
        pieces.append(data[prev:cut])
        prev = cut
    pieces.append(data[prev:])
    got: list[bytes | Escape] = []
    for piece in pieces:
        for item in f.feed(piece):
            if isinstance(item, bytes) and got and isinstance(got[-1], bytes):
                got[-1] += item
            else:
                got.append(item)
    return got


@pytest.mark.parametrize(("typed", "expected"), [
    (b"~.", [Escape(Action.DISCONNECT, 0x7E)]),
    (b"ls\r~.", [b"ls\r", Escape(Action.DISCONNECT, 0x7E)]),
    (b"a~.", [b"a~."]),  # not at line start
    (b"~~x", [b"~x"]),  # literal escape character
    (b"~x", [b"~x"]),  # unknown command: both characters go out
    (b"\n~?~#", [b"\n", Escape(Action.HELP, 0x7E), Escape(Action.LIST, 0x7E)]),
    (b"~~~.", [b"~~."]),  # after "~~" the line has started
    (b"~\x1a", [Escape(Action.SUSPEND, 0x7E)]),
    (b"~\r~.", [b"~\r", Escape(Action.DISCONNECT, 0x7E)]),
])
def test_sequences(typed: bytes, expected: list[bytes | Escape]) -> None:
    assert run(typed) == expected == reference(typed)


def test_split_across_reads() -> None:
    assert run(b"echo\r~.", cuts=[5, 6]) == [b"echo\r", Escape(Action.DISCONNECT, 0x7E)]


def test_plain_data_passes_in_one_piece() -> None:
    data = b"x" * 100000 + b"\n~y" + b"z" * 1000
    assert EscapeFilter().feed(data) == [data]


def test_none_disables_escapes() -> None:
    assert EscapeFilter(NO_ESCAPE).feed(b"~.") == [b"~."]


def test_disabled_action_is_literal() -> None:
    f = EscapeFilter(disabled=frozenset({Action.BACKGROUND}))
    assert f.feed(b"~&") == [b"~&"]


@given(st.lists(st.sampled_from([b"~", b".", b"\r", b"\n", b"a", b"?", b"#", b"~~", b"V"]),
                max_size=40), st.lists(st.integers(0, 60), max_size=5))
def test_same_as_ssh(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    assert run(data, [c for c in cuts if c <= len(data)]) == reference(data)


@given(st.binary(max_size=60))
def test_same_as_ssh_other_escape_char(data: bytes) -> None:
    assert run(data, esc=0x1D) == reference(data, esc=0x1D)


def test_parse_escape_char() -> None:
    assert parse_escape_char("~") == 0x7E
    assert parse_escape_char("^]") == 0x1D
    assert parse_escape_char("none") == NO_ESCAPE
    with pytest.raises(BadEscapeChar):
        parse_escape_char("ab")


def test_texts() -> None:
    text = help_text(0x7E)
    assert text.startswith("~?\r\nSupported escape sequences:\r\n ~.   - terminate connection")
    assert " ~V/v - decrease/increase verbosity (LogLevel)\r\n" in text
    assert " ~^Z  - suspend ssh\r\n" in text and "~C" not in text
    assert text.endswith(" ~~   - send the escape character by typing it twice\r\n"
                         "(Note that escapes are only recognized immediately after newline.)\r\n")
    assert echo_text(Escape(Action.DISCONNECT, 0x7E)) == ""
    assert echo_text(Escape(Action.BREAK, 0x7E)) == "~B\r\n"
    assert log_level_text(Escape(Action.LESS_VERBOSE, 0x7E), "FATAL") == "~V [LogLevel FATAL]\r\n"
