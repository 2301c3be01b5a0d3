"""The local terminal for an interactive session: the "pty-req" payload (TERM, window
size, RFC 4254 section 8 encoded terminal modes), raw mode as ssh's sshtty.c sets it,
and the window size for "window-change".

Raw mode is entered with ``RawMode`` and always left again: on a normal end, an
exception, a signal that ends pyssh (the session driver turns SIGTERM/SIGINT/SIGHUP into
an orderly exit), and at interpreter exit (``atexit``) as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import struct
import sys
import termios
from dataclasses import dataclass
from typing import Any

from keytools.wire import Writer

TTY_OP_END = 0
TTY_OP_ISPEED = 128
TTY_OP_OSPEED = 129
#: OpenSSH encodes a disabled special character (_POSIX_VDISABLE) as 255.
VDISABLE_WIRE = 255

#: (termios name, opcode) for the special characters, in OpenSSH's ttymodes.h order.
_CHARS = (
    ("VINTR", 1), ("VQUIT", 2), ("VERASE", 3), ("VKILL", 4), ("VEOF", 5), ("VEOL", 6),
    ("VEOL2", 7), ("VSTART", 8), ("VSTOP", 9), ("VSUSP", 10), ("VDSUSP", 11),
    ("VREPRINT", 12), ("VWERASE", 13), ("VLNEXT", 14), ("VFLUSH", 15), ("VSWTCH", 16),
    ("VSTATUS", 17), ("VDISCARD", 18),
)
#: Linux values for flags some Python builds leave out of the termios module.
_LINUX_FALLBACK = {"IUTF8": 0o040000}
#: (termios name, index into the tcgetattr list, opcode), in ttymodes.h order.
_FLAGS = (
    ("IGNPAR", 0, 30), ("PARMRK", 0, 31), ("INPCK", 0, 32), ("ISTRIP", 0, 33),
    ("INLCR", 0, 34), ("IGNCR", 0, 35), ("ICRNL", 0, 36), ("IUCLC", 0, 37), ("IXON", 0, 38),
    ("IXANY", 0, 39), ("IXOFF", 0, 40), ("IMAXBEL", 0, 41), ("IUTF8", 0, 42),
    ("ISIG", 3, 50), ("ICANON", 3, 51), ("XCASE", 3, 52), ("ECHO", 3, 53), ("ECHOE", 3, 54),
    ("ECHOK", 3, 55), ("ECHONL", 3, 56), ("NOFLSH", 3, 57), ("TOSTOP", 3, 58),
    ("IEXTEN", 3, 59), ("ECHOCTL", 3, 60), ("ECHOKE", 3, 61), ("PENDIN", 3, 62),
    ("OPOST", 1, 70), ("OLCUC", 1, 71), ("ONLCR", 1, 72), ("OCRNL", 1, 73), ("ONOCR", 1, 74),
    ("ONLRET", 1, 75),
    ("CS7", 2, 90), ("CS8", 2, 91), ("PARENB", 2, 92), ("PARODD", 2, 93),
)
_IFLAG, _OFLAG, _CFLAG, _LFLAG, _ISPEED, _OSPEED, _CC = range(7)

#: termios speed constant -> bits per second (B38400 -> 38400)
_BAUD = {getattr(termios, name): int(name[1:]) for name in dir(termios)
         if name.startswith("B") and name[1:].isdigit()}

TermAttrs = list[Any]  # the list termios.tcgetattr returns
#: struct winsize, a native C structure of the ioctl (not wire data)
_WINSIZE = struct.Struct("HHHH")


def _constant(name: str) -> int | None:
    value = getattr(termios, name, None)
    if value is None and sys.platform.startswith("linux"):
        value = _LINUX_FALLBACK.get(name)
    return value if isinstance(value, int) else None


def _char_value(cc: object) -> int:
    value = (cc[0] if cc else 0) if isinstance(cc, bytes) else int(cc)  # type: ignore[call-overload]
    return VDISABLE_WIRE if value == 0 else value  # Linux's _POSIX_VDISABLE is NUL


def encode_modes(attrs: TermAttrs | None) -> bytes:
    """The encoded terminal modes string of RFC 4254 section 8 for ``attrs`` (from
    ``termios.tcgetattr``): speeds, special characters, then flags, each opcode with a
    uint32 argument, ended by TTY_OP_END; only TTY_OP_END without a terminal."""
    w = Writer()
    if attrs is not None:
        w.byte(TTY_OP_ISPEED).uint32(_BAUD.get(attrs[_ISPEED], 9600))
        w.byte(TTY_OP_OSPEED).uint32(_BAUD.get(attrs[_OSPEED], 9600))
        cc = attrs[_CC]
        for name, opcode in _CHARS:
            index = _constant(name)
            if index is not None and index < len(cc):
                w.byte(opcode).uint32(_char_value(cc[index]))
        for name, field, opcode in _FLAGS:
            bit = _constant(name)
            if bit is not None:
                w.byte(opcode).uint32(1 if attrs[field] & bit else 0)
    w.byte(TTY_OP_END)
    return w.getvalue()


def get_attrs(fd: int) -> TermAttrs | None:
    """The terminal's attributes, or None if ``fd`` is not a terminal."""
    try:
        return termios.tcgetattr(fd)
    except (termios.error, OSError):
        return None


