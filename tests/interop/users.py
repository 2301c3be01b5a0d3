"""A system user made for one test module (as root) and removed with its home after."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
from collections.abc import Iterator

import pytest

from tests.helpers import run


@contextlib.contextmanager
def temporary_user(shell: str = "/bin/sh",
                   password: str | None = None) -> Iterator[pwd.struct_passwd]:
    """``pyssh-t-<random>`` with a home directory; without ``password`` its password
    field is "*" (no password login, but not "!"-locked, which sshd refuses without
    PAM). Skips the test when not root or useradd is missing."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a test user")
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd")
    name = f"pyssh-t-{secrets.token_hex(3)}"
    made = run(["useradd", "-m", "-s", shell, "-p", "*", name])
    assert made.returncode == 0, made.stderr
    try:
        if password is not None:
            done = run(["chpasswd"], input=f"{name}:{password}\n")
            assert done.returncode == 0, done.stderr
        yield pwd.getpwnam(name)
    finally:
        run(["userdel", "-r", name])
