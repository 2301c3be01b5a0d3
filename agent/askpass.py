"""Asking the user for permission through SSH_ASKPASS, as OpenSSH's ask_permission.

The program gets the prompt as its argument and SSH_ASKPASS_PROMPT=confirm in its
environment; an empty answer or "yes" (any case) allows, anything else, a non-zero exit,
a missing program or no answer within the timeout denies. As OpenSSH, the program is
only run when DISPLAY (or WAYLAND_DISPLAY) is set or SSH_ASKPASS_REQUIRE=force.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

#: OpenSSH's _PATH_SSH_ASKPASS_DEFAULT.
DEFAULT_ASKPASS = "/usr/bin/ssh-askpass"
#: A prompt nobody answers denies after this many seconds (OpenSSH waits forever).
DEFAULT_TIMEOUT = 120.0


def askpass_allowed(env: Mapping[str, str]) -> bool:
    """Whether OpenSSH's read_passphrase would run the askpass program at all."""
    allowed = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    require = env.get("SSH_ASKPASS_REQUIRE", "").lower()
    if require == "force":
        return True
    if require == "never":
        return False
    return allowed


def run_askpass(prompt: str, hint: str | None = None, *, env: Mapping[str, str] | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The askpass program's first output line, or None if it failed or timed out."""
    source = os.environ if env is None else env
    program = source.get("SSH_ASKPASS") or DEFAULT_ASKPASS
    child_env = dict(source)
    if hint is not None:
        child_env["SSH_ASKPASS_PROMPT"] = hint
    try:
        proc = subprocess.run([program, prompt], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=None, env=child_env,
                              timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    text = proc.stdout.decode("utf-8", "replace")
    for stop in ("\r", "\n"):
        text = text.split(stop, 1)[0]
    return text


def ask_permission(prompt: str, *, env: Mapping[str, str] | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True if the user allowed (empty answer or "yes")."""
    source = os.environ if env is None else env
    if not askpass_allowed(source):
        return False
    answer = run_askpass(prompt, "confirm", env=source, timeout=timeout)
    return answer is not None and (answer == "" or answer.lower() == "yes")
