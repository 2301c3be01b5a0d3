"""pyadd --keyring with a real Secret Service: gnome-keyring-daemon inside its own
dbus-run-session (the session, and the daemon with it, ends when the command does).

Every run uses the same temporary HOME, so the login keyring gnome-keyring keeps on disk
carries stored passphrases from one session to the next, as on a desktop.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run, tool_path
from tests.interop.pyadd_support import PYADD, RunningAgent, openssh_agent, ssh_add

PASSPHRASE = "keyring passphrase"
KEYRING_PASSWORD = "login-keyring-pw"


@pytest.fixture
def desktop(tmp_path: Path) -> dict[str, str]:
    """Environment for a desktop-like session: HOME and XDG dirs of our own."""
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    for d in (home, runtime):
        d.mkdir()
        d.chmod(0o700)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DBUS_", "SSH_", "GNOME_KEYRING", "PYTHON_KEYRING", "XDG_"))
           and k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime),
               XDG_DATA_HOME=str(home / ".local/share"), XDG_CONFIG_HOME=str(home / ".config"))
    return env


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[RunningAgent]:
    with openssh_agent(tmp_path / "agent") as running:
        yield running


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_test"
    done = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-a", "2", "-N", PASSPHRASE,
                "-C", "kr", "-f", str(path)])
    assert done.returncode == 0
    return path


def askpass(tmp_path: Path, answer: str | None) -> tuple[Path, Path]:
    """An askpass program that logs its prompt and answers (or fails when None)."""
    script = tmp_path / f"askpass-{'fail' if answer is None else 'ok'}"
    log = tmp_path / "prompts"
    reply = "exit 1" if answer is None else f"echo '{answer}'"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {log}\n{reply}\n')
    script.chmod(0o755)
    return script, log


def in_session(env: dict[str, str], *argv: str) -> Any:
    """Run ``argv`` inside a fresh D-Bus session with an unlocked gnome-keyring."""
    script = ('printf %s "$KR_PW" | gnome-keyring-daemon --unlock --components=secrets '
              '>/dev/null 2>&1; exec "$@"')
    done = run(["dbus-run-session", "--", "sh", "-c", script, "sh", *argv],
               env={**env, "KR_PW": KEYRING_PASSWORD}, timeout=60)
    # dbus-daemon's own complaints (e.g. about the fd limit in a container) are not ours
    done.stderr = "".join(line for line in done.stderr.splitlines(keepends=True)
                          if not line.startswith("dbus-daemon["))
    return done


def stored(env: dict[str, str], key: Path) -> str:
    done = in_session(env, sys.executable, "-c",
                      "import keyring, sys; print(keyring.get_password('pyssh', sys.argv[1]))",
                      str(key))
    assert done.returncode == 0, done.stderr
    return str(done.stdout.strip())


def test_passphrase_stored_and_reused(desktop: dict[str, str], agent: RunningAgent,
                                      key: Path, tmp_path: Path) -> None:
    good, log = askpass(tmp_path, PASSPHRASE)
    env = {**desktop, "SSH_AUTH_SOCK": str(agent.socket), "SSH_ASKPASS": str(good),
           "SSH_ASKPASS_REQUIRE": "force"}
    log.write_text("")
    first = in_session(env, *PYADD, "--keyring", str(key))
    assert first.returncode == 0, first.stderr
    assert first.stderr == (f"Identity added: {key} (kr)\n"
                            f"Passphrase for {key} stored in the OS keyring\n")
    assert log.read_text() == f"Enter passphrase for {key}: \n"
    assert stored(desktop, key) == PASSPHRASE

    # next time (another session): no prompt at all, even with an askpass that fails
    ssh_add(["-D"], agent.env())
    failing, log = askpass(tmp_path, None)
    log.write_text("")
    second = in_session({**env, "SSH_ASKPASS": str(failing)}, *PYADD, "--keyring", str(key))
    assert (second.returncode, second.stderr) == (0, f"Identity added: {key} (kr)\n")
    assert log.read_text() == ""
    assert len(ssh_add(["-L"], agent.env()).stdout.splitlines()) == 1

    # without --keyring the store is neither read nor written
    ssh_add(["-D"], agent.env())
    third = in_session({**env, "SSH_ASKPASS": str(failing)}, *PYADD, str(key))
    assert third.returncode == 1
    assert log.read_text() == f"Enter passphrase for {key}: \n"


def test_changed_passphrase_is_asked_and_replaced(desktop: dict[str, str],
                                                  agent: RunningAgent, key: Path,
                                                  tmp_path: Path) -> None:
    good, _ = askpass(tmp_path, PASSPHRASE)
    env = {**desktop, "SSH_AUTH_SOCK": str(agent.socket), "SSH_ASKPASS": str(good),
           "SSH_ASKPASS_REQUIRE": "force"}
    assert in_session(env, *PYADD, "-q", "--keyring", str(key)).returncode == 0
    changed = run([tool_path("ssh-keygen"), "-q", "-p", "-a", "2", "-P", PASSPHRASE,
                   "-N", "new passphrase", "-f", str(key)])
    assert changed.returncode == 0
    new, log = askpass(tmp_path, "new passphrase")
    log.write_text("")
    ssh_add(["-D"], agent.env())
    again = in_session({**env, "SSH_ASKPASS": str(new)}, *PYADD, "--keyring", str(key))
    assert again.returncode == 0, again.stderr
    assert log.read_text() == f"Enter passphrase for {key}: \n"
    assert stored(desktop, key) == "new passphrase"


def test_no_backend_falls_back_to_prompt(desktop: dict[str, str], agent: RunningAgent,
                                         key: Path, tmp_path: Path) -> None:
    """No D-Bus session, so no Secret Service: a clear message, then the normal prompt."""
    good, log = askpass(tmp_path, PASSPHRASE)
    env = {**desktop, "SSH_AUTH_SOCK": str(agent.socket), "SSH_ASKPASS": str(good),
           "SSH_ASKPASS_REQUIRE": "force"}
    log.write_text("")
    done = run([*PYADD, "--keyring", str(key)], env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("pyadd: cannot use the OS keyring: ")
    assert lines[1:] == [f"Identity added: {key} (kr)"]
    assert log.read_text() == f"Enter passphrase for {key}: \n"
    assert "Traceback" not in done.stderr
