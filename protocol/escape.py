"""ssh's escape sequences (clientloop.c process_escapes) as a pure state machine.

The escape character counts only right after a newline (or at the very start); the
character after it selects a command. ``EscapeFilter.feed`` splits typed input into
bytes to send and ``Escape`` events, in order. Plain input is passed through in bulk
(``bytes.find``), never byte by byte. The texts are ssh's, byte for byte.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: EscapeChar none
NO_ESCAPE = -1
DEFAULT_ESCAPE = ord("~")
_CTRL_Z = 0x1A


class BadEscapeChar(ValueError):
    """Not "none", one character or "^X"."""


def parse_escape_char(text: str) -> int:
    """``-e`` / EscapeChar: one character, "^X" (a control character) or "none"."""
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) == 2 and raw[:1] == b"^":
        return raw[1] & 31
    if len(raw) == 1:
        return raw[0]
    if text == "none":
        return NO_ESCAPE
    raise BadEscapeChar(text)


class Action(enum.Enum):
    DISCONNECT = "."
    SUSPEND = "^Z"
    BREAK = "B"
    REKEY = "R"
    LESS_VERBOSE = "V"
    MORE_VERBOSE = "v"
    HELP = "?"
    LIST = "#"
    BACKGROUND = "&"
    COMMAND_LINE = "C"


_COMMANDS = {ord(a.value): a for a in Action if len(a.value) == 1}
_COMMANDS[_CTRL_Z] = Action.SUSPEND


@dataclass(frozen=True)
class Escape:
    """An escape command typed by the user."""

    action: Action
    escape_char: int


#: (command, text) as OpenSSH 9.x/10.x prints them for a session that is not multiplexed
#: (the ~C line only when EnableEscapeCommandline is on).
_HELP = (
    (".", "terminate connection (and any multiplexed sessions)"),
    ("B", "send a BREAK to the remote system"),
    ("C", "open a command line"),
    ("R", "request rekey"),
    ("V/v", "decrease/increase verbosity (LogLevel)"),
    ("^Z", "suspend ssh"),
    ("#", "list forwarded connections"),
    ("&", "background ssh (when waiting for connections to terminate)"),
    ("?", "this message"),
)


def _char(escape_char: int) -> str:
    return bytes((escape_char,)).decode("latin-1")


def help_text(escape_char: int, command_line: bool = False) -> str:
    """ssh's ``~?`` text (print_escape_help), "\\r\\n" line ends included."""
    e = _char(escape_char)
    lines = [f"{e}?", "Supported escape sequences:"]
    lines += [f" {e}{cmd:<3} - {text}" for cmd, text in _HELP if command_line or cmd != "C"]
    lines += [f" {e}{e}   - send the escape character by typing it twice",
              "(Note that escapes are only recognized immediately after newline.)"]
    return "".join(line + "\r\n" for line in lines)


def echo_text(event: Escape) -> str:
    """What ssh writes to stderr when it acts on ``event`` (before any further output)."""
    e = _char(event.escape_char)
    # ~. and ~& print nothing: ssh queues "~.\r\n" on the channel's stderr buffer and
    # quits before writing it.
    if event.action is Action.SUSPEND:
        return f"{e}^Z [suspend ssh]\r\n"
    if event.action is Action.BREAK:
        return f"{e}B\r\n"
    if event.action is Action.LIST:
        return f"{e}#\r\n"
    if event.action is Action.COMMAND_LINE:
        return "commandline disabled\r\n"  # EnableEscapeCommandline no (the default)
    return ""


def log_level_text(event: Escape, level_name: str) -> str:
    return f"{_char(event.escape_char)}{event.action.value} [LogLevel {level_name}]\r\n"


class EscapeFilter:
    """Feed typed bytes; get back, in order, bytes to send and Escape events."""

    def __init__(self, escape_char: int = DEFAULT_ESCAPE, *,
                 disabled: frozenset[Action] = frozenset()) -> None:
        self.escape_char = escape_char
        #: actions treated like unknown commands (sent on literally), e.g. ~& here
        self.disabled = disabled
        self._at_line_start = True
        self._pending = False

    def feed(self, data: bytes) -> list[bytes | Escape]:
        if self.escape_char == NO_ESCAPE:
            return [data] if data else []
        out: list[bytes | Escape] = []
        esc = self.escape_char
        start = 0  # first byte not yet emitted
        pos = 0
        n = len(data)
        while pos < n:
            if self._pending:
                self._pending = False
                ch = data[pos]
                action = _COMMANDS.get(ch)
                if action is not None and action not in self.disabled:
                    out.append(Escape(action, esc))
                    pos += 1
                    start = pos
                    continue
                # "~~" sends one escape character; anything else sends both.
                if ch != esc:
                    out.append(bytes((esc,)))
                start = pos
                self._at_line_start = ch in (0x0A, 0x0D)
                pos += 1
                continue
            found = data.find(esc, pos)
            if found < 0:
                break
            before = data[found - 1] if found > 0 else None
            line_start = self._at_line_start if found == pos else before in (0x0A, 0x0D)
            if line_start:
                if found > start:
                    out.append(data[start:found])
                self._pending = True
                self._at_line_start = True  # stays so after a command, as in ssh
                pos = found + 1
                start = pos
            else:
                self._at_line_start = False
                pos = found + 1
        if start < n:
            out.append(data[start:])
            self._at_line_start = data[-1] in (0x0A, 0x0D)
        # Merge neighbouring byte chunks so the caller sends one packet.
        merged: list[bytes | Escape] = []
        for item in out:
            if isinstance(item, bytes) and merged and isinstance(merged[-1], bytes):
                merged[-1] = merged[-1] + item
            else:
                merged.append(item)
        return merged


__all__ = ["DEFAULT_ESCAPE", "NO_ESCAPE", "Action", "BadEscapeChar", "Escape",
           "EscapeFilter", "echo_text", "help_text", "log_level_text", "parse_escape_char"]
