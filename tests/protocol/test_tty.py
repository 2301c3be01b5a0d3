"""protocol/tty.py on a real pseudo-terminal pair: the RFC 4254 section 8 mode encoding,
the pty-req/window-change payloads, raw mode and its restoration."""

from __future__ import annotations

import os
import termios
from collections.abc import Iterator
from typing import Any

import pytest

from keytools.wire import Reader
from protocol.tty import (
    TTY_OP_END,
    TTY_OP_ISPEED,
    TTY_OP_OSPEED,
    RawMode,
    WindowSize,
    encode_modes,
    get_attrs,
    pty_request,
    raw_attrs,
    set_window_size,
    window_change,
    window_size,
)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        os.close(master)
        os.close(slave)


def decode(modes: bytes) -> dict[int, int]:
    r = Reader(modes)
    found: dict[int, int] = {}
    while (opcode := r.byte()) != TTY_OP_END:
        found[opcode] = r.uint32()
    r.end()
    return found


def test_modes_follow_the_terminal(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    attrs = termios.tcgetattr(slave)
    attrs[6][termios.VERASE] = b"\x08"
    attrs[6][termios.VINTR] = b"\x02"
    attrs[6][termios.VEOL] = b"\x00"  # disabled
    attrs[3] &= ~termios.ECHOE
    attrs[0] |= termios.IXANY
    attrs[4] = attrs[5] = termios.B9600
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    modes = decode(encode_modes(get_attrs(slave)))
    assert modes[TTY_OP_ISPEED] == modes[TTY_OP_OSPEED] == 9600
    assert (modes[3], modes[1], modes[6]) == (8, 2, 255)  # VERASE, VINTR, VEOL disabled
    assert (modes[54], modes[39], modes[53]) == (0, 1, 1)  # ECHOE off, IXANY on, ECHO on
    assert modes[91] == 1  # CS8


def test_no_terminal_gives_empty_modes() -> None:
    assert encode_modes(None) == bytes((TTY_OP_END,))
    r, w = os.pipe()
    try:
        assert get_attrs(r) is None
        assert window_size(r) == WindowSize()
    finally:
        os.close(r)
        os.close(w)


def test_payloads(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    set_window_size(slave, WindowSize(132, 43, 640, 480))
    size = window_size(slave)
    assert size == WindowSize(132, 43, 640, 480)
    r = Reader(pty_request("xterm", size, b"\0"))
    assert (r.ascii(), r.uint32(), r.uint32(), r.uint32(), r.uint32(), r.string()) == \
        ("xterm", 132, 43, 640, 480, b"\0")
    r.end()
    r = Reader(window_change(size))
    assert [r.uint32() for _ in range(4)] == [132, 43, 640, 480]
    r.end()


def test_raw_attrs_as_ssh() -> None:
    attrs: list[Any] = [termios.ICRNL | termios.IXON, termios.OPOST | termios.ONLCR, termios.CS8,
             termios.ISIG | termios.ICANON | termios.ECHO | termios.IEXTEN | termios.ECHOCTL,
             termios.B38400, termios.B38400, [b"\0"] * 32]
    raw = raw_attrs(attrs)
    assert raw[0] == termios.IGNPAR
    assert raw[1] == termios.ONLCR  # OPOST off
    assert raw[3] == termios.ECHOCTL
    assert raw[6][termios.VMIN] == 1 and raw[6][termios.VTIME] == 0
    assert attrs[6][termios.VMIN] == b"\0"  # the original is untouched


def test_raw_mode_is_restored_on_error(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    before = termios.tcgetattr(slave)
    mode = RawMode(slave)
    with pytest.raises(RuntimeError), mode:
        assert mode.active
        assert not termios.tcgetattr(slave)[3] & termios.ICANON
        raise RuntimeError("boom")
    assert not mode.active
    assert termios.tcgetattr(slave) == before
    mode.leave()  # idempotent


def test_raw_mode_on_a_pipe_does_nothing() -> None:
    r, w = os.pipe()
    try:
        mode = RawMode(r)
        assert not mode.enter()
        assert not mode.active
    finally:
        os.close(r)
        os.close(w)
