"""Pseudo-terminals for pysshd sessions: pty-req, encoded terminal modes, window size.

A "pty-req" (RFC 4254 section 6.2) carries TERM, the window size and the encoded
terminal modes of section 8. ``open_pty`` makes the pty pair, applies the size and the
modes to the slave's termios as sshd's tty_parse_modes() does (unknown opcodes below
160 are skipped, an opcode of 160 or above ends the list), and the child later makes the
slave its controlling terminal (protocol.server_child). window-change is TIOCSWINSZ on
the master; the kernel then sends SIGWINCH to the terminal's foreground process group.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import termios
from dataclasses import dataclass
from typing import Any

from keytools.wire import Reader

log = logging.getLogger("pyssh.sshd")

TTY_OP_END = 0
TTY_OP_ISPEED = 128
TTY_OP_OSPEED = 129
#: the first opcode with no defined argument: parsing stops there (RFC 4254 section 8)
_FIRST_UNDEFINED = 160
#: a control character the client does not use (OpenSSH sends 255 for _POSIX_VDISABLE)
_DISABLED_CHAR = 255

#: opcode -> termios c_cc index name (OpenSSH's ttymodes.h)
_CHARS = {
    1: "VINTR", 2: "VQUIT", 3: "VERASE", 4: "VKILL", 5: "VEOF", 6: "VEOL", 7: "VEOL2",
    8: "VSTART", 9: "VSTOP", 10: "VSUSP", 11: "VDSUSP", 12: "VREPRINT", 13: "VWERASE",
    14: "VLNEXT", 15: "VFLUSH", 16: "VSWTCH", 17: "VSTATUS", 18: "VDISCARD",
}
#: termios attribute list positions
_IFLAG, _OFLAG, _CFLAG, _LFLAG, _ISPEED, _OSPEED, _CC = range(7)
#: opcode -> (termios flag word, flag name)
_FLAGS = {
    30: (_IFLAG, "IGNPAR"), 31: (_IFLAG, "PARMRK"), 32: (_IFLAG, "INPCK"),
    33: (_IFLAG, "ISTRIP"), 34: (_IFLAG, "INLCR"), 35: (_IFLAG, "IGNCR"),
    36: (_IFLAG, "ICRNL"), 37: (_IFLAG, "IUCLC"), 38: (_IFLAG, "IXON"), 39: (_IFLAG, "IXANY"),
    40: (_IFLAG, "IXOFF"), 41: (_IFLAG, "IMAXBEL"), 42: (_IFLAG, "IUTF8"),
    50: (_LFLAG, "ISIG"), 51: (_LFLAG, "ICANON"), 52: (_LFLAG, "XCASE"),
    53: (_LFLAG, "ECHO"), 54: (_LFLAG, "ECHOE"), 55: (_LFLAG, "ECHOK"),
    56: (_LFLAG, "ECHONL"), 57: (_LFLAG, "NOFLSH"), 58: (_LFLAG, "TOSTOP"),
    59: (_LFLAG, "IEXTEN"), 60: (_LFLAG, "ECHOCTL"), 61: (_LFLAG, "ECHOKE"),
    62: (_LFLAG, "PENDIN"),
    70: (_OFLAG, "OPOST"), 71: (_OFLAG, "OLCUC"), 72: (_OFLAG, "ONLCR"), 73: (_OFLAG, "OCRNL"),
    74: (_OFLAG, "ONOCR"), 75: (_OFLAG, "ONLRET"),
    90: (_CFLAG, "CS7"), 91: (_CFLAG, "CS8"), 92: (_CFLAG, "PARENB"), 93: (_CFLAG, "PARODD"),
}
#: the most window-size value we pass on (the kernel keeps 16-bit fields)
_MAX_DIM = 0xFFFF


@dataclass(frozen=True)
class PtyRequest:
    """A parsed pty-req: TERM, the size in characters and pixels, and the encoded modes."""

    term: str
    cols: int
    rows: int
    width: int
    height: int
    modes: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, r: Reader) -> PtyRequest:
        term = r.string().decode("utf-8", "replace")
        cols, rows, width, height = r.uint32(), r.uint32(), r.uint32(), r.uint32()
        modes = parse_modes(r.string())
        r.end()
        return cls(term, cols, rows, width, height, modes)


def parse_modes(data: bytes) -> tuple[tuple[int, int], ...]:
    """The (opcode, value) pairs of RFC 4254 section 8's encoding, up to TTY_OP_END or
    the first opcode without a defined argument (as OpenSSH stops there)."""
    r = Reader(data)
    out: list[tuple[int, int]] = []
    while r.remaining:
        opcode = r.byte()
        if opcode == TTY_OP_END or opcode >= _FIRST_UNDEFINED:
            break
        out.append((opcode, r.uint32()))
    return tuple(out)


def _speed(value: int) -> int | None:
    return getattr(termios, f"B{value}", None)


def apply_modes(attrs: list[Any], modes: tuple[tuple[int, int], ...]) -> list[Any]:
    """A copy of ``attrs`` (termios.tcgetattr's list) with ``modes`` applied."""
    out = list(attrs)
    cc = list(out[_CC])
    for opcode, value in modes:
        if opcode in _CHARS:
            index = getattr(termios, _CHARS[opcode], None)
            if index is None or index >= len(cc):
                continue  # a character this system does not have (VDSUSP, VSTATUS, ...)
            char = 0 if value == _DISABLED_CHAR else value & 0xFF
            cc[index] = bytes((char,)) if isinstance(cc[index], bytes) else char
        elif opcode in _FLAGS:
            word, name = _FLAGS[opcode]
            bit = getattr(termios, name, None)
            if bit is None:
                continue
            flags = int(out[word])
            out[word] = flags | bit if value else flags & ~bit
        elif opcode in (TTY_OP_ISPEED, TTY_OP_OSPEED):
            speed = _speed(value)
            if speed is not None:
                out[_ISPEED if opcode == TTY_OP_ISPEED else _OSPEED] = speed
        else:
            log.debug("Ignoring unsupported tty mode opcode %d (0x%x)", opcode, opcode)
    out[_CC] = cc
    return out


def set_window_size(fd: int, cols: int, rows: int, width: int, height: int) -> None:
    """TIOCSWINSZ (struct winsize is four native unsigned shorts: an ioctl argument, not
    SSH wire data)."""
    size = struct.pack("HHHH", min(rows, _MAX_DIM), min(cols, _MAX_DIM),
                       min(width, _MAX_DIM), min(height, _MAX_DIM))
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


@dataclass
class Pty:
    """An open pty pair: the master stays with pysshd, the slave goes to the child."""

    master: int
    slave: int
    name: str

    def close_slave(self) -> None:
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def close(self) -> None:
        self.close_slave()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def open_pty(request: PtyRequest, owner: tuple[int, int] | None = None) -> Pty:
    """openpty(), size and modes applied; ``owner`` (uid, gid) chowns the slave to the
    user with mode 0620 as sshd's pty_setowner() does (root mode only)."""
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        set_window_size(slave, request.cols, request.rows, request.width, request.height)
        try:
            attrs = termios.tcgetattr(slave)
            termios.tcsetattr(slave, termios.TCSANOW, apply_modes(attrs, request.modes))
        except termios.error as exc:
            log.info("tcsetattr: %s", exc)
        if owner is not None:
            os.chown(name, owner[0], owner[1])
            os.chmod(name, 0o620)
        os.set_blocking(master, False)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return Pty(master, slave, name)