@dataclass(frozen=True)
class WindowSize:
    cols: int = 0
    rows: int = 0
    xpixel: int = 0
    ypixel: int = 0


def window_size(fd: int) -> WindowSize:
    """The terminal's size; all zero when ``fd`` is not a terminal (as ssh sends it)."""
    try:
        raw = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE.size)
    except OSError:
        return WindowSize()
    rows, cols, xpixel, ypixel = _WINSIZE.unpack(raw)
    return WindowSize(cols, rows, xpixel, ypixel)


def set_window_size(fd: int, size: WindowSize) -> None:
    """TIOCSWINSZ (for tests and for a pty pyssh itself drives)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ,
                _WINSIZE.pack(size.rows, size.cols, size.xpixel, size.ypixel))


def pty_request(term: str, size: WindowSize, modes: bytes) -> bytes:
    """The "pty-req" payload after want-reply (RFC 4254 section 6.2)."""
    return (Writer().string(term).uint32(size.cols).uint32(size.rows).uint32(size.xpixel)
            .uint32(size.ypixel).string(modes).getvalue())


def window_change(size: WindowSize) -> bytes:
    """The "window-change" payload (RFC 4254 section 6.7)."""
    return (Writer().uint32(size.cols).uint32(size.rows).uint32(size.xpixel)
            .uint32(size.ypixel).getvalue())


def raw_attrs(attrs: TermAttrs) -> TermAttrs:
    """ssh's enter_raw_mode: no echo, no line editing, no signals, no output processing."""
    new = [*attrs[:_CC], list(attrs[_CC])]
    new[_IFLAG] |= termios.IGNPAR
    new[_IFLAG] &= ~(termios.ISTRIP | termios.INLCR | termios.IGNCR | termios.ICRNL
                     | termios.IXON | termios.IXANY | termios.IXOFF | (_constant("IUCLC") or 0))
    new[_LFLAG] &= ~(termios.ISIG | termios.ICANON | termios.ECHO | termios.ECHOE
                     | termios.ECHOK | termios.ECHONL | termios.IEXTEN)
    new[_OFLAG] &= ~termios.OPOST
    new[_CC][termios.VMIN] = 1
    new[_CC][termios.VTIME] = 0
    return new


class RawMode:
    """The local terminal in raw mode while active; ``leave()`` is idempotent and also
    runs at interpreter exit, so the terminal is restored on every way out."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self._saved: TermAttrs | None = None

    @property
    def active(self) -> bool:
        return self._saved is not None

    def enter(self) -> bool:
        """Switch to raw mode; False (and nothing changed) if ``fd`` is no terminal."""
        if self._saved is not None:
            return True
        saved = get_attrs(self.fd)
        if saved is None:
            return False
        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, raw_attrs(saved))
        except (termios.error, OSError):
            return False
        self._saved = saved
        atexit.register(self.leave)
        return True

    def leave(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        atexit.unregister(self.leave)
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)

    def __enter__(self) -> RawMode:
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()


def terminal_type() -> str:
    """$TERM as ssh sends it ("" when unset)."""
    return os.environ.get("TERM", "")


__all__ = ["RawMode", "WindowSize", "encode_modes", "get_attrs", "pty_request",
           "raw_attrs", "set_window_size", "terminal_type", "window_change", "window_size"]
