"""Helpers shared by the test modules: corpus paths, subprocesses, private-key copies.

Import them as ``from tests.helpers import TESTDATA, run, ...``. Paths are computed from
this file so the suite works wherever the repository is cloned (``shared/`` sits beside it).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTDATA = (REPO_ROOT / ".." / "shared" / "testdata").resolve()

#: Generous: the slowest thing a test runs is an RSA key generation on a loaded CI machine.
DEFAULT_TIMEOUT = 120.0


def run(
    cmd: Sequence[str | os.PathLike[str]],
    input: str | bytes | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    binary: bool = False,
) -> subprocess.CompletedProcess[Any]:
    """Run ``cmd`` and capture its output; never raises on a non-zero exit status.

    stdin is /dev/null unless ``input`` is given, and the child gets a new session (no
    controlling terminal), so a tool that would prompt on /dev/tty fails instead of hanging.
    Output is text (UTF-8, undecodable bytes escaped) unless ``binary`` is set.
    """
    data = input.encode("utf-8") if isinstance(input, str) else input
    proc = subprocess.run(
        [os.fspath(c) for c in cmd],
        input=data,
        stdin=subprocess.DEVNULL if data is None else None,
        capture_output=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        timeout=timeout,
        start_new_session=True,
        check=False,
    )
    if binary:
        return proc
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "surrogateescape"),
        proc.stderr.decode("utf-8", "surrogateescape"),
    )


def tool_path(name: str) -> str:
    """Absolute path of an OpenSSH tool; skips the calling test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


@functools.lru_cache(maxsize=1)
def _ssh_version_banner() -> str | None:
    path = shutil.which("ssh")
    if path is None:
        return None
    proc = run([path, "-V"])
    return f"{proc.stderr}{proc.stdout}"


def openssh_version() -> tuple[int, int]:
    """The installed OpenSSH's (major, minor), from ``ssh -V`` (``OpenSSH_9.2p1 ...``).

    Skips the calling test when ssh is missing or its banner cannot be read.
    """
    banner = _ssh_version_banner()
    if banner is None:
        pytest.skip("ssh not installed")
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", banner)
    if m is None:
        pytest.skip(f"cannot parse ssh -V output: {banner!r}")
    return int(m.group(1)), int(m.group(2))


def testdata(*parts: str) -> Path:
    """A path inside the conformance corpus, e.g. ``testdata("sshkey", "ed25519_1")``."""
    return TESTDATA.joinpath(*parts)


def private_copy(path: str | os.PathLike[str], tmp_path: Path) -> Path:
    """Copy a (world-readable) corpus private key to a 0600 file the loaders accept.

    ``path`` may be absolute or relative to TESTDATA (``"sshkey/rsa_1"``). The copy keeps
    the file name, so a ``.pub`` copied the same way sits beside it.
    """
    src = Path(path)
    if not src.is_absolute():
        src = TESTDATA / src
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes())
    dst.chmod(0o600)
    return dst


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server a test started, by pid: SIGTERM, then SIGKILL after 10 seconds."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def run_in_pty(cmd: Sequence[str], env: Mapping[str, str], answers: Sequence[bytes],
               is_prompt: Callable[[bytes], bool], timeout: float = 30) -> tuple[int, bytes]:
    """Run ``cmd`` on a new terminal (cwd: the repository), typing the next answer each
    time the output so far ends in a prompt; (exit code, everything on the terminal)."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, never return into pytest
        try:
            os.chdir(REPO_ROOT)
            os.execvpe(cmd[0], list(cmd), dict(env))
        finally:
            os._exit(127)
    out, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if pending and is_prompt(out):
                os.write(fd, pending.pop(0))
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out
