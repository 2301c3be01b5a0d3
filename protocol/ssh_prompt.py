"""pyssh's prompts, as ssh's read_passphrase() (readpass.c) with the flags ssh uses for
passwords, keyboard-interactive answers and key passphrases.

SSH_ASKPASS is run when SSH_ASKPASS_REQUIRE=force, or (with DISPLAY or WAYLAND_DISPLAY
set) when SSH_ASKPASS_REQUIRE=prefer or there is no terminal; otherwise the prompt goes
to /dev/tty (echo off unless asked). With neither, the answer is empty, as ssh's.
``SshAuthUI`` is the ``protocol.auth.AuthUI`` of the pyssh command: banners on stderr
(not with -q or LogLevel below INFO), messages through ``Log``.
"""

from __future__ import annotations

import os
import sys

from protocol.auth import AuthUI
from protocol.ssh_log import INFO, Log

TTY = "/dev/tty"
MAX_ANSWER = 1024


def _askpass_choice() -> tuple[bool, bool]:
    """(use askpass, askpass allowed) before looking at the terminal."""
    allowed = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    use = False
    require = os.environ.get("SSH_ASKPASS_REQUIRE", "").lower()
    if require == "force":
        use = allowed = True
    elif require == "prefer":
        use = allowed
    elif require == "never":
        allowed = False
    return use, allowed


def read_passphrase(prompt: str, echo: bool = False) -> str:
    """The user's answer to ``prompt``; "" when nobody can be asked."""
    use_askpass, allowed = _askpass_choice()
    fd = -1
    if not use_askpass:
        try:
            fd = os.open(TTY, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            use_askpass = True
    if use_askpass:
        if fd >= 0:
            os.close(fd)
        if not allowed:
            return ""
        from agent.askpass import run_askpass

        return run_askpass(prompt) or ""
    try:
        return _read_tty(fd, prompt, echo)
    finally:
        os.close(fd)


def _read_tty(fd: int, prompt: str, echo: bool) -> str:
    """readpassphrase(3) on the terminal: prompt, one line, echo restored."""
    import termios

    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        old = None
    try:
        if old is not None and not echo:
            new = list(old)
            new[3] &= ~(termios.ECHO | termios.ECHONL)
            termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        os.write(fd, b"\r" + prompt.encode("utf-8", "replace"))
        data = b""
        while not data.endswith(b"\n") and len(data) < MAX_ANSWER:
            chunk = os.read(fd, MAX_ANSWER - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        return ""
    finally:
        if old is not None and not echo:
            termios.tcsetattr(fd, termios.TCSAFLUSH, old)
            os.write(fd, b"\n")
    return data.decode("utf-8", "replace").rstrip("\n").rstrip("\r")


def safe_text(text: str) -> str:
    """What ssh's fmprintf shows of server text: control characters (but tab, newline,
    carriage return, bell and backspace) in \\ooo octal, so a banner cannot drive the
    terminal."""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if (code < 0x20 and ch not in "\t\n\r\a\b") or code == 0x7F:
            out.append(f"\\{code:03o}")
        else:
            out.append(ch)
    return "".join(out)


class SshAuthUI(AuthUI):
    """Prompts on the terminal (or askpass), messages through the pyssh log."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def ask(self, prompt: str, echo: bool) -> str | None:
        return read_passphrase(prompt, echo)

    def banner(self, text: str) -> None:
        if self.log.level >= INFO:
            sys.stderr.write(safe_text(text))
            sys.stderr.flush()

    def error(self, text: str) -> None:
        self.log.error(text)

    def info(self, text: str) -> None:
        self.log.info(text)

    def verbose(self, text: str) -> None:
        self.log.verbose(text)

    def debug(self, text: str) -> None:
        self.log.debug(text)
