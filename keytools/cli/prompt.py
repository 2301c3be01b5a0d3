"""Passphrase and yes/no prompts, following OpenSSH's read_passphrase().

When stdin is not a terminal (or SSH_ASKPASS_REQUIRE=force), SSH_ASKPASS is run if it
is set and a display is available (or forced); if it runs and fails, the answer is
empty. Otherwise the prompt goes to /dev/tty with echo off, and with no terminal at
all it goes to stderr and one line is read from stdin, as readpassphrase(3) does.
"""

from __future__ import annotations

import os
import sys


def _askpass(prompt: str) -> tuple[bool, str]:
    """(whether an askpass program was run, its answer or "")."""
    program = os.environ.get("SSH_ASKPASS")
    require = os.environ.get("SSH_ASKPASS_REQUIRE", "")
    if require == "never" or not program:
        return False, ""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if require != "force" and not has_display:
        return False, ""
    import subprocess

    try:
        done = subprocess.run(
            [program, prompt], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False
        )
    except OSError:
        return True, ""
    if done.returncode != 0:
        return True, ""
    return True, done.stdout.decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")


def _without_terminal(prompt: str) -> str:
    sys.stdout.flush()
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    sys.stderr.write("\n")
    return line.rstrip("\n").rstrip("\r")


def read_passphrase(prompt: str) -> str:
    """Ask for a secret; "" when it cannot be asked (as OpenSSH)."""
    force = os.environ.get("SSH_ASKPASS_REQUIRE") == "force"
    if force or not sys.stdin.isatty():
        ran, answer = _askpass(prompt)
        if ran or force:
            return answer
    try:
        with open("/dev/tty", "rb"):
            pass
    except OSError:
        return _without_terminal(prompt)
    import getpass

    try:
        return getpass.getpass(prompt)
    except (EOFError, OSError):
        return ""


def read_line(prompt: str) -> str | None:
    """Print ``prompt`` on stdout and read one line from stdin (None at end of input)."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        return None
    return line.rstrip("\n")


def confirm_overwrite(path: str) -> bool:
    """ssh-keygen's "Overwrite (y/n)?" question; True if the file is absent or the user agrees."""
    if not os.path.exists(path):
        return True
    sys.stdout.write(f"{path} already exists.\n")
    answer = read_line("Overwrite (y/n)? ")
    return answer is not None and answer[:1] in ("y", "Y")
