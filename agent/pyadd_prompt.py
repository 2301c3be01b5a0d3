"""ssh-add's passphrase prompt: OpenSSH's read_passphrase(prompt, RP_ALLOW_STDIN).

The askpass program (SSH_ASKPASS) is used when stdin is not a terminal and a display is
set, or always with SSH_ASKPASS_REQUIRE=force (prefer: when a display is set; never:
not at all). Otherwise the prompt goes to the controlling terminal with echo off, or,
without one, to stderr while the answer is read from stdin (so ``echo pin | pyadd -s``
works as with ssh-add). No answer is the empty string.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

#: Debian's _PATH_SSH_ASKPASS_DEFAULT.
DEFAULT_ASKPASS = "/usr/bin/ssh-askpass"
_MAX_ANSWER = 1023  # read_passphrase's buffer is 1024 bytes


def _askpass(program: str, prompt: str) -> str:
    """Run the askpass program; its first line, or "" when it fails."""
    try:
        done = subprocess.run([program, prompt], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, check=False)
    except OSError:
        return ""
    if done.returncode != 0:
        return ""
    text = done.stdout.decode("utf-8", "surrogateescape")
    for stop in "\r\n":
        text = text.split(stop, 1)[0]
    return text


def _read_line(fd: int) -> str:
    """Bytes up to a newline or carriage return (or EOF), as readpassphrase reads."""
    data = bytearray()
    while True:
        try:
            ch = os.read(fd, 1)
        except InterruptedError:
            continue
        except OSError:
            break
        if not ch or ch in (b"\n", b"\r"):
            break
        if len(data) < _MAX_ANSWER:
            data += ch
    return data.decode("utf-8", "surrogateescape")


def _readpassphrase(prompt: str) -> str:
    """Prompt on /dev/tty with echo off; without a terminal use stderr and stdin."""
    try:
        tty_fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        tty_fd = -1
    in_fd, out_fd = (tty_fd, tty_fd) if tty_fd >= 0 else (0, 2)
    old = None
    if tty_fd >= 0:
        import termios

        with contextlib.suppress(termios.error):
            old = termios.tcgetattr(tty_fd)
            new = list(old)
            new[3] &= ~(termios.ECHO | termios.ECHONL)
            termios.tcsetattr(tty_fd, termios.TCSAFLUSH, new)
    try:
        sys.stderr.flush()
        with contextlib.suppress(OSError):
            os.write(out_fd, prompt.encode("utf-8", "surrogateescape"))
        return _read_line(in_fd)
    finally:
        if old is not None:
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(tty_fd, termios.TCSAFLUSH, old)
                os.write(out_fd, b"\n")
        if tty_fd >= 0:
            os.close(tty_fd)


def read_passphrase(prompt: str) -> str:
    """Ask for a secret the way ssh-add does; "" when nobody answers."""
    allow_askpass = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    use_askpass = False
    require = os.environ.get("SSH_ASKPASS_REQUIRE")
    if require is not None:
        if require.lower() == "force":
            use_askpass = allow_askpass = True
        elif require.lower() == "prefer":
            use_askpass = allow_askpass
        elif require.lower() == "never":
            allow_askpass = False
    if not use_askpass and not os.isatty(0):
        use_askpass = True
    if use_askpass and allow_askpass:
        return _askpass(os.environ.get("SSH_ASKPASS") or DEFAULT_ASKPASS, prompt)
    return _readpassphrase(prompt)
