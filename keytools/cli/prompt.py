"""Passphrase and yes/no prompts, following OpenSSH's read_passphrase().

On a terminal the prompt goes to /dev/tty with echo off. Without one, SSH_ASKPASS is
used when it is set and a display is available (or SSH_ASKPASS_REQUIRE=force); failing
that the answer is empty, as ssh-keygen behaves in a script.
"""

from __future__ import annotations

import os
import sys


def _askpass(prompt: str) -> str | None:
    program = os.environ.get("SSH_ASKPASS")
    require = os.environ.get("SSH_ASKPASS_REQUIRE", "")
    if require == "never" or not program:
        return None
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if require != "force" and not has_display:
        return None
    import subprocess

    try:
        done = subprocess.run(
            [program, prompt], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")


def read_passphrase(prompt: str) -> str:
    """Ask for a secret; returns "" when nobody can be asked (as OpenSSH)."""
    force = os.environ.get("SSH_ASKPASS_REQUIRE") == "force"
    if force or not sys.stdin.isatty():
        answer = _askpass(prompt)
        if answer is not None or not sys.stdin.isatty():
            return answer or ""
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
