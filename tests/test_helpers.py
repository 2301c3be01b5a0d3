"""The shared test helpers themselves: isolation and corpus access other tests rely on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.helpers import REPO_ROOT, TESTDATA, openssh_version, private_copy, run


def test_paths() -> None:
    assert (REPO_ROOT / "pyproject.toml").is_file()
    assert (TESTDATA / "README.md").is_file()
    assert (REPO_ROOT.parent / "shared" / "testdata").resolve() == TESTDATA


def test_home_fixture_isolates_ssh_dir(home: Path) -> None:
    assert os.environ["HOME"] == str(home)
    assert Path("~/.ssh").expanduser() == home / ".ssh"
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700
    assert "SSH_AUTH_SOCK" not in os.environ
    proc = run(["sh", "-c", 'printf %s "$HOME"'])
    assert proc.stdout == str(home)


def test_private_copy_is_0600(tmp_path: Path) -> None:
    copy = private_copy("sshkey/ed25519_1", tmp_path)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert copy.read_bytes() == (TESTDATA / "sshkey" / "ed25519_1").read_bytes()
    again = private_copy(TESTDATA / "sshkey" / "rsa_1", tmp_path)
    assert again == tmp_path / "rsa_1"


def test_run_has_no_stdin_and_no_terminal() -> None:
    proc = run(["sh", "-c", "cat; (: </dev/tty) 2>/dev/null && echo tty || echo notty"])
    assert proc.returncode == 0
    assert proc.stdout == "notty\n"
    assert run(["cat"], input="abc").stdout == "abc"
    assert run(["cat"], input=b"\xff", binary=True).stdout == b"\xff"


def test_openssh_version(ssh_keygen: str) -> None:
    major, minor = openssh_version()
    assert major >= 7
    assert 0 <= minor < 100
    banner = run(["ssh", "-V"]).stderr
    assert banner.startswith(f"OpenSSH_{major}.{minor}")
